"""Practices traffic cannot show (physical ports, secure boot, incident response plan, backups,
training, ...), judged from the site file's `attestations`: "yes" passes, "no" fails, "partial"
fails one severity lower, and a missing attestation fails at low severity as "not attested".
One check per attestation ID, each declared in data/attestations.yaml; the check IDs are stable."""
from __future__ import annotations

from datetime import datetime, timezone

from plantguard.checks.base import SEVERITIES, CheckMeta, Finding
from plantguard.checks.registry import check
from plantguard.compliance.attestations import ATTESTATIONS, roadmap_action


def _meta(att: dict) -> CheckMeta:
    """The check of one attestation, from its entry in data/attestations.yaml. The roadmap
    wording is the attestation's own (medium-size title), unless the entry words the check's
    other findings (finding_roadmap)."""
    road, other = att["roadmap"], att["finding_roadmap"]
    return CheckMeta(id=att["check"], title=att["title"], practice=att["practice"], severity=att["severity"],
                     risk=att["risk"], remediation=att["remediation"],
                     controls={fw: tuple(ids) for fw, ids in att["controls"].items()},
                     attack=tuple(att["attack"]), needs_site=True,
                     action=other["action"] or roadmap_action(att["id"], "medium"),
                     why=other["why"] or road["why"], effort=road["effort"], owner=road["owner"],
                     themes=tuple(road["themes"]))


# attestation ID (site file key) -> the check that reports it
ATTESTATION_CHECKS: dict[str, CheckMeta] = {aid: _meta(att) for aid, att in ATTESTATIONS.items()}


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
