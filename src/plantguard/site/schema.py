"""The site file as a JSON Schema, for editor completion and linting (data/site.schema.json is
this, written out). Built from the same vocabularies as the validator, which stays the authority."""
from __future__ import annotations

from plantguard.site.vocabulary import (_HHMM, _MAC, _NAME, ASSET_ROLES, ATTESTATION_IDS,
                                        ATTESTATION_STATUSES, CRITICALITIES,
                                        DAY_GROUPS, DAYS, ORGANIZATION_SIZES, ZONE_KINDS,
                                        protocol_names)


def site_schema() -> dict:
    """A JSON Schema of the site file, for editor completion and linting. The validator (site/load.py)
    remains the authority (it also checks overlaps, references between sections and ports)."""
    s = {"type": "string"}
    ip_or_net = {"type": "string", "description": "IP address or network (CIDR)"}
    names = sorted(protocol_names())

    def obj(props: dict, required=()) -> dict:
        return {"type": "object", "additionalProperties": False, "properties": props,
                "required": list(required)}

    def lst(item) -> dict:
        return {"type": "array", "items": item}

    allow = {"anyOf": [{"type": "string", "pattern": r"^(?i:(tcp|udp)/\d{1,5}(-\d{1,5})?)$"},
                       {"enum": ["any"] + names}, s]}
    status = {"enum": list(ATTESTATION_STATUSES) + [True, False]}
    attestation = {"anyOf": [status, obj({"status": status, "evidence": s, "note": s,
                                          "date": {"type": "string", "format": "date"}}, ["status"])]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://plantguard.invalid/site.schema.json",
        "title": "plantguard site file",
        **obj({
            "site": s, "description": s, "timezone": s,
            "organization_size": {"enum": list(ORGANIZATION_SIZES)},
            "zones": lst(obj({"name": {"type": "string", "pattern": _NAME.pattern},
                              "kind": {"enum": list(ZONE_KINDS)},
                              "networks": lst(ip_or_net),
                              "vlans": lst({"type": "integer", "minimum": 0, "maximum": 4095}),
                              "description": s}, ["name", "kind"])),
            "conduits": lst(obj({"from": s, "to": s, "allow": lst(allow), "bidirectional": {"type": "boolean"},
                                 "description": s}, ["from", "to", "allow"])),
            "egress": lst(obj({"zone": s, "allow": lst(ip_or_net), "description": s}, ["zone"])),
            "engineering_workstations": lst(ip_or_net),
            "assets": lst({**obj({"ip": s, "mac": {"type": "string", "pattern": _MAC.pattern}, "name": s,
                                  "role": {"enum": list(ASSET_ROLES)}, "vendor": s, "product": s, "model": s,
                                  "firmware": s, "serial": s, "criticality": {"enum": list(CRITICALITIES)},
                                  "sbom": s, "zone": s, "notes": s, "owner": s}),
                           "anyOf": [{"required": ["ip"]}, {"required": ["mac"]}]}),
            "maintenance_windows": lst(obj({
                "name": s, "description": s,
                "days": {"anyOf": [{"enum": list(DAY_GROUPS)}, lst({"enum": list(DAYS)})]},
                "start": {"type": "string", "pattern": _HHMM.pattern},
                "hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 168},
                "zones": lst(s)}, ["days", "start", "hours"])),
            "attestations": obj({k: attestation for k in ATTESTATION_IDS}),
            "sboms": lst({**obj({"file": s, "asset": s, "product": s, "description": s}, ["file"]),
                          "anyOf": [{"required": ["asset"]}, {"required": ["product"]}]}),
            "remote_access": lst(obj({"name": s, "host": ip_or_net, "peers": lst(ip_or_net),
                                      "mfa": {"type": "boolean"}, "vendor": s, "description": s},
                                     ["name", "host"])),
            "suppressions": lst(_suppression_schema()),
        }),
    }


def _suppression_schema() -> dict:
    """An accepted risk, as suppress.Entry declares it."""
    from plantguard.suppress import Entry
    return Entry.model_json_schema()
