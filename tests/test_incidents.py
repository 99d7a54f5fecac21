"""Findings grouped into incidents (plan/incidents.py), on the demo plant with the shared
advisories loaded and on real shared captures without a site file: one event is one incident
carrying all its checks, identical devices' advisories are one incident listing the devices,
every finding is in exactly one incident, ids are stable, the reports show and link them."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from conftest import analyze_shared, shared_path

from plantguard.assess import run_assessment
from plantguard.capture.engine import analyze
from plantguard.contract import Assessment, findings_from, validated
from plantguard.demo import build_demo
from plantguard.demo import expected as E
from plantguard.demo import hosts as P
from plantguard.knowledge.intel import import_paths
from plantguard.report import render
from plantguard.site import load_site
from plantguard.store.db import open_engine

SCALANCE_CAPTURES = ("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
                     "pcaps/ICS-Security-Tools/profinet/Profinet_Failed.pcap")
SCALANCE_MACS = {"00:0e:8c:ef:75:c9", "00:1b:1b:34:34:ce"}     # two SCALANCE X-200 switches


@pytest.fixture(scope="module")
def intel(tmp_path_factory):
    db = tmp_path_factory.mktemp("intel") / "intel.db"
    import_paths(open_engine(db), [shared_path("vuln")])
    return str(db)


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo"))


def _demo(demo_files, intel):
    pcap, site = demo_files
    return run_assessment(analyze([pcap]), load_site(site), db=intel)


@pytest.fixture(scope="module")
def demo(demo_files, intel):
    return _demo(demo_files, intel)


@pytest.fixture(scope="module")
def ics_tools():
    """A directory of real third-party captures, assessed without a site file or intel."""
    return run_assessment(analyze_shared("pcaps/ICS-Security-Tools"), None, db=None)


@pytest.fixture(scope="module")
def scalance(intel, tmp_path_factory):
    """Two real captures with one SCALANCE X-200 each, assessed on the command line."""
    out = tmp_path_factory.mktemp("scalance") / "report.json"
    run = subprocess.run([sys.executable, "-m", "plantguard", "assess", *(str(shared_path(p)) for p in SCALANCE_CAPTURES),
                          "--db", intel, "-f", "json", "-o", str(out), "-q"], check=False, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(out.read_text())


def _incident_of(contract, fid):
    iid = next(f["incident"] for f in contract["findings"] if f["id"] == fid)
    return next(i for i in contract["incidents"] if i["id"] == iid)


def _assert_partition(contract):
    findings = {f["id"]: f for f in contract["findings"]}
    assert len(findings) == len(contract["findings"]), "finding ids are unique"
    listed = [fid for i in contract["incidents"] for fid in i["findings"]]
    assert sorted(listed) == sorted(findings), "every finding is in exactly one incident"
    assert len({i["id"] for i in contract["incidents"]}) == len(contract["incidents"])
    for i in contract["incidents"]:
        members = [findings[fid] for fid in i["findings"]]
        assert all(f["incident"] == i["id"] for f in members)
        assert i["checks"] == sorted({f["check"] for f in members})
        fails = [f for f in members if f["status"] == "fail"]
        assert i["status"] == ("fail" if fails else "pass")
        if fails:
            from plantguard.checks.base import severity_rank
            assert i["severity"] == max((f["severity"] for f in fails), key=severity_rank)
    assert contract["summary"]["incidents"] == len(contract["incidents"])


def test_every_demo_fault_on_one_pair_is_one_incident(demo):
    _assert_partition(demo)
    pair_faults = [fault for fault in E.FAULTS if len({a for _, a in fault.findings}) == 1
                   and len(fault.findings[0][1]) == 2]
    assert pair_faults, "the demo has faults that raise several findings on one host pair"
    for fault in pair_faults:
        pair = fault.findings[0][1]
        hits = [f for f in demo["findings"] if f["status"] == "fail" and set(f["assets"]) == pair
                and f["check"] in {c for c, _ in fault.findings}]
        assert {f["check"] for f in hits} == {c for c, _ in fault.findings}, fault.name
        assert len({f["incident"] for f in hits}) == 1, f"{fault.name}: split over several incidents"
        inc = _incident_of(demo, hits[0]["id"])
        assert inc["kind"] == "flow" and {inc["src"], inc["dst"]} == pair
        assert {c for c, _ in fault.findings} <= set(inc["checks"])


def test_office_laptop_writing_the_m340_is_one_incident_of_four_checks(demo):
    inc = next(i for i in demo["incidents"] if i["kind"] == "flow" and {i["src"], i["dst"]} == {P.LAPTOP.ip, P.M340.ip})
    assert (inc["src"], inc["dst"]) == (P.LAPTOP.ip, P.M340.ip)      # the laptop sent the requests
    assert set(inc["checks"]) == {"plc.unauthorized-write", "segmentation.it-ot-bridge",
                                  "segmentation.zone-violation", "zerotrust.unauthenticated-control"}
    assert len(inc["findings"]) == 4 and inc["status"] == "fail" and inc["severity"] == "high"
    assert "office-lt-07" in inc["title"] and "plc-m340" in inc["title"]


def test_a_products_advisories_are_one_incident(demo):
    s7 = [f for f in demo["findings"] if f["check"] == "vuln.advisory" and f["status"] == "fail"
          and f["assets"] == [P.S7.ip]]
    assert len(s7) >= 10, "the shared advisories name the demo's S7-300 many times"
    assert len({f["incident"] for f in s7}) == 1
    inc = _incident_of(demo, s7[0]["id"])
    assert inc["kind"] == "advisory" and inc["assets"] == [P.S7.ip]
    assert (inc["product"], inc["firmware"]) == ("CPU 315-2 PN/DP", "V3.2.6")
    assert sorted(inc["advisories"]) == sorted({f["detail"]["advisory"] for f in s7})
    assert f"{len(inc['advisories'])} advisories on 1 device" in inc["title"]
    # its KEV pass is in the same incident, not an incident of its own
    kev = next(f for f in demo["findings"] if f["check"] == "vuln.known-exploited" and f["assets"] == [P.S7.ip])
    assert kev["incident"] == inc["id"]


def test_identical_devices_advisories_are_one_incident_listing_the_devices(scalance):
    _assert_partition(scalance)
    vuln = [f for f in scalance["findings"] if f["check"].startswith("vuln.") and f["status"] == "fail"
            and set(f["assets"]) <= SCALANCE_MACS]
    assert {a for f in vuln for a in f["assets"]} == SCALANCE_MACS
    assert len(vuln) >= 6                      # 3 advisories x 2 switches
    assert len({f["incident"] for f in vuln}) == 1
    inc = _incident_of(scalance, vuln[0]["id"])
    assert inc["kind"] == "advisory" and set(inc["assets"]) == SCALANCE_MACS
    assert inc["product"] == "SCALANCE X-200" and inc["firmware"] is None
    assert len(inc["advisories"]) == len({f["detail"]["advisory"] for f in vuln}) >= 3
    assert inc["title"].endswith(f"{len(inc['advisories'])} advisories on 2 devices")


def test_real_captures_without_a_site_file(ics_tools):
    _assert_partition(ics_tools)
    findings = {f["id"]: f for f in ics_tools["findings"]}
    talking = {frozenset((fl["src"], fl["dst"])) for fl in ics_tools["flows"]}
    flows = [i for i in ics_tools["incidents"] if i["kind"] == "flow"]
    assert flows and len(ics_tools["incidents"]) < len(findings)
    for i in flows:
        assert frozenset((i["src"], i["dst"])) in talking
        for fid in i["findings"]:
            assert set(findings[fid]["assets"]) == {i["src"], i["dst"]}
    # a station whose writes and program changes to a controller fail both checks: one incident
    both = [i for i in flows if {"plc.unauthorized-write", "plc.unauthorized-program-change"} <= set(i["checks"])]
    assert both
    for i in ics_tools["incidents"]:
        if i["kind"] == "asset":
            assert len(i["practices"]) <= 1, i["title"]


def test_ids_are_stable_across_runs(demo, demo_files, intel, ics_tools):
    again = _demo(demo_files, intel)
    assert [f["id"] for f in again["findings"]] == [f["id"] for f in demo["findings"]]
    assert [(i["id"], i["findings"]) for i in again["incidents"]] == [(i["id"], i["findings"]) for i in demo["incidents"]]
    assert all(f["id"].startswith("F-") for f in demo["findings"])
    assert all(i["id"].startswith("I-") for i in demo["incidents"])
    other = run_assessment(analyze([shared_path("pcaps/ICS-Security-Tools")]), None, db=None)
    assert [f["id"] for f in other["findings"]] == [f["id"] for f in ics_tools["findings"]]


def test_contract_validates_and_an_older_one_still_reads(demo):
    assert json.dumps(validated(demo)) == json.dumps(demo)
    Assessment.model_validate(json.loads(json.dumps(demo)))
    old = _without_incidents(demo)
    assert "incidents" not in validated(old) and "id" not in validated(old)["findings"][0]
    assert [(f.check, f.title) for f in findings_from(old)] == [(f.check, f.title) for f in findings_from(demo)]
    # the reports group an older contract the same way
    assert _incidents_in_html(render(old, "html")) == _incidents_in_html(render(demo, "html"))


def test_roadmap_items_name_their_findings(demo):
    ids = {f["id"] for f in demo["findings"]}
    items = [i for h in ("immediate", "1-3 months", "3+ months") for i in demo["roadmap"][h] if i["source"] == "finding"]
    assert items
    for item in items:
        assert item["findings"] and set(item["findings"]) <= ids
        assert {f["check"] for f in demo["findings"] if f["id"] in item["findings"]} == set(item["checks"])


class _Dom(HTMLParser):
    """Every finding and incident element with its attributes and the incident around it."""

    def __init__(self):
        super().__init__()
        self.stack: list[dict] = []
        self.findings: list[dict] = []
        self.incidents: list[dict] = []
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and (a.get("href") or "").startswith("#"):
            self.hrefs.append(a["href"][1:])
        if tag != "details":
            return
        a["_inside"] = next((x["id"] for x in reversed(self.stack) if x.get("class") == "incident"), None)
        self.stack.append(a)
        if a.get("class") == "incident":
            self.incidents.append(a)
        elif (a.get("class") or "").startswith("finding "):
            self.findings.append(a)

    def handle_endtag(self, tag):
        if tag == "details":
            self.stack.pop()


def _dom(html: str) -> _Dom:
    d = _Dom()
    d.feed(html)
    return d


def _incidents_in_html(html: str) -> list[tuple[str, list[str]]]:
    d = _dom(html)
    return [(i["id"], [f["id"] for f in d.findings if f["_inside"] == i["id"]]) for i in d.incidents]


def test_html_markup(demo):
    d = _dom(render(demo, "html"))
    by_id = {f["id"]: f for f in demo["findings"]}
    zone = {a["ip"]: a.get("zone") for a in demo["assets"]}
    assert sorted(f["id"] for f in d.findings) == sorted(by_id)
    for el in d.findings:
        f = by_id[el["id"]]
        sev = f["severity"] if f["status"] == "fail" else "info"
        assert el["class"] == f"finding f-{sev}" and el["data-severity"] == sev
        assert el["data-status"] == f["status"] and el["data-check"] == f["check"]
        assert el["data-practice"] == f["practice"] and el["data-incident"] == f["incident"] == el["_inside"]
        assert el["data-device"].split() == f["assets"]
        assert el["data-zone"].split() == list(dict.fromkeys(zone[a] for a in f["assets"] if zone.get(a)))
    assert [i["id"] for i in d.incidents] == [i["id"] for i in demo["incidents"]]
    for el, inc in zip(d.incidents, demo["incidents"]):
        assert el["data-incident"] == inc["id"] and el["data-severity"] == inc["severity"]
    # the roadmap and the device table link to incidents that are there
    links = [h for h in d.hrefs if h.startswith("I-")]
    assert links and set(links) <= d.ids
    laptop = _incident_of(demo, next(f["id"] for f in demo["findings"] if f["check"] == "plc.unauthorized-write"
                                     and P.LAPTOP.ip in f["assets"]))
    assert d.hrefs.count(laptop["id"]) >= 3     # two roadmap items at least, two devices


def test_markdown_shows_incidents(demo):
    md = render(demo, "md")
    inc = next(i for i in demo["incidents"] if i["status"] == "fail")
    assert f"- Incident: {inc['id']} ({inc['kind']})" in md
    for fid in inc["findings"]:
        assert f"- Finding: {fid}" in md
    assert md.index("- Incident: " + inc["id"]) < md.index("- Finding: " + inc["findings"][0])


def test_csv_rows_name_their_finding_and_incident(demo):
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(render(demo, "csv"))))
    assert [(r["id"], r["incident"]) for r in rows] == [(f["id"], f["incident"]) for f in demo["findings"]]


def test_hostile_names_are_escaped_in_incidents(demo):
    c = _without_incidents(demo)
    evil = '<script>alert(1)</script>" onmouseover="x'
    for a in c["assets"]:
        if a["ip"] in (P.LAPTOP.ip, P.M340.ip):
            a["identity"]["name"] = evil
            a["zone"] = evil
    html = render(c, "html")
    # the report's one script is its own (report.js); the device's never appears as markup
    assert "<script>alert(1)" not in html and 'onmouseover="x' not in html and "&lt;script&gt;alert(1)" in html
    d = _dom(html)
    titled = [i for i in d.incidents if any(f["_inside"] == i["id"] and P.LAPTOP.ip in f["data-device"].split()
                                            for f in d.findings)]
    assert titled
    hit = next(f for f in d.findings if P.M340.ip in f["data-device"].split())
    assert "<script>alert(1)</script>\"" in hit["data-zone"].replace("_", " ")   # a value, not markup
    md = render(c, "md")
    assert "<script>" not in md and "&lt;script&gt;" in md


def _without_incidents(contract: dict) -> dict:
    """The contract as it was saved before incidents existed."""
    old = copy.deepcopy(contract)
    old.pop("incidents")
    for k in ("incidents", "incidents_failed"):
        old["summary"].pop(k)
    for f in old["findings"]:
        f.pop("id")
        f.pop("incident")
    for h in ("immediate", "1-3 months", "3+ months"):
        for item in old["roadmap"][h]:
            item.pop("findings", None)
    return old
