"""`plantguard site init`: a site file drafted from traffic loads with plantguard's own loader,
and assessing the demo plant with the draft reports the demo's real problems.

The demo plant assessed with its draft and with its hand-written site.yaml fails the same findings
(check, assets, severity) but for these differences, each one a thing traffic cannot show:

1. inventory.unknown-asset for the Raspberry Pi 10.10.1.77 is not reported under the draft: the
   draft writes the observed inventory commented out (every device seen, the rogue one among
   them) and declares none, so the check does not run. Only a person can tell which device
   should not be there; the comment says so.
2. Attestations: the draft attests nothing (the operator's word is not on the wire), so every
   attestation check fails as "not attested" (low): four more failing findings (incident
   response plan, security training, USB ports, tested backups, which the demo attests as in
   place), and three at another severity (remote-access MFA, SBOM procurement clause, secure
   boot: attested "no" in the demo, medium or high; "not attested" under the draft, low).
3. The guest Wi-Fi host's direct path to the S7 (segmentation.it-ot-bridge) is high, not
   critical: traffic cannot tell a guest network from an office one, so the draft calls the
   visitor's VLAN 30 an office zone (kind it; the draft's comments say to change it to guest).

Everything else is the same, because the draft holds back (writes commented out) what the zone
model itself forbids, instead of allowing it as observed: the office laptop's Modbus write and
the visitor's S7 STOP to the control zone stay zone violations (no conduit between an office
zone and an OT zone is drafted), the sensor's traffic to the public cloud stays outside its
zone's egress allow list, and neither host becomes an engineering station (one is in an office
zone; the other only stopped a PLC). The known limitation: any other unwanted flow between zones
would be drafted as a conduit and no longer be reported; a draft cannot know the intended
conduits, as the draft's comments and `site init --help` say. Not a failing finding, but also a
difference: plc.change-outside-window does not run under the draft (no maintenance windows).
"""
from __future__ import annotations

import ipaddress
import re

import pytest
from typer.testing import CliRunner

from conftest import shared_path
from plantguard.assess import run_assessment
from plantguard.capture.engine import analyze
from plantguard.cli import app
from plantguard.compliance.attestations import ATTESTATIONS
from plantguard.demo import build_demo
from plantguard.demo import expected as E
from plantguard.demo import hosts as P
from plantguard.inventory.build import build_assets
from plantguard.model import AnalysisResult
from plantguard.site import load_site, parse_site
from plantguard.site.draft import _quote, draft_text

ATTESTATION_CHECKS = {a["check"] for a in ATTESTATIONS.values()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    pcap, site = build_demo(d)
    result = analyze([pcap])
    text, draft = draft_text(result, "demo (draft)")
    draft_path = d / "draft.yaml"
    draft_path.write_text(text, encoding="utf-8")
    return {"dir": d, "pcap": pcap, "site": site, "result": result, "text": text, "draft": draft,
            "draft_path": draft_path}


@pytest.fixture(scope="module")
def assessed(demo, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.delenv("PLANTGUARD_DB", raising=False)
    mp.chdir(tmp_path_factory.mktemp("cwd"))       # no ./plantguard.db: no intelligence either way
    try:
        hand = run_assessment(demo["result"], load_site(demo["site"]), db=None)
        drafted = run_assessment(demo["result"], load_site(demo["draft_path"]), db=None)
    finally:
        mp.undo()
    return hand, drafted


def _fails(contract) -> dict[tuple, str]:
    return {(f["check"], tuple(sorted(f["assets"]))): f["severity"]
            for f in contract["findings"] if f["status"] == "fail"}


def test_the_draft_loads_with_the_site_loader(demo):
    site = load_site(demo["draft_path"])
    assert demo["text"].startswith("# plantguard site file DRAFT")
    assert "observed, review before use" in demo["text"]
    assert "cannot know" in demo["text"] and "HELD BACK" in demo["text"]
    assert [(z.name, z.kind, [str(n) for n in z.networks], z.vlans) for z in site.zones] == [
        ("control", "ot-control", ["10.10.1.0/24"], [110]),
        ("sensing", "ot-sensing", ["10.10.2.0/24"], [120]),     # not VLAN 110: one sensor is misplaced
        ("dmz", "dmz", ["10.40.0.0/24"], [40]),
        ("office-vlan20", "it", ["10.20.0.0/24"], [20]),
        ("office-vlan30", "it", ["10.30.0.0/24"], [30]),        # the guest Wi-Fi (see 3. above)
    ]
    assert site.engineering_workstations == [P.EWS.ip]
    assert {(c.src, c.dst): sorted(r.text for r in c.allow) for c in site.conduits} == {
        ("control", "sensing"): ["http", "snmp", "telnet"],
        ("sensing", "dmz"): ["mqtt", "tcp/8883"],
    }
    assert {e.zone: [str(n) for n in e.allow] for e in site.egress} == {
        "control": [f"{P.GATEWAY.ip}/32"], "sensing": [f"{P.BROKER.ip}/32"]}
    assert site.organization_size == "small" and "a guess" in demo["text"]
    assert not site.assets and "# assets:" in demo["text"]          # the inventory, commented out


def test_held_back_lines_load_when_uncommented(demo):
    """What the draft holds back is written ready to use: uncommenting it gives a valid file."""
    text = re.sub(r"^(\s*)# (- |assets:)", r"\1\2", demo["text"], flags=re.M)
    text = re.sub(r"^#(   - \{)", r"\1", text, flags=re.M)
    site = parse_site(text, "uncommented.yaml")
    assert ("office-vlan20", "control") in {(c.src, c.dst) for c in site.conduits}
    assert P.CLOUD.ip + "/32" in [str(n) for e in site.egress for n in e.allow]
    assert P.LAPTOP.ip in site.engineering_workstations and len(site.assets) == 22


def test_every_observed_crossing_is_a_conduit_or_held_back(demo):
    site = load_site(demo["draft_path"])
    held = {(c.src, c.dst) for c in demo["draft"].conduits if c.held}
    for f in demo["result"].flows:
        zc, zs = site.zone_of(f.client, f.vlan), site.zone_of(f.server, f.vlan)
        if zc is None or zs is None or zc.name == zs.name:
            continue
        assert site.conduit_allows(zc, zs, f.l4, f.port, f.app) != ((zc.name, zs.name) in held), f


def test_demo_findings_with_the_draft_differ_only_as_documented(assessed):
    hand, drafted = (_fails(c) for c in assessed)
    only_hand = sorted(set(hand) - set(drafted))
    only_draft = sorted(set(drafted) - set(hand))
    other_severity = sorted(k for k in set(hand) & set(drafted) if hand[k] != drafted[k])
    # 1. no declared inventory
    assert only_hand == [("inventory.unknown-asset", (P.ROGUE_PI.ip,))]
    # 2. attestations: "not attested" (low) for all of them
    assert {k[0] for k in only_draft} == {"governance.incident-response-plan", "governance.security-training",
                                          "physical.usb-ports", "resilience.backups-tested"}
    assert all(k[0] in ATTESTATION_CHECKS and drafted[k] == "low" for k in only_draft)
    bridge = ("segmentation.it-ot-bridge", tuple(sorted((P.VISITOR.ip, P.S7.ip))))
    assert {k[0] for k in other_severity if k != bridge} == {
        "access.remote-mfa", "governance.sbom-procurement", "physical.secure-boot"}
    assert all(drafted[k] == "low" for k in other_severity if k != bridge)
    # 3. guest drafted as office
    assert bridge in other_severity and (hand[bridge], drafted[bridge]) == ("critical", "high")
    not_run = {n["check"] for n in assessed[1]["checks_not_run"]}
    assert {"inventory.unknown-asset", "plc.change-outside-window"} <= not_run


def test_every_demo_fault_but_the_unknown_device_is_reported_with_the_draft(assessed):
    drafted = assessed[1]
    fails = [(f["check"], set(f["assets"])) for f in drafted["findings"] if f["status"] == "fail"]
    for fault in E.FAULTS:
        if fault.mark == "fault:unknown-device":
            continue                                 # 1. above
        for check, ips in fault.findings:
            assert any(c == check and ips <= assets for c, assets in fails), (fault.name, check, ips)
    for check, ip in E.MUST_NOT_FAIL:
        assert not any(c == check and ip in assets for c, assets in fails), (check, ip)


@pytest.mark.parametrize("folder", ["pcaps/ICS-Security-Tools/s7", "pcaps/ICS-Security-Tools/EthernetIP",
                                    "pcaps/ICS-Security-Tools/dnp3"])
def test_shared_folders_draft_fewer_zones_than_the_24_guesses(folder):
    path = shared_path(folder)
    result = analyze([path])
    text, _ = draft_text(result, folder.rsplit("/", 1)[-1])
    site = parse_site(text, f"{folder}.yaml")
    guesses = {a.zone for a in build_assets(result, None, []) if a.zone not in (None, "internet", "layer-2")}
    assert 1 <= len(site.zones) < len(guesses), (len(site.zones), sorted(guesses))
    for ip in {ip for f in result.flows for ip in (f.client, f.server)}:
        a = ipaddress.ip_address(ip)
        if a.is_private and not (a.is_loopback or a.is_link_local or a.is_multicast or a.is_unspecified
                                 or ip.endswith(".255")):
            assert site.zone_of(ip) is not None, ip           # every plant address is zoned


def test_no_traffic_drafts_an_empty_but_valid_file():
    text, draft = draft_text(AnalysisResult(), "empty")
    site = parse_site(text, "empty.yaml")
    assert site.zones == [] and site.conduits == [] and draft.devices == 0


def test_strings_from_the_wire_are_quoted_safely():
    nasty = 'a "b" \\c\n# d: {e} [f]\x00\u00e9 ' + "x" * 200
    q = _quote(nasty)
    site = parse_site(f"site: {q}\nzones:\n  - {{name: z, kind: it, networks: [10.0.0.0/24]}}\n", "q.yaml")
    assert site.name.startswith('a "b" \\c # d: {e} [f]') and "\n" not in site.name


# --- the command line -----------------------------------------------------------------------------

def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_init_writes_refuses_to_overwrite_and_check_validates(demo, tmp_path):
    out = tmp_path / "site.yaml"
    r = _run("site", "init", demo["pcap"], "-o", out, "-q")
    assert r.exit_code == 0, r.output
    assert load_site(out).zones and "review it before use" in r.output
    before = out.read_bytes()
    r = _run("site", "init", demo["pcap"], "-o", out, "-q")
    assert r.exit_code == 2 and "exists; use --force" in r.output and out.read_bytes() == before
    out.write_text("zones: []\n")
    r = _run("site", "init", demo["pcap"], "-o", out, "-q", "--force")
    assert r.exit_code == 0 and out.read_bytes() == before          # deterministic
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary left
    r = _run("site", "check", out)
    assert r.exit_code == 0
    assert r.output.strip() == (f"{out}: 5 zones, 2 conduits, 2 egress rules, 1 engineering station, "
                                "0 declared assets, 0 maintenance windows, 0 attestations")


def test_init_to_stdout(demo):
    r = CliRunner().invoke(app, ["site", "init", str(demo["pcap"]), "-o", "-", "-q"])
    assert r.exit_code == 0
    assert "# plantguard site file DRAFT" in r.stdout
    assert parse_site(r.stdout[r.stdout.index("# plantguard"):], "stdout.yaml").zones


def test_check_reports_the_loaders_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("zones:\n  - {name: a, kind: office, networks: [10.0.0.0/24]}\n")
    r = _run("site", "check", bad)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1
    assert f"{bad}:2: zones[0].kind: 'office' is not one of" in lines[0]
    r = _run("site", "check", tmp_path / "missing.yaml")
    assert r.exit_code == 2 and "cannot read site file" in r.output


def test_check_accepts_the_hand_written_demo_site(demo):
    r = _run("site", "check", demo["site"])
    assert r.exit_code == 0
    assert "5 zones, 2 conduits, 1 egress rule, 1 engineering station, 22 declared assets" in r.output
