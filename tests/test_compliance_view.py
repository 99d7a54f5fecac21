"""The compliance view on hand-made findings: fail / pass / attested / none, one-hop expansion with
its path, the OT overlay and ATT&CK views, and saved-contract dicts (odd ones too) read through
the contract's loader."""
from __future__ import annotations

from plantguard.checks.base import CheckMeta, Evidence, Finding
from plantguard.compliance.view import compliance_view
from plantguard.contract import findings_from, site_from
from plantguard.site import Attestation, Site

# the roadmap wording every CheckMeta carries (the view does not read it)
W = {"action": "Fix it", "why": "It is broken.", "effort": "low", "owner": "OT engineer", "themes": ("hygiene",)}

SEG = CheckMeta("segmentation.zone-violation", "Zone violation", "segmentation", "high", "r", "fix", **W,
                controls={"iec62443-3-3": ("SR 5.1",), "nist-800-53r5": ("SC-7",), "iso27001-2022": ("A.8.22",)},
                attack=("T0886",))
CRED = CheckMeta("credentials.default", "Default credentials", "default-credentials", "critical", "r", "fix", **W,
                 controls={"nist-800-53r5": ("IA-5",)}, attack=("T0812",))
SVC = CheckMeta("services.insecure", "Insecure services", "unnecessary-services", "medium", "r", "fix", **W,
                controls={"iec62443-3-3": ("SR 7.7",), "nist-800-53r5": ("CM-7",), "iso27001-2022": ("A.8.20",)})


def ev():
    return [Evidence("plant.pcap", 12, 1700000000.0, "detail")]


def by_id(view, fw):
    return {c["id"]: c for c in view[fw]["controls"]}


def test_fail_pass_and_attested():
    findings = [
        Finding.from_meta(SEG, "pass", "No zone violations"),
        Finding.from_meta(CRED, "fail", "admin/admin accepted by 10.0.0.5", ["10.0.0.5"], ev()),
        Finding.from_meta(CRED, "fail", "root/root accepted by 10.0.0.6", ["10.0.0.6"], ev()),
        Finding.from_meta(SVC, "fail", "Telnet on 10.0.0.5", ["10.0.0.5"], ev()),
        Finding.from_meta(SVC, "pass", "No insecure services on 10.0.0.7", ["10.0.0.7"]),
    ]
    site = Site(name=None, attestations={
        "usb_ports_disabled": Attestation("usb_ports_disabled", "yes", evidence="policy"),
        "backups_tested": Attestation("backups_tested", "no"),
        "unused_ethernet_ports_disabled": Attestation("unused_ethernet_ports_disabled", "yes")})
    v = compliance_view(findings, site, checks=[])
    sr = by_id(v, "iec62443-3-3")
    assert sr["SR 5.1"]["status"] == "pass" and sr["SR 5.1"]["pass"] == 1 and sr["SR 5.1"]["fail"] == 0
    assert sr["SR 5.1"]["checks"] == ["segmentation.zone-violation"]
    # a fail outranks a pass and an attestation on the same control
    assert sr["SR 7.7"]["status"] == "fail" and (sr["SR 7.7"]["fail"], sr["SR 7.7"]["pass"]) == (1, 1)
    assert sr["SR 7.7"]["attestations"] == [{"id": "unused_ethernet_ports_disabled", "status": "yes"}]
    assert sr["SR 2.3"]["status"] == "attested" and sr["SR 2.3"]["checks"] == []
    # an attestation answered "no" does not cover the control
    assert sr["SR 7.3"]["status"] == "none"
    assert sr["SR 7.3"]["attestations"] == [{"id": "backups_tested", "status": "no"}]
    nist = by_id(v, "nist-800-53r5")
    assert nist["IA-5"]["status"] == "fail" and nist["IA-5"]["fail"] == 2
    assert nist["MP-7"]["status"] == "attested"
    assert nist["SC-7"]["status"] == "pass" and nist["SC-7"]["ot_baselines"] == ["LOW", "MOD", "HIGH"]
    iso = by_id(v, "iso27001-2022")
    assert iso["A.8.22"]["status"] == "pass"
    assert iso["A.7.10"]["status"] == "attested"
    assert iso["A.8.20"]["status"] == "fail"
    for fw in ("iec62443-3-3", "nist-800-53r5", "iso27001-2022"):
        s = v[fw]["summary"]
        assert sum(s.values()) == len(v[fw]["controls"])
        assert s["fail"] == sum(1 for c in v[fw]["controls"] if c["status"] == "fail")


def test_one_hop_expansion_records_the_path():
    v = compliance_view([Finding.from_meta(CRED, "fail", "default login", ["10.0.0.5"], ev())], None, checks=[])
    sr = by_id(v, "iec62443-3-3")
    assert sr["SR 1.5"]["status"] == "fail"
    assert sr["SR 1.5"]["via"] == ["credentials.default: via 800-53 IA-5, ATT&CK M0927 labels"]
    iso = by_id(v, "iso27001-2022")
    assert iso["A.5.17"]["via"] == ["credentials.default: via 800-53 IA-5, NIST OLIR"]
    assert "via" not in by_id(v, "nist-800-53r5")["IA-5"]          # cited directly
    # a check citing all frameworks is not expanded
    v2 = compliance_view([Finding.from_meta(SEG, "fail", "x")], None, checks=[])
    assert set(by_id(v2, "iec62443-3-3")) == {"SR 5.1"}
    assert set(by_id(v2, "nist-800-53r5")) == {"SC-7"}


def test_overlay_and_attack_views():
    v = compliance_view([Finding.from_meta(SEG, "fail", "x"), Finding.from_meta(CRED, "pass", "y")], None, checks=[])
    ot = by_id(v, "nist-800-82r3-ot")
    assert set(ot) == {"SC-7", "IA-5"}
    attack = by_id(v, "attack-ics")
    assert attack["T0886"]["status"] == "fail" and attack["T0886"]["title"] == "Remote Services"
    assert {"id": "M0930", "name": "Network Segmentation"} in attack["T0886"]["mitigations"]
    assert attack["T0812"]["status"] == "pass" and "mitigations" not in attack["T0812"]


def test_checks_without_findings_show_none_and_full_view_lists_everything():
    v = compliance_view([], None, checks=[SVC])
    assert by_id(v, "iec62443-3-3")["SR 7.7"]["status"] == "none"
    assert by_id(v, "iec62443-3-3")["SR 7.7"]["checks"] == ["services.insecure"]
    full = compliance_view([], None, full=True, checks=[])
    assert len(full["iec62443-3-3"]["controls"]) == 51
    assert full["iec62443-3-3"]["summary"] == {"fail": 0, "pass": 0, "attested": 0, "none": 51}
    assert len(full["iso27001-2022"]["controls"]) == 93
    assert len(full["nist-800-82r3-ot"]["controls"]) == 420
    assert len(full["attack-ics"]["controls"]) == 81


def test_dict_findings_contract_attestations_odd_spellings_and_unknown_ids():
    findings = [{"check": "x.custom", "status": "fail",
                 "controls": {"iec62443-3-3": ["SR2.1", "SR 9.9"], "nist-800-53r5": ["ac-3"],
                              "iso27001-2022": ["8.3"], "made-up": ["Z"]},
                 "attack": ["t0855", "T9999"]},
                {"check": "y", "status": "weird"}, {"status": "fail"}, {}]
    contract_like = {"attestations": [{"id": "remote_access_mfa", "status": True},
                                      {"id": None, "status": "yes"}, "junk"]}
    v = compliance_view(findings_from(findings), site_from(contract_like), checks=[])
    assert by_id(v, "iec62443-3-3")["SR 2.1"]["status"] == "fail"
    assert by_id(v, "nist-800-53r5")["AC-3"]["status"] == "fail"
    assert by_id(v, "iso27001-2022")["A.8.3"]["status"] == "fail"
    assert by_id(v, "attack-ics")["T0855"]["status"] == "fail"
    assert v["iec62443-3-3"]["unknown_ids"] == ["SR 9.9"]
    assert v["attack-ics"]["unknown_ids"] == ["T9999"]
    assert by_id(v, "iso27001-2022")["A.8.5"]["status"] == "attested"   # YAML true -> "yes"


import hypothesis.strategies as st  # noqa: E402
from hypothesis import given, settings  # noqa: E402

junk = st.one_of(st.none(), st.integers(), st.text(max_size=6), st.lists(st.text(max_size=6), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2))
controls = st.one_of(junk, st.dictionaries(st.sampled_from(["iec62443-3-3", "nist-800-53r5", "iso27001-2022", "x"]),
                                           st.one_of(junk, st.lists(st.sampled_from(["SR 1.1", "AC-3", "A.8.2", "zz"]) | st.integers(), max_size=3)),
                                           max_size=3))
finding = st.fixed_dictionaries({"check": st.one_of(st.sampled_from(["a", "b"]), junk),
                                 "status": st.one_of(st.sampled_from(["pass", "fail"]), junk)},
                                optional={"controls": controls, "attack": st.one_of(junk, st.lists(st.sampled_from(["T0812", "t0x"]) | st.integers(), max_size=2))})


@settings(max_examples=200, deadline=None)
@given(st.one_of(junk, st.lists(st.one_of(finding, junk), max_size=5)),
       st.one_of(junk, st.fixed_dictionaries({"attestations": st.one_of(junk, st.lists(junk | st.fixed_dictionaries({"id": junk, "status": junk}), max_size=3))})))
def test_garbage_never_raises(findings, site):
    v = compliance_view(findings_from(findings), site_from(site), checks=[])
    assert set(v) == {"iec62443-3-3", "nist-800-53r5", "iso27001-2022", "nist-800-82r3-ot", "attack-ics"}


def test_findings_restating_attestations_count_as_declarations():
    meta = CheckMeta("physical.usb-ports", "USB", "physical-security", "medium", "r", "fix", **W,
                     controls={"iec62443-3-3": ("SR 2.3",), "nist-800-53r5": ("MP-7",)})
    ir = CheckMeta("governance.incident-response-plan", "IR", "incident-response", "high", "r", "fix", **W,
                   controls={"nist-800-53r5": ("IR-8",)})
    sec = CheckMeta("governance.security-training", "T", "awareness", "low", "r", "fix", **W,
                    controls={"nist-800-53r5": ("AT-2",)})
    def declared(m, status, title, att, said, **kw):
        f = Finding.from_meta(m, status, title, attestation=att, **kw)
        f.extra["status"] = said
        return f

    findings = [declared(meta, "pass", "USB: attested", "usb_ports_disabled", "yes"),
                declared(ir, "fail", "IR: not in place", "incident_response_plan", "no"),
                declared(sec, "fail", "T: not attested", "security_training", "missing", severity="low")]
    v = compliance_view(findings, None, checks=[])
    nist = by_id(v, "nist-800-53r5")
    assert nist["MP-7"]["status"] == "attested" and nist["MP-7"]["pass"] == 0
    assert nist["IR-8"]["status"] == "fail"            # a declared gap is a gap
    assert nist["AT-2"]["status"] == "none"            # not mentioned: no evidence either way
    assert nist["AT-2"]["attestations"] == [{"id": "security_training", "status": "missing"}]
    # the same through the contract's dicts
    v2 = compliance_view(findings_from([f.as_dict() for f in findings]), None, checks=[])
    assert by_id(v2, "nist-800-53r5") == nist
