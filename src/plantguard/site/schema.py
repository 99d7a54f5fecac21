"""The site file as a JSON Schema, for editor completion and linting (data/site.schema.json is
this, written out). Built from the same vocabularies as the validator, which stays the authority.
Every key carries a description (and its default when it has one): editors show them as hints and
docs/site-file.md is generated from them."""
from __future__ import annotations

from plantguard.compliance.attestations import ATTESTATIONS
from plantguard.site.vocabulary import (
    _HHMM,
    _MAC,
    _NAME,
    ASSET_ROLES,
    ATTESTATION_IDS,
    ATTESTATION_STATUSES,
    CRITICALITIES,
    DAY_GROUPS,
    DAYS,
    ORGANIZATION_SIZES,
    ZONE_KINDS,
    protocol_names,
)


def _doc(schema: dict, description: str, default=None) -> dict:
    """`schema` with its description (and default) for editors and the generated reference."""
    out = {**schema, "description": description}
    if default is not None:
        out["default"] = default
    return out


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

    def text(description: str, default=None) -> dict:
        return _doc(s, description, default)

    allow = {"anyOf": [{"type": "string", "pattern": r"^(?i:(tcp|udp)/\d{1,5}(-\d{1,5})?)$"},
                       {"enum": ["any"] + names}, s]}
    status = _doc({"enum": list(ATTESTATION_STATUSES) + [True, False]},
                  "yes, no or partial (true and false mean yes and no)")
    attestation = {"anyOf": [status, obj({
        "status": status,
        "evidence": text("where the proof is (a document, a configuration review)"),
        "note": text("free text"),
        "date": _doc({"type": "string", "format": "date"}, "when it was last verified, YYYY-MM-DD")},
        ["status"])]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://plantguard.invalid/site.schema.json",
        "title": "plantguard site file",
        **obj({
            "site": text("the site's name, shown in reports (default: the file name without extension)"),
            "description": text("free text about the site"),
            "timezone": text("time zone of the maintenance windows: an IANA name (Europe/Berlin) or UTC+HH:MM",
                             "UTC"),
            "organization_size": _doc({"enum": list(ORGANIZATION_SIZES)},
                                      "shapes the roadmap's order and guidance", "medium"),
            "zones": _doc(lst(obj({
                "name": _doc({"type": "string", "pattern": _NAME.pattern},
                             "unique zone name: letters, digits, '.', '_' or '-', up to 64 characters"),
                "kind": _doc({"enum": list(ZONE_KINDS)}, "what the zone is (IT, DMZ or an OT level)"),
                "networks": _doc(lst(ip_or_net), "the zone's networks; networks of different zones may not "
                                                 "overlap (a zone needs networks or VLANs)"),
                "vlans": _doc(lst({"type": "integer", "minimum": 0, "maximum": 4095}),
                              "VLAN IDs, used for addresses no network covers"),
                "description": text("free text")}, ["name", "kind"])),
                "IEC 62443 zones: where every address belongs"),
            "conduits": _doc(lst(obj({
                "from": text("the clients' zone"),
                "to": text("the servers' zone (another zone)"),
                "allow": _doc(lst(allow), "what may cross: tcp/PORT, udp/PORT, tcp/LOW-HIGH, a protocol name or any"),
                "bidirectional": _doc({"type": "boolean"}, "also allow the same from `to` to `from`", False),
                "description": text("free text")}, ["from", "to", "allow"])),
                "the only zone-to-zone traffic allowed (inside a zone everything is)"),
            "egress": _doc(lst(obj({
                "zone": text("the zone whose outbound traffic is restricted (one rule per zone)"),
                "allow": _doc(lst(ip_or_net), "the destinations outside the zone it may reach", []),
                "description": text("free text")}, ["zone"])),
                "deny-all outbound for these zones, except the listed destinations"),
            "engineering_workstations": _doc(lst(ip_or_net), "the only hosts allowed to write to controllers "
                                                             "or change their programs"),
            "assets": _doc(lst({**obj({
                "ip": text("IP address (an asset needs an ip or a mac)"),
                "mac": _doc({"type": "string", "pattern": _MAC.pattern}, "MAC address aa:bb:cc:dd:ee:ff"),
                "name": text("the device's name in reports"),
                "role": _doc({"enum": list(ASSET_ROLES)}, "what the device is"),
                "vendor": text("manufacturer"), "product": text("product name"), "model": text("model or order number"),
                "firmware": text("firmware version (matched against advisories)"), "serial": text("serial number"),
                "criticality": _doc({"enum": list(CRITICALITIES)}, "how much production depends on it"),
                "sbom": text("path to its SBOM (CycloneDX or SPDX), relative to the site file"),
                "zone": text("the zone it belongs to (a declared zone)"),
                "notes": text("free text"), "owner": text("who answers for the device")}),
                "anyOf": [{"required": ["ip"]}, {"required": ["mac"]}]}),
                "the declared inventory: devices seen but not listed are reported"),
            "maintenance_windows": _doc(lst(obj({
                "name": text("shown in findings (default: window N, its place in the list)"), "description": text("free text"),
                "days": _doc({"anyOf": [{"enum": list(DAY_GROUPS)}, lst({"enum": list(DAYS)})]},
                             "a list of mon..sun, or daily, weekdays or weekends"),
                "start": _doc({"type": "string", "pattern": _HHMM.pattern}, "local start time \"HH:MM\" (quote it)"),
                "hours": _doc({"type": "number", "exclusiveMinimum": 0, "maximum": 168}, "how long it lasts"),
                "zones": _doc(lst(s), "the zones it applies to (default: all zones)")}, ["days", "start", "hours"])),
                "when controller program, firmware and run/stop changes are expected"),
            "attestations": _doc(obj({k: _doc(attestation, ATTESTATIONS[k]["title"]) for k in ATTESTATION_IDS}),
                                 "practices traffic cannot show, stated by the site; missing ones are "
                                 "reported as not attested"),
            "sboms": _doc(lst({**obj({
                "file": text("path to a CycloneDX or SPDX file, relative to the site file"),
                "asset": text("the asset it describes: an IP or an asset name"),
                "product": text("or the product it describes"),
                "description": text("free text")}, ["file"]),
                "anyOf": [{"required": ["asset"]}, {"required": ["product"]}]}),
                "software bills of materials not tied to one asset entry"),
            "remote_access": _doc(lst(obj({
                "name": text("the access path's name"), "host": _doc(ip_or_net, "the gateway or jump host"),
                "peers": _doc(lst(ip_or_net), "the outside addresses allowed to use it"),
                "mfa": _doc({"type": "boolean"}, "whether it asks for a second factor"),
                "vendor": text("the remote-access product or service"),
                "description": text("free text")}, ["name", "host"])),
                "declared remote-access paths into the plant"),
            "suppressions": _doc(lst(_suppression_schema()), "accepted risks: findings left out of the failing "
                                 "counts until their expiry (the same entries as a --suppress file)"),
            "probe": _doc(_probe_schema(), "what `plantguard probe --send` may ask, zone by zone (without it, "
                          "nothing is sent)"),
        }),
    }


def _probe_schema() -> dict:
    """The probe allow-list, as probe.policy.ProbePolicy declares it."""
    from plantguard.probe.policy import ProbePolicy
    return ProbePolicy.model_json_schema()


def _suppression_schema() -> dict:
    """An accepted risk, as suppress.Entry declares it."""
    from plantguard.suppress import Entry
    return Entry.model_json_schema()
