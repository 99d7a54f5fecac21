"""What each site attestation (site file `attestations:` keys) vouches for, as controls.

Chosen per control's own scope: a control is listed only when the attested measure is what the
control asks for (e.g. disabled USB ports are media-use restriction, not malware protection).
Frameworks with no fitting control get none rather than a loose one."""
from __future__ import annotations

from typing import Any

ATTESTATIONS: dict[str, dict[str, Any]] = {
    "usb_ports_disabled": {
        "check": "physical.usb-ports",
        "title": "USB ports disabled on plant computers and controllers",
        "controls": {"iec62443-3-3": ["SR 2.3"], "nist-800-53r5": ["MP-7", "SC-41"],
                     "iso27001-2022": ["A.7.10"]}},
    "unused_ethernet_ports_disabled": {
        "check": "physical.ethernet-ports",
        "title": "Unused network switch ports disabled",
        "controls": {"iec62443-3-3": ["SR 7.7"], "nist-800-53r5": ["CM-7", "SC-41"],
                     "iso27001-2022": ["A.8.20"]}},
    "secure_boot": {
        "check": "physical.secure-boot",
        "title": "Secure boot enabled on devices that support it",
        "controls": {"iec62443-3-3": ["SR 3.4"], "nist-800-53r5": ["SI-7", "SI-7(9)"]}},
    "hardware_root_of_trust": {
        "check": "physical.hardware-root-of-trust",
        "title": "Devices anchor their integrity in a hardware root of trust",
        "controls": {"iec62443-3-3": ["SR 3.4"], "nist-800-53r5": ["SI-7(10)", "SC-51"]}},
    "incident_response_plan": {
        "check": "governance.incident-response-plan",
        "title": "An incident response plan that covers production downtime",
        "controls": {"nist-800-53r5": ["IR-8"], "iso27001-2022": ["A.5.24", "A.5.26"]}},
    "patch_schedule": {
        "check": "governance.patch-schedule",
        "title": "A patch schedule for plant systems",
        "controls": {"nist-800-53r5": ["SI-2"], "iso27001-2022": ["A.8.8"]}},
    "sbom_procurement_clause": {
        "check": "governance.sbom-procurement",
        "title": "Purchase contracts require a software bill of materials (SBOM)",
        "controls": {"nist-800-53r5": ["SA-4", "SR-4"], "iso27001-2022": ["A.5.20", "A.5.21"]}},
    "mssp_or_soc": {
        "check": "monitoring.soc",
        "title": "Security monitoring by a managed provider or an own SOC",
        "controls": {"iec62443-3-3": ["SR 6.2"], "nist-800-53r5": ["SI-4", "IR-4"],
                     "iso27001-2022": ["A.8.16"]}},
    "backups_tested": {
        "check": "resilience.backups-tested",
        "title": "Backups of controller programs and configurations, restore tested",
        "controls": {"iec62443-3-3": ["SR 7.3", "SR 7.4"], "nist-800-53r5": ["CP-9", "CP-9(1)"],
                     "iso27001-2022": ["A.8.13"]}},
    "security_training": {
        "check": "governance.security-training",
        "title": "Security training for plant staff",
        "controls": {"nist-800-53r5": ["AT-2", "AT-3"], "iso27001-2022": ["A.6.3"]}},
    "remote_access_mfa": {
        "check": "access.remote-mfa",
        "title": "Remote access requires multi-factor authentication",
        "controls": {"iec62443-3-3": ["SR 1.13", "SR 1.1"], "nist-800-53r5": ["AC-17", "IA-2(1)", "IA-2(2)"],
                     "iso27001-2022": ["A.8.5"]}},
}


def attestation_of(finding: Any) -> tuple[str, str] | None:
    """(attestation id, its status) when a finding only restates a site attestation (the
    attestation checks put both in the finding's detail), else None. Status "missing" means the
    site file does not mention it."""
    detail = finding.get("detail") if isinstance(finding, dict) else getattr(finding, "extra", None)
    if not isinstance(detail, dict) or not isinstance(detail.get("attestation"), str):
        return None
    status = detail.get("attestation_status", detail.get("status"))
    return detail["attestation"], status if isinstance(status, str) else ""


def site_attestations(site: Any) -> dict[str, dict[str, Any]]:
    """{id: {"id", "status", "evidence", "date"}} from a Site object, a site dict or a contract
    dict (whose "attestations" is a list). Unknown shapes give {}."""
    if site is None:
        return {}
    raw = site.get("attestations") if isinstance(site, dict) else getattr(site, "attestations", None)
    if isinstance(raw, dict):       # Site.attestations: id -> Attestation (or a bare status)
        items = [({"id": k, "status": v} if isinstance(v, (str, bool)) or v is None else v, k)
                 for k, v in raw.items()]
    elif isinstance(raw, (list, tuple)):   # the contract's list of {"id", "status", ...}
        items = [(a, None) for a in raw]
    else:
        items = []
    out: dict[str, dict[str, Any]] = {}
    for a, key in items:
        get = a.get if isinstance(a, dict) else (lambda k, _a=a: getattr(_a, k, None))
        aid = get("id") or key
        if not aid or not isinstance(aid, str):
            continue
        st = get("status")
        # YAML reads a bare yes/no as a boolean
        status = {True: "yes", False: "no"}.get(st) if isinstance(st, bool) else str(st or "").strip().lower()
        out[aid] = {"id": aid, "status": status if status in ("yes", "no", "partial") else "no",
                    "evidence": get("evidence"), "date": get("date")}
    return out
