"""VEX: statements that a product is or is not affected by a CVE, from CycloneDX VEX
(vulnerabilities[].analysis.state, affects[].ref — plain bom-refs or urn:cdx:SERIAL/VERSION#ref
links into another BOM) and CSAF VEX (product_status per vulnerability)."""
from __future__ import annotations

import re

from plantguard.knowledge.csaf import read_csaf
from plantguard.sbom.document import Component, SbomDocument, VexStatement

_CDX_URN = re.compile(r"^urn:cdx:([0-9a-f-]{36})/(\d+)#(.+)$", re.I)
_CSAF_STATES = (("known_not_affected", "not_affected"), ("fixed", "fixed"), ("first_fixed", "fixed"),
                ("known_affected", "affected"), ("first_affected", "affected"), ("last_affected", "affected"),
                ("under_investigation", "under_investigation"))


def read_csaf_vex(path: str, raw: dict) -> SbomDocument:
    doc = SbomDocument(path, "csaf-vex", str(raw["document"].get("csaf_version") or "") or None)
    try:
        adv = read_csaf(raw)
    except Exception as e:  # noqa: BLE001
        doc.errors.append(f"csaf: {type(e).__name__}: {e}"[:300])
        return doc
    doc.serial = adv.id
    doc.timestamp = adv.updated or adv.published
    if adv.publisher:
        doc.authors.append(adv.publisher)
    products = {p.product_id: p for p in adv.products}
    status_raw = {}
    for v in raw.get("vulnerabilities") or []:
        if isinstance(v, dict) and v.get("cve"):
            status_raw[v["cve"]] = v.get("product_status") if isinstance(v.get("product_status"), dict) else {}
    for cve, st in status_raw.items():
        for key, state in _CSAF_STATES:
            ids = [str(x) for x in st.get(key) or []]
            if not ids:
                continue
            prods = []
            for pid in ids:
                p = products.get(pid)
                if p:
                    version = p.version_text if p.version_kind == "exact" else None
                    prods.append({"name": p.product_name, "version": version, "purl": p.purl, "cpe": p.cpe,
                                  "vendor": p.vendor, "range": p.version_text})
            doc.vex.append(VexStatement(cve, ids, state, products=prods))
    return doc


def _ref_key(ref: str, home: SbomDocument | None) -> tuple[str | None, str]:
    """(BOM serial or None, bom-ref) for a VEX affects reference."""
    m = _CDX_URN.match(ref or "")
    if m:
        return f"urn:uuid:{m.group(1)}".lower(), m.group(3)
    return ((home.serial or "").lower() or None) if home else None, ref


def _component_matches_product(c: Component, prod: dict) -> bool:
    from plantguard.knowledge.matching import _norm  # shared normalisation
    if prod.get("purl") and c.purl:
        return prod["purl"].split("?")[0] == c.purl.split("?")[0]
    if prod.get("cpe") and c.cpe:
        return prod["cpe"] == c.cpe
    if prod.get("name") and _norm(prod["name"]) in (_norm(c.name), _norm(c.label())):
        return not prod.get("version") or prod["version"] == c.version
    return False


class VexBook:
    """All VEX statements of a set of documents, answering "is (component, CVE) suppressed?"."""

    def __init__(self, documents: list[SbomDocument], extra: list[VexStatement] | None = None):
        self._by_ref: dict[tuple[str | None, str], list[VexStatement]] = {}
        self._by_product: list[VexStatement] = []
        for d in documents:
            for st in d.vex:
                if st.products:
                    self._by_product.append(st)
                for r in st.refs:
                    self._by_ref.setdefault(_ref_key(r, d), []).append(st)
        for st in extra or ():
            self._by_product.append(st)

    def statements(self, doc: SbomDocument, comp: Component) -> list[VexStatement]:
        out = []
        serial = (doc.serial or "").lower() or None
        if comp.ref:
            out += self._by_ref.get((serial, comp.ref), [])
            if serial is not None:
                out += self._by_ref.get((None, comp.ref), [])
        out += [st for st in self._by_product if any(_component_matches_product(comp, p) for p in st.products)]
        return out

    def verdict(self, doc: SbomDocument, comp: Component, cve: str) -> VexStatement | None:
        """The statement about this CVE for this component (a suppressing one wins), or None."""
        hits = [st for st in self.statements(doc, comp) if st.cve.upper() == (cve or "").upper()]
        return next((h for h in hits if h.suppresses), hits[0] if hits else None)
