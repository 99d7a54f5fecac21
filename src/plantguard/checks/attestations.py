"""Practices traffic cannot show (physical ports, secure boot, incident response plan, backups,
training, ...), judged from the site file's `attestations`: "yes" passes, "no" fails, "partial"
fails one severity lower, and a missing attestation fails at low severity as "not attested".
One check per attestation ID; the check IDs below are stable."""
from __future__ import annotations

from datetime import datetime, timezone

from plantguard.checks.base import SEVERITIES, CheckMeta, Finding
from plantguard.checks.registry import check


def _meta(check_id, title, practice, severity, risk, remediation, controls, attack=()) -> CheckMeta:
    return CheckMeta(id=check_id, title=title, practice=practice, severity=severity, risk=risk,
                     remediation=remediation, controls=controls, attack=tuple(attack), needs_site=True)


# attestation ID (site file key) -> the check that reports it
ATTESTATION_CHECKS: dict[str, CheckMeta] = {
    "usb_ports_disabled": _meta(
        "physical.usb-ports", "USB ports disabled on OT devices", "physical-security", "medium",
        "Open USB ports let removable media carry malware past every network control.",
        "Disable or lock unused USB ports on controllers, HMIs and workstations; allow only "
        "scanned, registered media.",
        {"iec62443-3-3": ("SR 2.3",), "nist-800-53r5": ("MP-7", "SC-41"), "iso27001-2022": ("A.7.10", "A.8.1")},
        ("T0847",)),
    "unused_ethernet_ports_disabled": _meta(
        "physical.ethernet-ports", "Unused Ethernet ports disabled", "physical-security", "medium",
        "A live, unused switch or device port lets anyone plug a laptop straight into the control network.",
        "Shut down unused switch ports, enable port security, and lock spare device ports.",
        {"iec62443-3-3": ("SR 7.7",), "nist-800-53r5": ("CM-7", "CM-7(9)", "SC-41"), "iso27001-2022": ("A.8.20",)},
        ("T0864",)),
    "secure_boot": _meta(
        "physical.secure-boot", "Secure boot enabled", "device-integrity", "medium",
        "Without secure boot a modified firmware or operating system starts as if it were genuine.",
        "Enable secure boot where devices support it; require it in procurement where they do not.",
        {"iec62443-3-3": ("SR 3.4",), "nist-800-53r5": ("SI-7", "SI-7(9)"), "iso27001-2022": ("A.8.19",)},
        ("T0857", "T0839")),
    "hardware_root_of_trust": _meta(
        "physical.hardware-root-of-trust", "Hardware root of trust", "device-integrity", "low",
        "Keys and integrity measurements kept in software can be extracted or forged once the device is compromised.",
        "Prefer devices with a TPM or secure element holding their identity keys and boot measurements.",
        {"iec62443-3-3": ("SR 3.4", "SR 1.9"), "nist-800-53r5": ("SC-51", "SI-7"), "iso27001-2022": ("A.8.24",)},
        ("T0857",)),
    "incident_response_plan": _meta(
        "governance.incident-response-plan", "OT incident response plan", "incident-response", "high",
        "Without a rehearsed plan, an incident in the plant is handled ad hoc: longer outages, lost evidence.",
        "Write an OT-specific incident response plan (roles, contacts, safe-state procedures), and exercise it yearly.",
        {"nist-800-53r5": ("IR-8", "IR-4"), "iso27001-2022": ("A.5.24", "A.5.26")}),
    "patch_schedule": _meta(
        "governance.patch-schedule", "Patch management schedule", "patch-management", "medium",
        "Without a schedule, OT patches wait for an outage that never comes and known flaws stay open for years.",
        "Agree a patch cadence per asset class, test patches offline, and apply them in maintenance windows.",
        {"nist-800-53r5": ("SI-2", "RA-5"), "iso27001-2022": ("A.8.8",)},
        ("T0866", "T0819")),
    "sbom_procurement_clause": _meta(
        "governance.sbom-procurement", "SBOM required in procurement", "sbom-procurement", "medium",
        "Without a software bill of materials from suppliers, a vulnerable component inside a device stays invisible.",
        "Add a clause to purchase contracts requiring a machine-readable SBOM (CycloneDX or SPDX) and updates to it.",
        {"nist-800-53r5": ("SA-4", "SR-1", "SR-3", "SR-4"), "iso27001-2022": ("A.5.20", "A.5.21")},
        ("T0862",)),
    "mssp_or_soc": _meta(
        "monitoring.soc", "Security monitoring (SOC or MSSP)", "monitoring", "medium",
        "If nobody watches the plant's security events, an intrusion is found by its consequences.",
        "Feed OT network and host events to a SOC (in-house or managed) with OT-aware use cases.",
        {"iec62443-3-3": ("SR 6.2",), "nist-800-53r5": ("SI-4", "IR-4"), "iso27001-2022": ("A.8.16", "A.5.25")}),
    "backups_tested": _meta(
        "resilience.backups-tested", "Backups of controller programs and configurations tested",
        "backup-recovery", "high",
        "An untested backup of PLC programs and configurations may not restore when ransomware or a failure strikes.",
        "Back up controller programs, HMI projects and device configurations; test a restore at least yearly.",
        {"iec62443-3-3": ("SR 7.3", "SR 7.4"), "nist-800-53r5": ("CP-9", "CP-9(1)", "CP-4"),
         "iso27001-2022": ("A.8.13", "A.5.30")},
        ("T0809",)),
    "security_training": _meta(
        "governance.security-training", "Security training for OT staff", "awareness", "low",
        "Operators and engineers who do not know the threats plug in unknown media and open phishing attachments.",
        "Give OT staff and contractors role-based security training, refreshed yearly.",
        {"nist-800-53r5": ("AT-2", "AT-3"), "iso27001-2022": ("A.6.3",)},
        ("T0865", "T0863")),
    "remote_access_mfa": _meta(
        "access.remote-mfa", "Multi-factor authentication for remote access", "remote-access", "high",
        "Remote access protected by a password alone is taken over with one phished or reused password.",
        "Require MFA on every remote-access path into the plant (VPN, jump host, vendor portal).",
        {"iec62443-3-3": ("SR 1.13", "SR 1.1"), "nist-800-53r5": ("IA-2(1)", "IA-2(2)", "AC-17"),
         "iso27001-2022": ("A.8.5", "A.6.7")},
        ("T0822", "T0886")),
}


def _lower(sev: str) -> str:
    i = SEVERITIES.index(sev) if sev in SEVERITIES else 1
    return SEVERITIES[max(1, i - 1)]


def _assessment_time(ctx) -> float:
    caps = getattr(ctx.result, "captures", None) or []
    lasts = [c.last for c in caps if getattr(c, "last", None)]
    return max(lasts) if lasts else datetime.now(timezone.utc).timestamp()


def _judge(ctx, att_id: str, meta: CheckMeta) -> list[Finding]:
    site = ctx.site
    att = site.attestations.get(att_id)
    if att is None:
        return [Finding.from_meta(meta, "fail", f"{meta.title}: not attested in the site file", [],
                                  severity="low", attestation=att_id, status="missing")]
    extra = {"attestation": att_id, "status": att.status, "evidence": att.evidence, "date": att.date,
             "note": att.note, "site_line": att.line}
    if att.date:
        try:
            attested = datetime.strptime(att.date, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
            extra["age_days"] = int((_assessment_time(ctx) - attested) // 86400)
        except ValueError:
            pass
    said = "; ".join(x for x in (att.evidence, att.date) if x)
    suffix = f" ({said})" if said else ""
    if att.status == "yes":
        return [Finding.from_meta(meta, "pass", f"{meta.title}: attested{suffix}", [], **extra)]
    if att.status == "partial":
        return [Finding.from_meta(meta, "fail", f"{meta.title}: only partly in place{suffix}", [],
                                  severity=_lower(meta.severity), **extra)]
    return [Finding.from_meta(meta, "fail", f"{meta.title}: attested as not in place{suffix}", [], **extra)]


def _make(att_id: str, meta: CheckMeta):
    def attestation_check(ctx) -> list[Finding]:
        findings = _judge(ctx, att_id, meta)
        if att_id == "remote_access_mfa":
            findings += _remote_paths_without_mfa(ctx, meta)
        return findings
    attestation_check.__name__ = f"attestation_{att_id}"
    attestation_check.__doc__ = f"{meta.title}, from the site file's attestations.{att_id}."
    return check(meta)(attestation_check)


def _remote_paths_without_mfa(ctx, meta: CheckMeta) -> list[Finding]:
    out = []
    for ra in getattr(ctx.site, "remote_access", ()):
        if ra.mfa is False:
            out.append(Finding.from_meta(meta, "fail", f"Declared remote-access path '{ra.name}' to {ra.host} "
                                                       "has no MFA", [ra.host], remote_access=ra.name,
                                         site_line=ra.line))
    return out


for _att_id, _meta_ in ATTESTATION_CHECKS.items():
    globals()[f"attestation_{_att_id}"] = _make(_att_id, _meta_)
