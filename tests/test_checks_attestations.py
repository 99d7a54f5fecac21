"""Attestation checks: yes passes, no fails, partial fails one severity lower, missing fails low."""
from __future__ import annotations

import pytest
from support.checks import result, run, site

from plantguard.checks.attestations import ATTESTATION_CHECKS
from plantguard.compliance import attestations as data
from plantguard.site import ATTESTATION_IDS

SITE = """\
zones:
  - {name: c, kind: ot-control, networks: [10.0.0.0/24]}
attestations:
  usb_ports_disabled: {status: yes, evidence: GPO USB-lock, date: 2023-01-10}
  secure_boot: partial
  incident_response_plan: no
  remote_access_mfa: yes
remote_access:
  - {name: old-modem, host: 10.0.0.200, mfa: no}
"""


def test_every_attestation_id_has_a_check_with_the_contract_ids():
    assert set(ATTESTATION_CHECKS) == set(ATTESTATION_IDS)
    ids = {m.id for m in ATTESTATION_CHECKS.values()}
    assert {"physical.usb-ports", "physical.secure-boot", "governance.incident-response-plan"} <= ids
    assert len(ids) == len(ATTESTATION_IDS)


def test_one_data_file_declares_every_attestation():
    """data/attestations.yaml is the one table: the site file's keys (until the site package
    imports ATTESTATION_IDS from it), the checks' metadata and the compliance links all agree with it."""
    assert data.ATTESTATION_IDS == ATTESTATION_IDS                      # same IDs, same order
    assert list(ATTESTATION_CHECKS) == list(data.ATTESTATIONS)
    for aid, a in data.ATTESTATIONS.items():
        m = ATTESTATION_CHECKS[aid]
        assert (m.id, m.title, m.practice, m.severity, m.risk, m.remediation) == \
            (a["check"], a["title"], a["practice"], a["severity"], a["risk"], a["remediation"]), aid
        assert {fw: list(ids) for fw, ids in m.controls.items()} == a["controls"], aid
        assert list(m.attack) == a["attack"] and m.needs_site, aid
        assert (m.effort, m.owner, list(m.themes)) == (a["roadmap"]["effort"], a["roadmap"]["owner"],
                                                        sorted(a["roadmap"]["themes"])), aid


def test_a_malformed_attestation_entry_fails_with_one_line():
    text = """
usb_ports_disabled:
  check: physical.usb-ports
  title: USB ports disabled
  practice: physical-security
  severity: medium
  risk: r
  remediation: m
  controls: {nist-800-53r5: [MP-7]}
  roadmap: {horizon: 1-3 months, effort: low, owner: OT engineer, themes: [hygiene], why: w}
"""
    with pytest.raises(data.AttestationDataError, match=r"^attestation usb_ports_disabled: missing roadmap\.action$"):
        data.load_attestations(text)
    with pytest.raises(data.AttestationDataError, match="unknown severity 'medium' or practice 'usb'"):
        data.load_attestations(text.replace("physical-security", "usb").replace("why: w", "why: w, action: a"))
    entry = data.load_attestations(text.replace("why: w", "why: w, action: a"))["usb_ports_disabled"]
    assert entry["roadmap"]["urgent"] is False and entry["attack"] == [] and entry["finding_roadmap"]["action"] == ""


def test_yes_passes_with_evidence_and_age(tmp_path):
    [f] = run("physical.usb-ports", result(), site(tmp_path, SITE), assets=[])[0]
    assert f.status == "pass" and f.title == "USB ports disabled on plant computers and controllers: attested (GPO USB-lock; 2023-01-10)"
    assert f.extra["evidence"] == "GPO USB-lock" and f.extra["site_line"] == 4
    assert f.extra["age_days"] == 308           # to the end of the test capture, 2023-11-14


def test_partial_fails_one_severity_lower(tmp_path):
    [f] = run("physical.secure-boot", result(), site(tmp_path, SITE), assets=[])[0]
    assert f.status == "fail" and f.severity == "low" and "only partly" in f.title   # medium -> low


def test_no_fails_at_the_check_severity(tmp_path):
    [f] = run("governance.incident-response-plan", result(), site(tmp_path, SITE), assets=[])[0]
    assert f.status == "fail" and f.severity == "high" and "IR-8" in f.controls["nist-800-53r5"]


def test_missing_fails_low_as_not_attested(tmp_path):
    [f] = run("resilience.backups-tested", result(), site(tmp_path, SITE), assets=[])[0]
    assert f.status == "fail" and f.severity == "low" and f.extra["status"] == "missing"
    assert f.title.endswith("not attested in the site file")


def test_remote_path_without_mfa_fails_even_when_attested(tmp_path):
    findings, _ = run("access.remote-mfa", result(), site(tmp_path, SITE), assets=[])
    assert [f.status for f in findings] == ["pass", "fail"]
    assert findings[1].assets == ["10.0.0.200"] and "old-modem" in findings[1].title


def test_attestations_need_a_site():
    for meta in ATTESTATION_CHECKS.values():
        findings, reason = run(meta.id, result(), None, assets=[])
        assert findings == [] and reason.startswith("needs a site file")
