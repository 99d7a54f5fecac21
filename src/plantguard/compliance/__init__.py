"""Control catalogs (IEC 62443-3-3, NIST SP 800-53r5 with the SP 800-82r3 OT overlay, ISO/IEC
27001:2022 Annex A, MITRE ATT&CK for ICS), the published mappings between them, and the per-control
view of an assessment's findings."""
from plantguard.compliance.catalog import FRAMEWORKS, Catalog, load_catalog, normalize_id

__all__ = ["FRAMEWORKS", "Catalog", "load_catalog", "normalize_id"]
