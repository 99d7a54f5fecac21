"""The vendor parsers (Cisco IOS/ASA, FortiOS, pfSense) against real and hand-written configs.

The pybatfish example network's notebooks hold Batfish's recorded answers (flow, action, the
line that decides): they are the oracles for the IOS parser, read from the notebooks
themselves. The hand-written configs under tests/data/firewall follow the vendors' documented
formats; each parses with no line left unaccounted, and the deliberately unsupported lines are
exactly the ones listed."""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from netaddr import IPSet
from support.fw_eval import first_match

from plantguard.firewall.errors import FirewallConfigError
from plantguard.firewall.model import Packet
from plantguard.firewall.parsers import cisco, fortios, pfsense

DATA = Path(__file__).parent / "data" / "firewall"
PYBF = "firewall/pybatfish"
SNAPSHOT = PYBF + "/example-filters/{}/configs/{}"
CATEGORIES = {"modelled", "comment", "not-firewall", "unused", "ignored", "disabled",
              "unsupported"}


def _accounted(parse_accounted, path: Path):
    rs, category = parse_accounted(path.read_text(), str(path))
    assert set(category.values()) <= CATEGORIES
    reported = {u.origin.line for u in rs.unsupported}
    assert {n for n, c in category.items() if c == "unsupported"} >= reported
    return rs, category


def _every_line(rs, category, nlines: int) -> None:
    """Every line has a category, and every unsupported one is reported with its line."""
    assert sorted(category) == list(range(1, nlines + 1))
    unreported = [n for n, c in category.items()
                  if c == "unsupported" and n not in {u.origin.line for u in rs.unsupported}]
    assert not unreported


def _notebook_texts(shared, name: str) -> list[str]:
    nb = json.loads(shared(f"{PYBF}/{name}").read_text())
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            text = o.get("data", {}).get("text/plain") or o.get("text")
            if text:
                out.append("".join(text))
    return out


FLOW = re.compile(r"\[(\d+\.\d+\.\d+\.\d+):(\d+)->(\d+\.\d+\.\d+\.\d+):(\d+) (TCP|UDP)")


def _packet(m: re.Match) -> Packet:
    return Packet(m[1], m[3], m[5].lower(), int(m[2]), int(m[4]))


@pytest.mark.parametrize("snap", ["current", "candidate1", "candidate2"])
@pytest.mark.parametrize("name", ["rtr-with-acl.cfg", "firewall.cfg"])
def test_pybatfish_configs_parse_with_no_unreported_line(shared, snap, name):
    path = shared(SNAPSHOT.format(snap, name))
    rs, category = _accounted(cisco.parse_accounted, path)
    _every_line(rs, category, len(path.read_text().splitlines()))
    assert rs.unsupported == []
    assert rs.format == "cisco-ios"
    assert rs.hostname == name.removesuffix(".cfg")
    assert Counter(category.values())["modelled"] > 100


def test_router_acl_model(shared):
    rs = cisco.parse(shared(SNAPSHOT.format("current", "rtr-with-acl.cfg")))
    acl = rs.chains["acl_in"]
    assert acl.policy == "drop"                    # Cisco's implicit deny
    assert len(acl.rules) == 105                 # one rule per line, in order
    assert rs.bindings[0].chain == "acl_in" and rs.bindings[0].direction == "in"
    assert rs.bindings[0].interface == "Ethernet1/1/1"
    assert rs.interfaces["Ethernet1/1/1"] == IPSet(["117.186.185.188/31"])
    bfd = next(r for r in acl.rules if r.origin.text.startswith("50 "))
    assert bfd.match.sport == ((49152, 65535),) and bfd.match.dport == ((3784, 3784),)
    redirect = acl.rules[0]
    assert redirect.match.protocols == {"icmp"} and redirect.match.icmp_types == {5}


def test_batfish_testfilters_and_searchfilters_answers(shared):
    """Every recorded flow of the analysis notebook with its matched line: same action, same line."""
    rs = cisco.parse(shared(SNAPSHOT.format("current", "rtr-with-acl.cfg")))
    checked = 0
    for text in _notebook_texts(shared, "analyzing-acls-and-firewall-rules.ipynb"):
        if "start=rtr-with-acl" not in text or "Matched line" not in text:
            continue
        flow = FLOW.search(text)
        action = re.search(r"\b(PERMIT|DENY)\b", text)[1]
        line = re.search(r"Matched line (.+?)\s*$", text, re.MULTILINE)[1]
        got, rule = first_match(rs, "acl_in", _packet(flow))
        assert (got, rule.origin.text) == ({"PERMIT": "accept", "DENY": "drop"}[action], line)
        checked += 1
    assert checked == 2


def test_batfish_unreachable_lines(shared):
    """filterLineReachability: a packet of each unreachable line is decided by its blocking line."""
    rs = cisco.parse(shared(SNAPSHOT.format("current", "rtr-with-acl.cfg")))
    acl = rs.chains["acl_in"]
    text = next(t for t in _notebook_texts(shared, "analyzing-acls-and-firewall-rules.ipynb")
                if "Unreachable_Line" in t)
    # the frame is printed wrapped: rows of each column block share their index
    lines = dict(re.findall(r"^(\d+)\s+\['rtr-with-acl: acl_in'\]\s+(.+?)\s*$", text, re.MULTILINE))
    blocking = dict(re.findall(r"^(\d+)\s+(?:PERMIT|DENY)\s+\['([^']+)'\]", text, re.MULTILINE))
    found = [(lines[i], blocking[i]) for i in sorted(lines)]
    assert len(found) == 2
    for unreachable, blocking in found:
        rule = next(r for r in acl.rules if r.origin.text == unreachable)
        src = str(next(iter(rule.match.src)))
        assert first_match(rs, "acl_in", Packet(src, "192.0.2.1", "tcp", 1234, 80))[1].origin.text \
            == blocking


def test_batfish_candidate_change_answers(shared):
    """The change-verification notebook: candidate1 permits 18.18.18.32:80 by line 462 where the
    current config denied it by line 2020; candidate2 changes nothing outside the intent."""
    texts = [t for t in _notebook_texts(shared, "provably-safe-acl-and-firewall-changes.ipynb")
             if "Snapshot_Line_Content" in t and "Matched line" in t]
    assert len(texts) == 1
    flow = _packet(FLOW.search(texts[0]))
    snap_action, ref_action = re.search(r"In both\s+(PERMIT|DENY)\s+(PERMIT|DENY)", texts[0]).groups()
    snap_line, ref_line = re.findall(r"Matched line (.+?)\s*$", texts[0], re.MULTILINE)
    verdict = {"PERMIT": "accept", "DENY": "drop"}
    for snap, action, line in (("candidate1", snap_action, snap_line),
                               ("current", ref_action, ref_line)):
        rs = cisco.parse(shared(SNAPSHOT.format(snap, "rtr-with-acl.cfg")))
        got, rule = first_match(rs, "acl_in", flow)
        assert (got, rule.origin.text) == (verdict[action], line)
    # candidate2: the intended traffic (10.10.10.0/24 -> 18.18.18.0/27 tcp 80, 8080) is permitted
    # and the flow outside it keeps the current verdict (Batfish: no difference)
    rs2 = cisco.parse(shared(SNAPSHOT.format("candidate2", "rtr-with-acl.cfg")))
    assert first_match(rs2, "acl_in", Packet("10.10.10.9", "18.18.18.30", "tcp", 40000, 8080))[0] \
        == "accept"
    assert first_match(rs2, "acl_in", flow)[1].origin.text == ref_line


def _zone_chain(rs, src_iface: str, dst_iface: str) -> str | None:
    zone_of = {i: z for z, members in rs.zones.items() for i in members}
    return next((b.chain for b in rs.bindings
                 if (b.from_zone, b.to_zone) == (zone_of[src_iface], zone_of[dst_iface])), None)


def test_zone_firewall_model_and_answers(shared):
    rs = cisco.parse(shared(SNAPSHOT.format("current", "firewall.cfg")))
    assert rs.zones == {"zone-admin": ("GigabitEthernet0/0/0",), "zone-z2": ("GigabitEthernet0/0/2",),
                        "zone-z3": ("GigabitEthernet0/0/3",)}
    assert rs.interfaces["zone-z2"] == IPSet(["101.164.8.0/22"])
    assert {(b.from_zone, b.to_zone) for b in rs.bindings} == {
        ("zone-z2", "zone-admin"), ("zone-admin", "zone-z2"), ("zone-admin", "zone-z3"),
        ("zone-z2", "zone-z3")}
    chain = _zone_chain(rs, "GigabitEthernet0/0/2", "GigabitEthernet0/0/3")
    assert rs.chains[chain].policy == "drop"
    # testFilters: Gi0/0/2 -> out Gi0/0/3, http to 10.114.60.10: DENY, no line matches
    recorded = next(t for t in _notebook_texts(shared, "analyzing-acls-and-firewall-rules.ipynb")
                    if "interface=GigabitEthernet0/0/2" in t)
    assert re.search(r"DENY\s+no-match", recorded)
    assert first_match(rs, chain, _packet(FLOW.search(recorded))) == ("drop", None)
    # searchFilters: no non-NFS TCP from 101.164.101.231 to 101.164.9.0/24 is permitted (empty
    # answer); NFS to the backup host is, by the class's ACL line
    for dst in ("101.164.9.1", "101.164.9.109", "101.164.9.255"):
        for port in (22, 80, 2048, 2050, 9103):
            assert first_match(rs, chain, Packet("101.164.101.231", dst, "tcp", 40000, port))[0] \
                == "drop"
    action, rule = first_match(rs, chain, Packet("101.164.101.231", "101.164.9.109", "tcp", 40000, 2049))
    assert action == "accept"
    assert rule.origin.text == "permit object-group tcp-nfs object-group mysql object-group backup-z2"
    # candidate1 removed the z2-to-z3 zone-pair: the zones have no pair, so the default drop
    rs1 = cisco.parse(shared(SNAPSHOT.format("candidate1", "firewall.cfg")))
    assert _zone_chain(rs1, "GigabitEthernet0/0/2", "GigabitEthernet0/0/3") is None


def test_zone_firewall_class_default_and_app_protocols(shared):
    rs = cisco.parse(shared(SNAPSHOT.format("current", "firewall.cfg")))
    chain = _zone_chain(rs, "GigabitEthernet0/0/0", "GigabitEthernet0/0/2")
    # admin -> repo https: class-map "match protocol https" narrows the ACL to tcp/443
    ok = first_match(rs, chain, Packet("101.164.100.7", "101.164.8.79", "tcp", 40000, 443))
    assert ok[0] == "accept"
    assert ok[1].origin.text == "permit object-group tcp-https object-group admin object-group repo"
    action, rule = first_match(rs, chain, Packet("101.164.100.7", "101.164.8.79", "tcp", 40000, 444))
    assert (action, rule.origin.text) == ("drop", "drop log")       # class class-default


def test_ios_handwritten():
    path = DATA / "ios.cfg"
    rs, category = _accounted(cisco.parse_accounted, path)
    _every_line(rs, category, len(path.read_text().splitlines()))
    assert [(u.origin.line, u.why) for u in rs.unsupported] == [
        (19, "access-list option not modelled: time-range"),
        (54, "command not modelled: ip"),
    ]
    ot = rs.chains["OT_IN"]
    assert ot.rules[0].match.states == {"established", "related"}
    assert ot.rules[0].comment == "return traffic for sessions the OT side opened"
    # numbered lists: 101 extended with a non-contiguous wildcard, 15 standard
    wide = rs.chains["101"].rules[0].match.src
    assert len(wide.iter_cidrs()) == 256 and "10.30.77.0" in wide and "10.30.77.1" not in wide
    assert rs.chains["15"].rules[0].match.src == IPSet(["192.168.1.1/32"])
    # nested object-group defined after its user
    assert rs.sets["OT-CONTROLLERS"] == IPSet(["10.20.0.10/32", "10.20.0.16/28", "10.20.0.100/31"])
    assert first_match(rs, "OT_IN", Packet("10.10.0.5", "10.20.0.9", "tcp", 40000, 23)) == \
        ("drop", ot.rules[-1])                       # neq telnet, lt 20, gt 1023 all miss 23
    assert first_match(rs, "OT_IN", Packet("10.10.0.5", "10.20.1.9", "tcp", 40000, 8080))[1] \
        .origin.line == 15                           # 0.0.1.255 is a /23
    assert first_match(rs, "OT6_IN", Packet("2001:db8:10::5", "2001:db8:20::9", "tcp", 1, 502))[0] \
        == "accept"
    assert rs.chains["OT6_IN"].rules[1].match.protocols == {"icmpv6"}
    assert ("OT6_IN", "out", "GigabitEthernet0/1") in {(b.chain, b.direction, b.interface)
                                                      for b in rs.bindings}


def test_asa_handwritten():
    path = DATA / "asa.cfg"
    rs, category = _accounted(cisco.parse_accounted, path)
    _every_line(rs, category, len(path.read_text().splitlines()))
    assert rs.format == "cisco-asa" and rs.hostname == "plant-asa"
    assert [(u.origin.line, u.why) for u in rs.unsupported] == [
        (39, "fqdn objects need name resolution: not modelled"),
        (66, "object VENDOR has entries that are not modelled"),
    ]
    assert {(b.chain, b.direction, b.interface) for b in rs.bindings} == {
        ("OFFICE_IN", "in", "office"), ("OT_IN", "in", "ot")}
    assert rs.interfaces["office"] == IPSet(["10.10.0.0/24", "2001:db8:10::/64"])
    office = rs.chains["OFFICE_IN"]
    # nested group (PLCS inside OT-ASSETS) and a port-object group with a range
    assert first_match(rs, "OFFICE_IN", Packet("10.10.0.50", "10.20.0.13", "tcp", 40000, 20005))[1] \
        is office.rules[0]
    assert first_match(rs, "OFFICE_IN", Packet("10.10.0.50", "10.20.0.100", "tcp", 40000, 102))[0] \
        == "accept"
    # a service group in the protocol position: one line, three rules with the same origin
    line61 = [r for r in office.rules if r.origin.line == 61]
    assert [sorted(r.match.protocols) for r in line61] == [["tcp"], ["udp"], ["icmp"]]
    ping = Packet("10.10.0.51", "10.20.0.10", "icmp", icmp_type=8)
    assert first_match(rs, "OFFICE_IN", ping)[1].origin.line == 61
    # the explicit deny before the broad permits; `any` is IPv4 and IPv6 on an ASA; inactive skipped
    assert first_match(rs, "OFFICE_IN", Packet("10.10.0.7", "10.20.0.200", "tcp", 1, 443))[1] \
        .origin.line == 62
    assert first_match(rs, "OFFICE_IN", Packet("2001:db8:10::7", "2001:db8:99::1", "udp", 1, 53))[0] \
        == "accept"
    assert first_match(rs, "OFFICE_IN", Packet("2001:db8:10::7", "2001:db8:99::1", "tcp", 1, 22)) \
        == ("drop", None)                             # implicit deny (line 65 is inactive)
    ot = rs.chains["OT_IN"].rules[1].match
    assert ot.sport == ((1024, 65535),) and ot.dport == ((0, 22), (24, 65535))


def test_fortios_handwritten():
    path = DATA / "fortigate.conf"
    rs, category = _accounted(fortios.parse_accounted, path)
    _every_line(rs, category, len(path.read_text().splitlines()))
    assert [(u.origin.line, u.why) for u in rs.unsupported] == [
        (44, "an fqdn address needs a DNS resolution: not modelled")]
    assert fortios.detect(path.read_text()) == "fortios"
    assert rs.interfaces["port2"] == IPSet(["10.20.0.0/24"])
    assert rs.bindings == [fortios.Binding(chain="policy", direction="forward")]
    chain = rs.chains["policy"]
    assert chain.policy == "drop"
    # the disabled allow-all (edit 3) filters nothing: its lines are accounted as disabled
    assert {category[n] for n in range(114, 125)} == {"disabled"}
    assert all(r.origin.line != 114 for r in chain.rules)
    eng = Packet("10.10.0.50", "10.20.0.11", "tcp", 40000, 102, in_iface="port1", out_iface="port2")
    assert first_match(rs, "policy", eng)[1].origin.text == "edit 1"
    office = Packet("10.10.0.9", "10.20.0.11", "tcp", 40000, 102, in_iface="port1", out_iface="port2")
    assert first_match(rs, "policy", office)[1].origin.text == "edit 2"
    # no policy for port2 -> port1: the implicit deny
    back = Packet("10.20.0.11", "10.10.0.9", "tcp", 40000, 22, in_iface="port2", out_iface="port1")
    assert first_match(rs, "policy", back) == ("drop", None)
    # edit 4: dstaddr-negate, service with a source range, ICMP type, IP protocol 47, NAT noted
    out = [r for r in chain.rules if r.origin.text == "edit 4"]
    assert {r.match.negate for r in out} == {frozenset({"dst"})}
    assert all(r.nat == "source NAT (nat enable)" for r in out) and rs.nat
    web = Packet("10.20.0.100", "203.0.113.5", "tcp", 2000, 8050, in_iface="port2", out_iface="wan1")
    assert first_match(rs, "policy", web)[0] == "accept"
    low_src = Packet("10.20.0.100", "203.0.113.5", "tcp", 1000, 8050, in_iface="port2",
                     out_iface="wan1")
    assert first_match(rs, "policy", low_src) == ("drop", None)   # source range 1024-65535
    to_ot = Packet("10.20.0.100", "10.20.0.11", "tcp", 2000, 8050, in_iface="port2", out_iface="wan1")
    assert first_match(rs, "policy", to_ot) == ("drop", None)     # negated destination
    v6 = Packet("2001:db8:20::5", "203.0.113.5", "gre", in_iface="port2", out_iface="wan1")
    assert first_match(rs, "policy", v6)[0] == "accept"           # addrgrp nests an address6


def test_fortios_quoting_and_nesting():
    text = ('config firewall address\n    edit "cell 1 \\"north\\""\n'
            "        set subnet 10.1.0.0 255.255.0.0\n    next\nend\n"
            "config firewall addrgrp\n    edit 'outer'\n        set member \"inner\"\n    next\n"
            "    edit inner\n        set member \"cell 1 \\\"north\\\"\"\n    next\nend\n")
    rs, category = fortios.parse_accounted(text, "q.conf")
    assert rs.unsupported == []
    assert rs.sets['cell 1 "north"'] == rs.sets["outer"] == IPSet(["10.1.0.0/16"])
    assert sorted(category) == list(range(1, len(text.splitlines()) + 1))


def test_fortios_policy6_all_is_ipv6():
    text = ("config firewall address6\n    edit \"all\"\n    next\nend\n"
            "config firewall policy6\n    edit 1\n        set srcintf \"port1\"\n"
            "        set dstintf \"port2\"\n        set srcaddr \"all\"\n"
            "        set dstaddr \"all\"\n        set action accept\n"
            "        set service \"PING\"\n    next\nend\n")
    rs = fortios.parse_text(text, "v6.conf")
    assert rs.unsupported == []
    rule = rs.chains["policy"].rules[0]
    assert rule.match.src == rule.match.dst == IPSet(["::/0"])
    assert rule.match.protocols == {"icmp"} and rule.match.icmp_types == {8}


def test_pfsense_handwritten():
    path = DATA / "pfsense-config.xml"
    rs, category = _accounted(pfsense.parse_accounted, path)
    assert rs.format == "pfsense"
    assert [(u.origin.line, u.why) for u in rs.unsupported] == [
        (51, "alias type urltable is not modelled (needs a download or a resolver)"),
        (137, "alias Vendor_feed is not modelled"),
    ]
    root = pfsense.read_xml(path.read_text(), str(path))
    assert {e.line for e in root.walk()} == set(category)         # every element accounted
    assert rs.lines == sum(1 for _ in root.walk())
    assert {c for n, c in category.items() if 92 <= n <= 104} == {"disabled"}  # allow-all, off
    assert {(b.chain, b.direction, b.interface) for b in rs.bindings} == {
        ("lan", "in", "lan"), ("opt1", "in", "opt1")}
    assert rs.interfaces["lan"] == IPSet(["10.10.0.0/24", "2001:db8:10::/64"])
    lan = rs.chains["lan"]
    assert lan.policy == "drop" and len(lan.rules) == 4           # the disabled rule is skipped
    eng = Packet("10.10.0.50", "10.20.0.11", "tcp", 40000, 20003)  # nested alias, port alias range
    assert first_match(rs, "lan", eng)[1].origin.text == "pass on lan: engineering workstation to OT"
    office = Packet("10.10.0.9", "10.20.0.11", "tcp", 40000, 80)
    assert first_match(rs, "lan", office)[1].origin.text == "block on lan: office never reaches OT"
    web = Packet("10.10.0.9", "192.0.2.80", "tcp", 40000, 85)      # not OT, port range 80-90
    assert first_match(rs, "lan", web)[1].origin.line == 106
    assert first_match(rs, "lan", Packet("10.10.0.9", "192.0.2.80", "tcp", 40000, 91)) == ("drop", None)
    ping6 = Packet("2001:db8:10::9", "2001:db8:ff::1", "icmpv6", icmp_type=128)
    assert first_match(rs, "lan", ping6)[0] == "accept"
    ntp = Packet("10.20.0.11", "10.20.0.1", "udp", 123, 123)
    assert first_match(rs, "opt1", ntp)[1].origin.line == 150       # opt1ip: the firewall itself
    assert first_match(rs, "opt1", Packet("10.20.0.12", "10.20.0.1", "udp", 123, 123)) == \
        ("drop", None)


def test_pfsense_opnsense_root():
    text = ("<?xml version='1.0'?>\n<opnsense>\n<interfaces><lan><ipaddr>192.168.1.1</ipaddr>"
            "<subnet>24</subnet></lan></interfaces>\n<filter>\n<rule><type>pass</type>"
            "<interface>lan</interface><ipprotocol>inet46</ipprotocol><source><any/></source>"
            "<destination><any/></destination></rule>\n</filter>\n</opnsense>\n")
    rs = pfsense.parse_text(text, "config.xml")
    assert rs.format == "opnsense" and rs.unsupported == []
    assert first_match(rs, "lan", Packet("2001:db8::1", "2001:db8::2", "udp", 1, 2))[0] == "accept"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>
<pfsense><filter><rule><descr>&lol2;</descr></rule></filter></pfsense>
"""


@pytest.mark.parametrize("module,name,data,why", [
    (pfsense, "config.xml", BILLION_LAUGHS.encode(), "DOCTYPE or entity declaration is refused"),
    (pfsense, "config.xml", b"<pfsense><filter><rule>", "not well-formed XML"),
    (pfsense, "config.xml", b"<html><body/></html>", "is not a pfSense or OPNsense"),
    (cisco, "garbage.cfg", bytes(range(256)) * 64, "binary data"),
    (fortios, "garbage.conf", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
    (cisco, "noise.cfg", bytes(b % 31 + 1 for b in range(4096)), "binary data (control bytes)"),
    (cisco, "long.cfg", b"hostname x\naccess-list 1 permit " + b"a" * (10 * 1024 * 1024) + b"\n",
     "long.cfg:2: line of 10485781 characters"),
    (fortios, "quote.conf", b'config firewall address\n    edit "open\n', "unterminated quoted"),
])
def test_bad_input_is_one_clear_error(tmp_path, module, name, data, why):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(FirewallConfigError) as err:
        module.parse(path)
    assert str(path) in str(err.value) and why in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,module", [("ios.cfg", cisco), ("asa.cfg", cisco),
                                         ("fortigate.conf", fortios),
                                         ("pfsense-config.xml", pfsense)])
def test_mangled_configs_never_crash(name, module):
    """Words dropped, inserted, lines repeated and removed: a ruleset (with its Unsupported
    lines) or one FirewallConfigError, never another exception."""
    rng = random.Random(15)
    lines = (DATA / name).read_text().splitlines()
    noise = ["any", "host", "eq", "range", "object-group", "1.2.3.4", "255.255.255.0", "99999",
             '"', "set", "edit", "next", "end", "<rule>", "</rule>", "<not/>", "group-object",
             "tcp", "0.0.255.0", "10.0.0.0/33", "established", "lan"]
    for _ in range(150):
        mangled = list(lines)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(mangled))
            words = mangled[i].split()
            op = rng.random()
            if op < 0.35 and words:
                words.pop(rng.randrange(len(words)))
            elif op < 0.7:
                words.insert(rng.randrange(len(words) + 1), rng.choice(noise))
            else:
                mangled.insert(i, mangled[rng.randrange(len(mangled))])
                continue
            indent = len(mangled[i]) - len(mangled[i].lstrip())
            mangled[i] = " " * indent + " ".join(words)
        try:
            rs = module.parse_text("\n".join(mangled), name)
        except FirewallConfigError as err:
            assert name in str(err)
            continue
        assert all(u.origin.line >= 1 for u in rs.unsupported)
