"""The firewall.* checks, `firewall check` / `explain` and exact reachability.

On the demo plant the boundary firewall (demo/firewall.rules) has one deliberate hole (office ->
the M340's tcp/502) and no rule for the control -> sensing Telnet conduit the capture shows.
Reachability is held against brute force: many random packets evaluated one by one must fall
in a permitted class exactly when the ruleset accepts them, decided by the class's rule. The
configurations are read by the real parsers (firewall/parsers/)."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from netaddr import IPAddress, IPSet

from plantguard.assess import run_assessment
from plantguard.capture.engine import analyze
from plantguard.checks.firewall import FIREWALL_OPTION
from plantguard.contract import validated
from plantguard.demo import FIREWALL_NAME, build_demo
from plantguard.demo import hosts as P
from plantguard.firewall.evaluate import evaluate
from plantguard.firewall.load import detect, load
from plantguard.firewall.model import (
    Binding,
    Chain,
    Match,
    Origin,
    Packet,
    Rule,
    Ruleset,
)
from plantguard.firewall.reach import OUTSIDE, permitted, reach
from plantguard.site.load import load_site



def cli(*args):
    """The real command line, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("fwdemo")
    pcap, site = build_demo(out)
    return pcap, site, out / FIREWALL_NAME


@pytest.fixture(scope="module")
def contract(demo):
    pcap, site, fw = demo
    return run_assessment(analyze([pcap]), load_site(site), db=None, options={FIREWALL_OPTION: [load(fw)]})


def _hole_line(fw: Path) -> int:
    return next(n for n, line in enumerate(fw.read_text().splitlines(), 1) if "--dport 502" in line)


def _fails(contract, check):
    return [f for f in contract["findings"] if f["check"] == check and f["status"] == "fail"]


def test_the_hole_is_found_with_its_rule_line_and_a_witness(contract, demo):
    fw = demo[2]
    line = _hole_line(fw)
    hole = _fails(contract, "firewall.permits-undeclared")
    assert len(hole) == 1, [f["title"] for f in hole]
    f = hole[0]
    assert f["detail"]["from_zone"] == "office" and f["detail"]["to_zone"] == "control"
    ev = f["evidence"][0]
    assert (ev["capture"], ev["frame"]) == (str(fw), line)
    assert "--dport 502" in ev["detail"] and f"-> {P.M340.ip}:502" in ev["detail"]
    # the witness is the class's lowest packet, and the ruleset really accepts it by that line
    assert f["detail"]["witness"] == f"tcp 10.20.0.1:40000 -> {P.M340.ip}:502 (new)"
    v = evaluate(load(fw), Packet("10.20.0.1", P.M340.ip, "tcp", dport=502))
    assert v.action == "accept" and v.rule.origin.line == line
    # the same rule opens office -> OT directly
    assert [x["detail"]["to_zone"] for x in _fails(contract, "firewall.it-ot-open")] == ["control"]


def test_observed_traffic_the_config_would_drop(contract):
    dropped = {tuple(f["assets"][:2]) for f in _fails(contract, "firewall.observed-not-permitted")}
    assert (P.EWS.ip, P.GATEWAY.ip) in dropped          # the Telnet conduit has no rule
    assert (P.VISITOR.ip, P.S7.ip) in dropped           # guest -> control is not permitted
    assert (P.SENSOR_22.ip, P.CLOUD.ip) in dropped      # nor sensing -> the internet
    assert (P.LAPTOP.ip, P.M340.ip) not in dropped      # the hole lets it through
    assert (P.SENSOR_31.ip, P.BROKER.ip) not in dropped  # the MQTT conduit
    telnet = next(f for f in _fails(contract, "firewall.observed-not-permitted") if f["assets"][1] == P.GATEWAY.ip)
    frames = [e for e in telnet["evidence"] if e["capture"].endswith(".pcap")]
    assert frames and frames[0]["frame"] > 0 and "tcp/23" in frames[0]["detail"]
    blocked = [f["detail"]["service"] for f in _fails(contract, "firewall.conduit-blocked")]
    assert blocked == ["tcp/23"]
    assert all(f["severity"] == "info" for f in _fails(contract, "firewall.conduit-blocked"))


def test_what_the_demo_firewall_gets_right_passes(contract):
    passing = {f["check"] for f in contract["findings"] if f["status"] == "pass" and f["check"].startswith("firewall.")}
    assert {"firewall.egress-open", "firewall.any-any", "firewall.shadowed-rule"} <= passing
    assert not [n for n in contract["checks_not_run"] if n["check"].startswith("firewall.")]


def test_without_a_config_the_checks_say_why(demo):
    pcap, site, _ = demo
    c = run_assessment(analyze([pcap]), load_site(site), db=None)
    reasons = {n["check"]: n["reason"] for n in c["checks_not_run"] if n["check"].startswith("firewall.")}
    assert len(reasons) == 7 and all("--firewall" in r for r in reasons.values())


def test_firewall_check_command(demo, tmp_path):
    pcap, site, fw = demo
    res = cli("firewall", "check", fw, pcap, "--site", site, "--format", "json", "-o", "-", "-q")
    assert res.returncode == 0, res.stderr
    c = validated(json.loads(res.stdout))
    checks = {f["check"] for f in c["findings"]}
    assert checks and all(x.startswith("firewall.") for x in checks)
    assert any(f["check"] == "firewall.observed-not-permitted" and f["status"] == "fail" for f in c["findings"])
    table = cli("firewall", "check", fw, "--site", site)
    assert table.returncode == 0, table.stderr
    row = next(r for r in table.stdout.splitlines() if r.startswith("fail\thigh\tfirewall.permits-undeclared"))
    assert row.endswith(f"{fw}:{_hole_line(fw)}")
    # without a capture, the observed check says it could not run
    assert "not run\t\tfirewall.observed-not-permitted" in table.stdout
    sarif = cli("firewall", "check", fw, "--site", site, "-f", "sarif", "-o", tmp_path / "fw.sarif")
    assert sarif.returncode == 0 and json.loads((tmp_path / "fw.sarif").read_text())["runs"]


def test_explain_names_the_deciding_rule(demo):
    _, _, fw = demo
    res = cli("firewall", "explain", fw, "--from", P.LAPTOP.ip, "--to", P.M340.ip, "--port", "tcp/502")
    assert res.returncode == 0, res.stderr
    assert f"ACCEPT by {fw}:{_hole_line(fw)}" in res.stdout and "CONDUITS" in res.stdout
    res = cli("firewall", "explain", fw, "--from", P.EWS.ip, "--to", P.GATEWAY.ip, "--port", "tcp/23")
    assert "DROP" in res.stdout and "policy of chain FORWARD" in res.stdout


@pytest.mark.parametrize("args", [("--from", "10.0.0.1", "--to", "nope"), ("--from", "10.0.0.1", "--to", "10.0.0.2", "--port", "tcp/99999")])
def test_explain_bad_input_is_one_line(demo, args):
    res = cli("firewall", "explain", demo[2], *args)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_unknown_config_is_one_line(tmp_path, demo):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some text\n")
    res = cli("firewall", "check", bad, "--site", demo[1])
    assert res.returncode == 2 and "notes.txt" in res.stderr and res.stderr.count("\n") == 1


def test_detect_formats():
    assert detect("*filter\n:INPUT ACCEPT [0:0]\n") == "iptables"
    assert detect('{"nftables": [{"metainfo": {}}]}') == "nftables"
    assert detect("config firewall policy\n    edit 1\n") == "fortios"
    assert detect("<?xml version='1.0'?>\n<pfsense>\n") == "pfsense"
    assert detect("hostname rtr1\n!\ninterface Gi0/0\n") == "cisco"
    assert detect("hello") is None


# -- exactness against brute force --------------------------------------------------------------
def _o(n: int, text: str = "") -> Origin:
    return Origin("hand.rules", n, text or f"rule {n}")


def _hand_made() -> Ruleset:
    """Jumps, a return, a goto, negation, port ranges, sport, ICMP types, a non-deciding rule."""
    net = IPSet
    fwd = Chain("FORWARD", hook="forward", policy="drop", rules=[
        Rule(Match(states=frozenset({"established", "related"})), "accept", _o(1)),
        Rule(Match(), "continue", _o(2, "-j LOG")),
        Rule(Match(src=net(["10.1.0.0/25"]), protocols=frozenset({"tcp"}), dport=((500, 510),)), "jump", _o(3), "OT"),
        Rule(Match(src=net(["10.1.0.0/24"]), dst=net(["10.2.0.7/32"]), protocols=frozenset({"udp"})), "goto", _o(4), "UDP"),
        Rule(Match(dst=net(["10.2.0.0/24"]), protocols=frozenset({"icmp"}), icmp_types=frozenset({8})), "accept", _o(5)),
        Rule(Match(src=net(["10.1.0.128/25"]), dst=net(["10.2.0.0/28"]), protocols=frozenset({"tcp"}),
                   dport=((1, 1023),), negate=frozenset({"dst"})), "accept", _o(6)),
        Rule(Match(src=net(["10.1.0.0/24"]), dst=net(["8.8.8.8/32"]), protocols=frozenset({"udp"}), dport=((53, 53),)),
             "accept", _o(7)),
        Rule(Match(src=net(["10.1.0.0/24"]), protocols=frozenset({"tcp"}), sport=((1024, 65535),), dport=((443, 443),),
                   dst=net(["10.2.0.0/24"])), "reject", _o(8)),
        Rule(Match(src=net(["10.1.0.0/24"]), protocols=frozenset({"tcp"}), dport=((443, 443),)), "accept", _o(9)),
    ])
    ot = Chain("OT", rules=[
        Rule(Match(dst=net(["10.2.0.10/31"]), dport=((502, 502),), protocols=frozenset({"tcp"})), "accept", _o(10)),
        Rule(Match(dst=net(["10.2.0.64/26"])), "drop", _o(11)),
        Rule(Match(), "return", _o(12)),
    ])
    udp = Chain("UDP", rules=[Rule(Match(dport=((100, 200),), protocols=frozenset({"udp"})), "accept", _o(13))])
    return Ruleset("hand.rules", "iptables", {c.name: c for c in (fwd, ot, udp)}, [Binding("FORWARD")])


def _random_packet(rnd: random.Random, src: IPSet, dst: IPSet) -> Packet:
    def pick(s: IPSet) -> str:
        ranges = list(s.iter_ipranges())
        r = rnd.choice(ranges)
        return str(IPAddress(rnd.randint(r.first, min(r.last, r.first + 4096)) if rnd.random() < .9 else r.first))
    proto = rnd.choice(["tcp", "tcp", "udp", "icmp", "gre"])
    if proto in ("tcp", "udp"):
        port = rnd.choice([rnd.randint(0, 65535), rnd.randint(0, 1100), 53, 443, 502, 501, 510, 511, 100, 200])
        return Packet(pick(src), pick(dst), proto, sport=rnd.choice([40000, 53, 1023, 1024]), dport=port)
    if proto == "icmp":
        return Packet(pick(src), pick(dst), proto, icmp_type=rnd.choice([0, 3, 8, 8, 11]))
    return Packet(pick(src), pick(dst), proto)


def _in_class(p, c) -> bool:
    if p.src not in c.src or p.dst not in c.dst or c.protocol != {"gre": "gre"}.get(p.protocol, p.protocol):
        return c.protocol == "253" and p.protocol == "gre" and p.src in c.src and p.dst in c.dst
    if c.sport is not None and not any(lo <= p.sport <= hi for lo, hi in c.sport):
        return False
    value = p.dport if p.protocol in ("tcp", "udp") else p.icmp_type
    return c.ports is None or any(lo <= value <= hi for lo, hi in c.ports)


def test_reachability_is_exact_against_brute_force():
    rs = _hand_made()
    src, dst = IPSet(["10.1.0.0/24"]), IPSet(["10.2.0.0/24", "8.8.8.0/24"])
    classes, n, short = permitted(rs, src, dst)
    assert not short and n > 100
    rnd = random.Random(15)
    accepted = 0
    for _ in range(6000):
        p = _random_packet(rnd, src, dst)
        v = evaluate(rs, p)
        hits = [c for c in classes if _in_class(p, c)]
        assert len(hits) <= 1, p
        if v.action == "accept":
            accepted += 1
            assert hits and hits[0].rule is v.rule, (p, v)
        else:
            assert not hits, (p, v, hits)
    assert 300 < accepted < 5700          # both outcomes were exercised
    for c in classes:                       # each class's witness is in it and is accepted by its rule
        assert _in_class(c.witness, c) and evaluate(rs, c.witness).rule is c.rule


def test_reach_per_zone_pair_and_outside():
    rs = _hand_made()
    r = reach(rs, {"a": IPSet(["10.1.0.0/24"]), "b": IPSet(["10.2.0.0/24"])})
    assert set(r.pairs) == {("a", "b"), ("a", OUTSIDE), ("b", "a"), ("b", OUTSIDE)}
    out = r.pairs[("a", OUTSIDE)]
    dns = [c for c in out if c.rule is not None and c.rule.origin.line == 7]
    assert dns and dns[0].dst == IPSet(["8.8.8.8/32"]) and dns[0].ports == ((53, 53),)
    assert not r.pairs[("b", "a")]          # nothing from b is permitted


def test_loops_end_in_a_drop():
    loop = Ruleset("loop.rules", "iptables", {
        "FORWARD": Chain("FORWARD", [Rule(Match(), "jump", _o(1), "A")], hook="forward", policy="accept"),
        "A": Chain("A", [Rule(Match(), "jump", _o(2), "B")]),
        "B": Chain("B", [Rule(Match(), "jump", _o(3), "A")])}, [Binding("FORWARD")])
    v = evaluate(loop, Packet("10.0.0.1", "10.0.0.2", dport=80))
    assert v.action == "drop" and "loop" in v.reason


def test_interface_bindings_and_implicit_deny():
    acl = Ruleset("rtr.cfg", "cisco-ios", {
        "OT-IN": Chain("OT-IN", [Rule(Match(dst=IPSet(["10.9.0.5/32"]), protocols=frozenset({"tcp"}), dport=((502, 502),)),
                                      "accept", _o(1))])},
        [Binding("OT-IN", "out", "Gi0/1")], {"Gi0/0": IPSet(["10.8.0.0/24"]), "Gi0/1": IPSet(["10.9.0.0/24"])})
    assert evaluate(acl, Packet("10.8.0.3", "10.9.0.5", dport=502)).action == "accept"
    v = evaluate(acl, Packet("10.8.0.3", "10.9.0.5", dport=503))
    assert v.action == "drop" and v.rule is None and "implicit deny" in v.reason
    assert evaluate(acl, Packet("10.9.0.5", "10.8.0.3", dport=503)).action == "accept"   # no list out of Gi0/0


def test_shadowed_and_any_any(demo):
    from plantguard.checks.base import AssessContext
    from plantguard.checks.firewall import any_any, shadowed_rule
    from plantguard.model import AnalysisResult
    rs = Ruleset("shadow.rules", "iptables", {"FORWARD": Chain("FORWARD", [
        Rule(Match(src=IPSet(["10.0.0.0/8"]), protocols=frozenset({"tcp"})), "accept", _o(1)),
        Rule(Match(src=IPSet(["10.1.0.0/16"]), protocols=frozenset({"tcp"}), dport=((22, 22),)), "drop", _o(2)),
        Rule(Match(src=IPSet(["10.1.0.0/16"]), protocols=frozenset({"udp"})), "drop", _o(3)),
        Rule(Match(), "accept", _o(4)),
    ], hook="forward", policy="drop")}, [Binding("FORWARD")])
    ctx = AssessContext(AnalysisResult(), [], load_site(demo[1]), None, {FIREWALL_OPTION: [rs]})
    shadowed = [f for f in shadowed_rule(ctx) if f.status == "fail"]
    assert [f.extra["line"] for f in shadowed] == [2]
    assert "is never reached: hand.rules:1 decides all its packets" in shadowed[0].title
    anys = [f for f in any_any(ctx) if f.status == "fail"]
    assert [f.extra["line"] for f in anys] == [4]


def test_assess_with_firewall_includes_the_checks(demo):
    pcap, site, fw = demo
    res = cli("assess", pcap, "--site", site, "--firewall", fw, "-f", "json", "-o", "-", "-q")
    assert res.returncode == 0, res.stderr
    c = json.loads(res.stdout)
    assert any(f["check"] == "firewall.permits-undeclared" and f["status"] == "fail" for f in c["findings"])
    assert any(f["check"] == "plc.unauthorized-write" for f in c["findings"])   # and the others still run


def test_reach_stays_fast_on_a_larger_ruleset():
    """200 address-and-port rules: the pieces sharing the same rules are evaluated once."""
    rnd = random.Random(1)
    rules = [Rule(Match(src=IPSet([f"10.1.{rnd.randint(0, 3)}.0/{rnd.choice([24, 26, 28, 32])}"]),
                        dst=IPSet([f"10.2.{rnd.randint(0, 3)}.{rnd.randint(0, 255)}/32"]),
                        protocols=frozenset({rnd.choice(["tcp", "udp"])}),
                        dport=((p := rnd.randint(1, 2000), p + rnd.choice([0, 0, 10])),)),
                  rnd.choice(["accept", "drop"]), _o(i + 1)) for i in range(200)]
    rs = Ruleset("big", "iptables", {"FORWARD": Chain("FORWARD", rules, hook="forward", policy="drop")},
                 [Binding("FORWARD")])
    r = reach(rs, {"a": IPSet(["10.1.0.0/22"]), "b": IPSet(["10.2.0.0/22"])})
    assert not r.notes                      # not cut short
    rnd2 = random.Random(2)
    for _ in range(1500):                   # and still exact
        p = _random_packet(rnd2, IPSet(["10.1.0.0/22"]), IPSet(["10.2.0.0/22"]))
        v = evaluate(rs, p)
        hits = [c for c in r.pairs[("a", "b")] if _in_class(p, c)]
        assert (v.action == "accept") == bool(hits) and (not hits or hits[0].rule is v.rule), p


def test_the_kernel_confirms_the_hole(demo, tmp_path):
    """The issue's done-when: the hole's witness is delivered by a real kernel with the demo
    ruleset loaded, the blocked conduit's witness dropped, and the model agrees on both."""
    kernel = pytest.importorskip("plantguard.firewall.kernel")
    why = kernel.unavailable("iptables")
    if why:
        if __import__("os").environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    _, site, fw = demo
    res = cli("firewall", "check", fw, "--site", site, "-f", "json", "-o", tmp_path / "fw.json", "--prove")
    assert res.returncode == 0, res.stderr
    assert f"agree: tcp 10.20.0.1:40000 -> {P.M340.ip}:502 (new): kernel delivered, model accept" in res.stdout
    assert "-> 10.10.2.1:23 (new): kernel dropped, model drop" in res.stdout
    assert "DISAGREE" not in res.stdout


def test_ipset_files_given_beside_an_iptables_file_are_its_sets():
    """`ipset save` output among the configurations names the sets of the iptables-save file given
    with it: the router's configuration then has no line left unmodelled."""
    data = Path(__file__).parent / "data" / "firewall"
    from plantguard.firewall.load import load_all
    alone = load_all([data / "linux-router.iptables"])
    both = load_all([data / "linux-router.iptables", data / "linux-router.ipset"])
    assert [r.format for r in both] == ["iptables"] and alone[0].unsupported and not both[0].unsupported
    res = cli("firewall", "explain", data / "linux-router.ipset", "--from", "10.1.0.5", "--to", "10.2.0.5",
              "--port", "tcp/22")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"plantguard: error: {data / 'linux-router.ipset'}: `ipset save` output needs the iptables-save file "
        "whose rules use its sets, given with it"]


def test_the_nft_text_form_asks_for_the_json_form():
    nft = Path(__file__).parent / "data" / "firewall" / "linux-router.nft"
    res = cli("firewall", "explain", nft, "--from", "10.1.0.5", "--to", "10.2.0.5", "--port", "tcp/22")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"plantguard: error: {nft}: nft text form is not read; give `nft -j list ruleset` output"]
