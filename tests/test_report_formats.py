"""Every report format from the sample contract and from near-empty ones: JSON round trip and key
order, CSV that parses (and cannot run formulas), SARIF 2.1.0 structure, Markdown that attacker
strings cannot break."""
from __future__ import annotations

import copy
import csv
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from plantguard.report import FORMATS, render

# the formats rendered as text; pdf (bytes, printed by Chromium) has its own tests: test_report_pdf.py
TEXT_FORMATS = tuple(f for f in FORMATS if f != "pdf")
from plantguard.report.render import TOP_LEVEL_ORDER

SAMPLE = Path(__file__).parent / "fixtures" / "contract_sample.json"
HOSTILE = '<script>alert("x")</script>|=cmd|\' [link](javascript:alert(1)) **b**'


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


EMPTYISH = [
    {},
    {"plantguard": "0.1.0", "site": None, "organization_size": None, "captures": [], "zones": [], "assets": [],
     "flows": [], "findings": [], "checks_not_run": [], "compliance": {}, "roadmap": {}, "patch_plan": [],
     "attestations": [], "summary": {"assets": 0, "findings": {}}, "counters": {}, "notes": []},
    # wrong types everywhere: reports must still render
    {"plantguard": 1, "site": ["x"], "captures": {"a": 1}, "zones": "z", "assets": [None, 3, {"ip": 5}],
     "flows": [{"src": None}], "findings": [None, {"status": "fail", "evidence": "x", "controls": []}],
     "checks_not_run": [1], "compliance": {"iec62443-3-3": {"controls": [None, {"id": 1}]}},
     "roadmap": {"immediate": [None]}, "patch_plan": [1, {"a": [1]}], "attestations": [None], "notes": "n"},
]


def hostile(sample: dict) -> dict:
    c = copy.deepcopy(sample)
    c["assets"][0]["identity"]["name"] = HOSTILE
    c["findings"][0]["title"] = HOSTILE
    c["findings"][0]["evidence"][0]["detail"] = HOSTILE
    c["findings"][1]["title"] = "=HYPERLINK(\"http://evil\",\"click\")"
    c["zones"][0]["name"] = HOSTILE
    c["flows"][0]["app"] = HOSTILE
    return c


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_every_format_renders_sample_and_emptyish(sample, fmt):
    out = render(sample, fmt)
    assert isinstance(out, str) and len(out) > 100
    assert render(sample, fmt) == out           # deterministic
    for c in EMPTYISH:
        assert isinstance(render(c, fmt), str)
    assert isinstance(render(None, fmt), str)  # not even a dict


def test_unknown_format_is_a_clear_error(sample):
    with pytest.raises(ValueError, match="unknown report format 'docx'; choose one of html, md, json, sarif, csv, pdf"):
        render(sample, "docx")
    assert render(sample, "markdown") == render(sample, "md")


def test_formats_are_the_registry_in_the_order_offered():
    from plantguard.report.registry import names, renderers
    assert FORMATS == names("assess") == ("html", "md", "json", "sarif", "csv", "pdf")
    assert names("inventory") == ("table", "json", "csv") and names("plan") == ("csv", "json", "text")
    for target in ("assess", "inventory", "plan"):
        for r in renderers(target):
            assert r.extension and "/" in r.media_type and target in r.targets and callable(r.render)
    assert {r.name: r.extension for r in renderers("assess")} == {
        "html": "html", "md": "md", "json": "json", "sarif": "sarif", "csv": "csv", "pdf": "pdf"}


def test_a_renderer_registered_at_run_time_renders(sample):
    from plantguard.report import formats
    from plantguard.report.registry import Renderer, names, register, renderer, unregister
    toy = Renderer("toy", "txt", "text/plain", lambda c: f"{len(c.get('findings', []))} findings\n",
                   ("assess", "plan"))
    assert register(toy) is toy and register(toy) is toy      # the same renderer again is fine
    try:
        assert render(sample, "toy") == f"{len(sample['findings'])} findings\n" and render(None, "toy") == "0 findings\n"
        assert names("assess")[-1] == "toy" == formats()[-1] and renderer("toy", "plan") is toy
        assert "toy" not in names("inventory")
        with pytest.raises(ValueError, match="already registered"):
            register(Renderer("toy", "toy", "text/plain", str, ("plan",)))
        with pytest.raises(ValueError, match="already registered"):
            register(Renderer("csv", "csv", "text/csv", str, ("assess",)))
    finally:
        unregister("toy")
    assert "toy" not in formats() and "toy" not in names("plan")
    with pytest.raises(ValueError, match="unknown report format 'toy'"):
        render(sample, "toy")


def test_renderer_declarations_are_checked():
    from plantguard.report.registry import Renderer, renderer
    with pytest.raises(ValueError, match="targets"):
        Renderer("x", "x", "text/plain", str, ("report",))
    with pytest.raises(ValueError, match="lower case"):
        Renderer("X", "x", "text/plain", str, ("assess",))
    with pytest.raises(TypeError):
        Renderer("x", "x", "text/plain", "not callable", ("assess",))
    assert Renderer("x", "x", "text/plain", str, "plan").targets == ("plan",)
    with pytest.raises(ValueError, match="unknown inventory format 'html'; choose one of table, json, csv"):
        renderer("html", "inventory")


def test_json_round_trip_and_stable_key_order(sample):
    out = render(sample, "json")
    assert json.loads(out) == sample
    keys = list(json.loads(out))
    assert keys[:4] == ["plantguard", "site", "organization_size", "captures"]
    assert keys == [k for k in TOP_LEVEL_ORDER if k in sample]
    shuffled = dict(reversed(list(sample.items())))
    assert render(shuffled, "json") == out
    assert out.endswith("\n") and out.startswith("{\n  \"plantguard\"")


def test_json_handles_non_json_values():
    @dataclass
    class Zone:
        name: str

    out = json.loads(render({"zones": {"b", "a"}, "x": Zone("control"), "b": b"\xff", "extra": 1}, "json"))
    assert out["zones"] == ["a", "b"] and out["x"] == {"name": "control"} and out["b"] == "\ufffd"
    assert list(out) == ["zones", "b", "extra", "x"]


def test_csv_one_row_per_finding(sample):
    rows = list(csv.DictReader(io.StringIO(render(sample, "csv"))))
    assert len(rows) == len(sample["findings"])
    first = rows[0]
    f = sample["findings"][0]
    assert (first["check"], first["status"], first["severity"]) == (f["check"], f["status"], f["severity"])
    assert first["assets"] == "10.10.2.31; 10.10.1.20"
    assert first["first_capture"] == "captures/line3-2024-03-04.pcapng" and first["first_frame"] == "48211"
    assert first["evidence"].startswith("captures/line3-2024-03-04.pcapng#48211 @2024-03-04T08:14:03")
    assert first["iec62443-3-3"] == "SR 1.5; SR 1.7; SR 2.1" and first["attack"] == "T0812; T0859"
    assert rows[1]["evidence_total"] == "14" and rows[1]["evidence"].endswith("(+12 more)")
    passes = [r for r in rows if r["status"] == "pass"]
    assert len(passes) == 3 and passes[0]["evidence"] == ""


def test_csv_neutralises_formulas(sample):
    rows = list(csv.DictReader(io.StringIO(render(hostile(sample), "csv"))))
    assert rows[1]["title"].startswith("'=HYPERLINK")
    assert rows[0]["title"] == HOSTILE          # text kept exactly, only formulas are defused
    for r in rows:
        for v in r.values():
            assert not v.startswith(("=", "+", "@")), v


LEVELS = {"none", "note", "warning", "error"}


def check_sarif_structure(doc: dict) -> None:
    """The parts of SARIF 2.1.0 that are required, or that consumers depend on."""
    assert doc["version"] == "2.1.0" and "sarif-2.1.0" in doc["$schema"]
    assert isinstance(doc["runs"], list) and len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "plantguard"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for r in driver["rules"]:
        assert r["shortDescription"]["text"] and r["defaultConfiguration"]["level"] in LEVELS
        assert re.fullmatch(r"\d+\.\d", r["properties"]["security-severity"])
    for a in run["artifacts"]:
        assert a["location"]["uri"]
    for res in run["results"]:
        assert res["ruleId"] in rule_ids and rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["message"]["text"]
        assert res["kind"] in ("fail", "pass") and res["level"] in LEVELS
        if res["kind"] != "fail":
            assert res["level"] == "none"       # SARIF §3.27.10
        for loc in res.get("locations", []):
            if "physicalLocation" in loc:
                art = loc["physicalLocation"]["artifactLocation"]
                assert run["artifacts"][art["index"]]["location"]["uri"] == art["uri"]
            else:
                assert loc["logicalLocations"][0]["name"]
    for inv in run["invocations"]:
        assert isinstance(inv["executionSuccessful"], bool)
        for n in inv.get("toolExecutionNotifications", []):
            assert n["message"]["text"]


def test_sarif_rules_results_and_locations(sample):
    doc = json.loads(render(sample, "sarif"))
    check_sarif_structure(doc)
    run = doc["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {f["check"] for f in sample["findings"]}
    assert len(run["results"]) == len(sample["findings"])
    crit = run["results"][0]
    assert crit["ruleId"] == "credentials.default" and crit["level"] == "error" and crit["kind"] == "fail"
    loc = crit["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == "captures/line3-2024-03-04.pcapng"
    assert loc["message"]["text"].startswith("frame 48211, 2024-03-04T08:14:03")
    levels = {r["ruleId"]: r["level"] for r in run["results"] if r["kind"] == "fail"}
    assert levels["services.insecure"] == "warning" and levels["inventory.unknown-asset"] == "note"
    assert [r["kind"] for r in run["results"]].count("pass") == 3
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["descriptor"]["id"] for n in notes] == ["sbom.missing", "zerotrust.unauthenticated-control"]
    fps = [r["partialFingerprints"]["plantguardFinding/v1"] for r in run["results"]]
    assert len(set(fps)) == len(fps)


def test_sarif_absolute_capture_paths_are_file_uris_and_empty_is_valid(sample):
    c = copy.deepcopy(sample)
    c["findings"][0]["evidence"][0]["capture"] = "/data/plant a/x.pcap"
    doc = json.loads(render(c, "sarif"))
    assert doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "file:///data/plant%20a/x.pcap"
    for e in EMPTYISH:
        check_sarif_structure(json.loads(render(e, "sarif")))
    no_evidence = {"findings": [{"check": "x", "status": "fail", "severity": "high", "title": "t", "assets": ["10.0.0.1"]}]}
    res = json.loads(render(no_evidence, "sarif"))["runs"][0]["results"][0]
    assert res["locations"] == [{"logicalLocations": [{"name": "10.0.0.1", "kind": "device"}]}]


def test_markdown_sections_and_escaping(sample):
    out = render(hostile(sample), "md")
    for heading in ("# Security assessment: Plant A", "## Summary", "## What to do next", "## Zones and traffic",
                    "## Problems found", "## Devices", "## Patch plan", "## Standards"):
        assert heading in out
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "[link](javascript" not in out and "\\[link\\]" in out
    # every table row has as many cells as its header: a '|' in data cannot add a column
    for block in re.findall(r"((?:^\|.*\|\n)+)", out, flags=re.M):
        lines = block.splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", ln)) for ln in lines}
        assert len(widths) == 1, lines[:3]
    assert "SR 1.5" in out and "Authenticator management" in out


import hypothesis.strategies as st  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["fail", "pass", "critical", "10.0.0.1", "<b>", "=1+1"]))
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                    max_leaves=12)
contract_keys = st.sampled_from(list(TOP_LEVEL_ORDER))
record = st.dictionaries(st.sampled_from(["check", "status", "severity", "title", "assets", "evidence", "controls",
                                          "detail", "src", "dst", "app", "packets", "name", "kind", "zone", "ip",
                                          "identity", "id", "summary", "immediate", "guidance"]), junk, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(contract_keys, st.one_of(junk, st.lists(record, max_size=4),
                                                st.dictionaries(st.text(max_size=6), record, max_size=3)), max_size=10))
def test_garbage_contracts_never_raise(contract):
    for fmt in TEXT_FORMATS:
        assert isinstance(render(contract, fmt), str)


def test_sarif_results_carry_finding_and_incident_ids_on_the_demo(tmp_path):
    """Each SARIF result names its finding (fingerprints, SARIF §3.27.16) and its incident
    (properties.incident): the same ids as the JSON contract of the same assessment."""
    demo = tmp_path / "demo"
    made = subprocess.run([sys.executable, "-m", "plantguard", "demo", "--out", str(demo), "-f", "json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    sarif = tmp_path / "r.sarif"
    # the same assessment as the demo's: with its boundary firewall
    p = subprocess.run([sys.executable, "-m", "plantguard", "assess", str(demo / "demo-plant.pcap"), "--site",
                        str(demo / "site.yaml"), "--firewall", str(demo / "firewall.rules"), "-q", "-f", "sarif",
                        "-o", str(sarif)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode in (0, 1), p.stderr
    contract = json.loads((demo / "plantguard-report.json").read_text())
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert len(results) == len(contract["findings"]) > 0
    got = [(r["fingerprints"]["plantguardFindingId/v1"], r["properties"]["incident"]) for r in results]
    assert got == [(f["id"], f["incident"]) for f in contract["findings"]]
    assert all(fid.startswith("F-") and inc.startswith("I-") for fid, inc in got)
    assert len({fid for fid, _ in got}) == len(got)
    assert len({inc for _, inc in got}) < len(got)     # incidents group findings
