"""The site file and its model (docs/architecture.md, Contracts). One job per module:

    vocabulary  the fixed vocabularies (zone kinds, roles, attestation ids and statuses, protocol
                names an `allow` entry may use), value formats and size limits
    model       the dataclasses (Site, Zone, Conduit, ...) and their lookups; inferred_site,
                declared_site
    nodes       reading YAML nodes into checked values; SiteError ('FILE:LINE: field: problem')
    load        load_site / parse_site and the validator of the document's sections
    schema      the JSON Schema for editors (data/site.schema.json)
    draft       a reviewable site file drafted from traffic (`plantguard site init`)

Everything callers use is re-exported here: import from `plantguard.site`.
"""
from plantguard.site.load import load_site, parse_site
from plantguard.site.model import (AllowRule, Attestation, Conduit, Egress, IPNetwork, RemoteAccess, Site,
                                   Window, Zone, declared_site, inferred_site)
from plantguard.site.nodes import SiteError
from plantguard.site.schema import site_schema
from plantguard.site.vocabulary import (ASSET_ROLES, ATTESTATION_IDS, ATTESTATION_STATUSES, COMMON_PROTOCOLS,
                                        CRITICALITIES, DAY_GROUPS, DAYS, IT_ZONE_KINDS, MAX_FILE_BYTES,
                                        MAX_NODES, ORGANIZATION_SIZES, OT_ZONE_KINDS, PORT_ONLY_NAMES,
                                        TOP_KEYS, ZONE_KINDS, protocol_names)

__all__ = [
    "ASSET_ROLES", "ATTESTATION_IDS", "ATTESTATION_STATUSES", "COMMON_PROTOCOLS", "CRITICALITIES",
    "DAY_GROUPS", "DAYS", "IT_ZONE_KINDS", "MAX_FILE_BYTES", "MAX_NODES", "ORGANIZATION_SIZES",
    "OT_ZONE_KINDS", "PORT_ONLY_NAMES", "TOP_KEYS", "ZONE_KINDS",
    "AllowRule", "Attestation", "Conduit", "Egress", "IPNetwork", "RemoteAccess", "Site", "SiteError",
    "Window", "Zone",
    "declared_site", "inferred_site", "load_site", "parse_site", "protocol_names", "site_schema",
]
