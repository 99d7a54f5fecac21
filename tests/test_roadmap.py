"""The roadmap: severity decides the horizon and the order, the organisation's size shifts the
emphasis, missing attestations and checks that could not run become items."""
from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import example, given, settings

from plantguard.checks.base import EFFORTS, THEMES, CheckMeta, Evidence, Finding
from plantguard.checks.registry import all_checks
from plantguard.compliance.attestations import ATTESTATION_IDS, ATTESTATIONS
from plantguard.contract import assets_from, findings_from, not_run_from, site_from
from plantguard.inventory.asset import Asset
from plantguard.plan.roadmap import GUIDANCE, HORIZONS, build_roadmap
from plantguard.site import Attestation, Site

ALL_YES = {k: Attestation(k, "yes") for k in ATTESTATION_IDS}


def site(size, attestations=None):
    return Site(name="Plant A", organization_size=size,
                attestations=dict(ALL_YES if attestations is None else attestations))


def meta(cid, sev):
    # the roadmap words a registered check by its registered metadata, an unknown one by its finding
    return CheckMeta(cid, cid, "inventory", sev, "r", "fix it", action="a", why="w", effort="low", owner="o",
                     themes=("visibility",))


def fail(cid, sev, *assets):
    return Finding.from_meta(meta(cid, sev), "fail", f"{cid} on {assets}", assets,
                             [Evidence("a.pcap", 1, 1.0, "d")])


def horizon_of(road, check):
    for h in HORIZONS:
        for i, item in enumerate(road[h]):
            if check in item["checks"]:
                return h, i
    return None


def titles(road, h):
    return [i["title"] for i in road[h]]


def test_severity_sets_horizon_and_order():
    findings = [fail("inventory.unknown-asset", "low", "10.0.0.9"),
                fail("crypto.weak-tls", "medium", "10.0.0.8"),
                fail("plc.unauthorized-write", "high", "10.0.0.5"),
                fail("credentials.default", "critical", "10.0.0.6"),
                Finding.from_meta(meta("egress.internet", "high"), "pass", "ok")]
    road = build_roadmap(findings, [], site("medium"), [])
    assert horizon_of(road, "credentials.default") == ("immediate", 0)      # critical first
    assert horizon_of(road, "plc.unauthorized-write") == ("immediate", 1)
    assert horizon_of(road, "crypto.weak-tls")[0] == "1-3 months"
    assert horizon_of(road, "inventory.unknown-asset")[0] == "3+ months"
    assert horizon_of(road, "egress.internet") is None                        # passes are not work
    # every attestation confirmed: no attestation items
    assert not [i for h in HORIZONS for i in road[h] if i["source"] == "attestation"]
    for h in HORIZONS:
        for item in road[h]:
            assert set(item) >= {"title", "why", "checks", "assets", "effort", "owner_hint"}
            assert item["effort"] in ("low", "medium", "high")


def test_findings_of_one_check_are_grouped_and_controllers_counted():
    findings = [fail("credentials.default", "critical", "10.0.0.5"),
                fail("credentials.default", "high", "10.0.0.6", "10.0.0.5")]
    assets = [Asset(ip="10.0.0.5", role="plc"), Asset(ip="10.0.0.6", role="hmi")]
    road = build_roadmap(findings, [], site("small"), assets)
    items = [i for i in road["immediate"] if i["checks"] == ["credentials.default"]]
    assert len(items) == 1
    assert items[0]["assets"] == ["10.0.0.5", "10.0.0.6"]
    assert items[0]["severity"] == "critical"
    assert "Seen 2 times" in items[0]["why"] and "1 of the devices concerned is a controller" in items[0]["why"]


def test_small_and_large_organisations_get_different_emphasis():
    findings = [fail("services.insecure", "medium", "10.0.0.5"),
                fail("segmentation.vlan-mixing", "medium", "10.0.0.6")]
    small = build_roadmap(findings, [], site("small", {}), [])
    large = build_roadmap(findings, [], site("large", {}), [])
    # hygiene first for a small plant, segmentation first for a large one
    assert horizon_of(small, "services.insecure")[0] == "immediate"
    assert horizon_of(small, "segmentation.vlan-mixing")[0] == "1-3 months"
    assert horizon_of(large, "segmentation.vlan-mixing")[0] == "immediate"
    assert horizon_of(large, "services.insecure")[0] == "1-3 months"
    assert small["guidance"] == GUIDANCE["small"]["text"] != large["guidance"]
    all_small = " ".join(t for h in HORIZONS for t in titles(small, h))
    all_large = " ".join(t for h in HORIZONS for t in titles(large, h))
    assert "managed security service provider" in all_small and "security operations centre" not in all_small
    assert "security operations centre" in all_large and "deep packet inspection" in all_large
    assert "Hunt for threats" in all_large and "Hunt for threats" not in all_small
    assert "firewall" in " ".join(titles(small, "immediate"))
    medium = build_roadmap([], [], site("medium", {}), [])
    ir = [i for h in HORIZONS for i in medium[h] if i.get("attestation") == "incident_response_plan"][0]
    assert ir["emphasis"] and "production downtime" in ir["title"]


def test_missing_partial_and_negative_attestations_become_items():
    att = dict(ALL_YES)
    del att["backups_tested"]
    att["remote_access_mfa"] = Attestation("remote_access_mfa", "no")
    att["patch_schedule"] = Attestation("patch_schedule", "partial")
    road = build_roadmap([], [], site("small", att), [])
    items = {i["attestation"]: i for h in HORIZONS for i in road[h] if i["source"] == "attestation"}
    assert set(items) == {"backups_tested", "remote_access_mfa", "patch_schedule"}
    assert "does not say" in items["backups_tested"]["why"]
    assert "not in place" in items["remote_access_mfa"]["why"]
    assert "partly" in items["patch_schedule"]["why"]
    assert items["remote_access_mfa"] in road["immediate"]                 # small: perimeter first
    assert items["remote_access_mfa"]["controls"]["nist-800-53r5"]


def test_not_run_checks_and_missing_site_file():
    not_run = [{"check": "segmentation.zone-violation", "reason": "needs a site file (zones)"},
               {"check": "vuln.advisory", "reason": "no vulnerability intelligence loaded"},
               {"check": "x.other", "reason": "capture has no timestamps"}]
    road = build_roadmap([fail("credentials.default", "critical", "10.0.0.5")], not_run, None, [])
    assert road["organization_size"] == "medium" and road["size_assumed"] is True
    imm = road["immediate"]
    assert imm[0]["checks"] == ["credentials.default"]
    site_item = [i for i in imm if "site file" in i["title"]][0]
    assert site_item["checks"] == ["segmentation.zone-violation"]
    assert [i for i in imm if i["checks"] == ["vuln.advisory"]]
    assert [i for i in road["1-3 months"] if i["checks"] == ["x.other"]]
    assert not [i for h in HORIZONS for i in road[h] if i["source"] == "attestation"]


def test_unknown_check_uses_its_own_remediation():
    road = build_roadmap(findings_from([{"check": "custom.thing", "status": "fail", "severity": "high",
                                         "title": "Thing broke", "remediation": "Fix the thing", "assets": ["a"]}]),
                         [], site("medium"), [])
    assert road["immediate"][0]["title"] == "Fix the thing"


junk = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3))


finding_dicts = st.fixed_dictionaries(
    {"check": st.one_of(st.sampled_from(["credentials.default", "x.y"]), junk),
     "status": st.one_of(st.just("fail"), junk)},
    optional={"severity": st.one_of(st.sampled_from(["critical", "low"]), junk), "assets": junk,
              "title": junk, "remediation": junk})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(finding_dicts, junk), max_size=6),
       st.lists(st.one_of(st.dictionaries(st.sampled_from(["check", "reason"]), junk), junk), max_size=3),
       st.one_of(st.none(), junk, st.dictionaries(st.sampled_from(["organization_size", "attestations"]), junk)),
       st.lists(st.one_of(junk, st.dictionaries(st.sampled_from(["ip", "mac", "role"]), junk)), max_size=3))
@example([{"check": "a", "status": "fail", "assets": 5, "severity": 3, "title": [1]}],
         [{"check": 1, "reason": None}, 7], 5, 9)
def test_garbage_never_raises(findings, not_run, site_dict, assets):
    # saved-contract JSON, however odd, reaches the roadmap through the contract's loader
    road = build_roadmap(findings_from(findings), not_run_from(not_run), site_from(site_dict), assets_from(assets))
    assert set(HORIZONS) <= set(road)
    for h in HORIZONS:
        for item in road[h]:
            assert isinstance(item["title"], str) and all(isinstance(a, str) for a in item["assets"])


def test_attestation_findings_do_not_duplicate_attestation_items():
    # the attestation checks restate the site's answers as findings; the roadmap shows each once
    att_finding = {"check": "governance.incident-response-plan", "status": "fail", "severity": "high",
                   "title": "OT incident response plan: attested as not in place", "assets": [],
                   "detail": {"attestation": "incident_response_plan", "status": "no"}}
    path_finding = {"check": "access.remote-mfa", "status": "fail", "severity": "high",
                    "title": "Declared remote-access path 'vendor' has no MFA", "assets": ["203.0.113.9"],
                    "detail": {"remote_access": "vendor"}}
    att = dict(ALL_YES)
    att["incident_response_plan"] = Attestation("incident_response_plan", "no")
    road = build_roadmap(findings_from([att_finding, path_finding]), [], site("medium", att), [])
    items = [i for h in HORIZONS for i in road[h]]
    ir = [i for i in items if "governance.incident-response-plan" in i["checks"]]
    assert len(ir) == 1 and ir[0]["source"] == "attestation"
    # the attestation check judged the gap high: the item takes that severity and is due now
    assert ir[0]["severity"] == "high" and ir[0] in road["immediate"]
    mfa = [i for i in items if "access.remote-mfa" in i["checks"]]
    assert len(mfa) == 1 and mfa[0]["source"] == "finding" and mfa[0]["assets"] == ["203.0.113.9"]
    assert mfa[0] in road["immediate"]


def test_every_registered_check_has_a_plain_action():
    """Each check's own metadata words its roadmap item: a failing finding of any registered check
    becomes an item with the check's action, why, effort and owner."""
    checks = [m for m, _ in all_checks()]
    assert len(checks) >= len(ATTESTATIONS) + 15
    for m in checks:
        road = build_roadmap([Finding.from_meta(m, "fail", f"{m.id} failed", ["10.0.0.5"])], [], site("medium"), [])
        [item] = [i for h in HORIZONS for i in road[h] if i["checks"] == [m.id] and i["source"] == "finding"]
        assert (item["title"], item["effort"], item["owner_hint"]) == (m.action, m.effort, m.owner), m.id
        assert item["why"] == m.why and item["effort"] in EFFORTS, m.id


def test_guidance_themes_and_attestation_wording_are_known():
    for g in GUIDANCE.values():
        assert g["themes"] <= set(THEMES)
    assert list(ATTESTATIONS) == list(ATTESTATION_IDS)
    for aid, a in ATTESTATIONS.items():
        road = a["roadmap"]
        assert road["horizon"] in HORIZONS and road["effort"] in EFFORTS, aid
        assert set(road["themes"]) <= set(THEMES), aid
    # only weak remote access may be pulled into "immediate" by the size's emphasis
    assert [aid for aid, a in ATTESTATIONS.items() if a["roadmap"]["urgent"]] == ["remote_access_mfa"]
    mssp = build_roadmap([], [], site("small", {}), [])
    assert [i["title"] for h in HORIZONS for i in mssp[h] if i.get("attestation") == "mssp_or_soc"] == \
        [ATTESTATIONS["mssp_or_soc"]["roadmap"]["action"]["small"]]


def test_immediate_stays_short_but_keeps_every_critical_and_high():
    checks = ["services.insecure", "egress.internet", "segmentation.it-ot-bridge", "credentials.cleartext",
              "crypto.weak-tls", "egress.not-allowlisted", "segmentation.vlan-mixing", "plc.change-outside-window",
              "inventory.unknown-asset", "crypto.cleartext-telemetry", "segmentation.unzoned-host", "sbom.missing"]
    findings = [fail(c, "medium", f"10.0.0.{n}") for n, c in enumerate(checks)]
    findings += [fail(f"x.high{n}", "high", "10.0.1.1") for n in range(12)]
    road = build_roadmap(findings, [], site("small", {}), [])
    imm = road["immediate"]
    assert all(i["severity"] in ("critical", "high") for i in imm[10:])
    assert len([i for i in imm if i["severity"] == "high"]) == 12
    assert all(i["severity"] not in ("critical", "high") for i in road["1-3 months"])
    assert horizon_of(road, "services.insecure")[0] == "1-3 months"   # emphasised, but the list is full


def test_not_run_reasons_with_a_site_file():
    not_run = [{"check": "sbom.incomplete", "reason": "no SBOM declared in the site file or checked into the store"},
               {"check": "vuln.advisory", "reason": "no vulnerability intelligence loaded: run intel import"}]
    road = build_roadmap([], not_run, site("medium"), [])
    items = [i for h in HORIZONS for i in road[h]]
    assert not [i for i in items if "Describe the plant" in i["title"]]
    assert [i["checks"] for i in items if "SBOM" in i["title"]] == [["sbom.incomplete"]]
    assert [i["checks"] for i in road["immediate"] if "advisories" in i["title"]] == [["vuln.advisory"]]


def test_a_saved_contract_read_back_gives_the_same_roadmap_and_compliance(tmp_path):
    """The contract's loader turns saved JSON back into the live types: the roadmap and compliance
    view built from it are the ones the contract holds."""
    import json

    from plantguard.assess import run_assessment
    from plantguard.capture.engine import analyze
    from plantguard.compliance.view import compliance_view
    from plantguard.demo import build_demo
    from plantguard.site import load_site
    pcap, site_file = build_demo(tmp_path)
    saved = json.loads(json.dumps(run_assessment(analyze([pcap]), load_site(site_file), db=None)))
    site_back = site_from(saved)
    assert site_back is not None and site_back.attestations and site_back.zones
    road = build_roadmap(findings_from(saved), not_run_from(saved), site_back, assets_from(saved))
    assert json.dumps(road) == json.dumps(saved["roadmap"])
    assert json.dumps(compliance_view(findings_from(saved), site_back)) == json.dumps(saved["compliance"])
    assert [a.key for a in assets_from(saved)] == [a["ip"] or a["mac"] for a in saved["assets"]]
