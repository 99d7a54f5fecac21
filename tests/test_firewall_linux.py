"""The Linux firewall parsers (iptables-save + ipset save, nft -j JSON) and the kernel proof.

The pybatfish host iptables files are real third-party configurations; the hand-written configs
under tests/data/firewall/ hold the tricky cases. The nft JSON parsed here is the kernel's own
rendering: the hand-written nft ruleset is loaded into a throwaway namespace and listed back.
The kernel tests check that a first-match walk over the model (tests/support/firewall_eval.py)
and the real kernel agree on every packet. They need root (network namespaces): CI is root."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from netaddr import IPSet
from support.firewall_eval import forward

from plantguard.firewall import kernel
from plantguard.firewall.model import Packet
from plantguard.firewall.parsers import iptables, nftables

DATA = Path(__file__).parent / "data" / "firewall"
ROUTER = DATA / "linux-router.iptables"
IPSETS = DATA / "linux-router.ipset"
ROUTER6 = DATA / "linux-router6.iptables"
NFT = DATA / "linux-router.nft"


def _need_root(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    missing = [t for t in tools if not (shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin"))]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs them)")


@pytest.fixture(scope="module")
def nft_json(tmp_path_factory) -> Path:
    """The hand-written nft ruleset as the kernel lists it back (`nft -j list ruleset`)."""
    _need_root("ip", "nft")
    ns = f"pgt{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", str(NFT)], check=True)
        out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"], check=True,
                             capture_output=True, text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    path = tmp_path_factory.mktemp("nft") / "ruleset.json"
    path.write_text(out)
    return path


# -- iptables ---------------------------------------------------------------------------------

@pytest.mark.parametrize("host,input_rules,output_rules", [("host1", 2, 0), ("host2", 1, 1)])
def test_pybatfish_hosts_parse_with_nothing_unreported(shared, host, input_rules, output_rules):
    path = shared(f"firewall/pybatfish/example/iptables/{host}.iptables")
    rs = iptables.parse(path)
    assert rs.format == "iptables" and rs.unsupported == []
    assert rs.lines == len(path.read_text().splitlines()) == 24
    assert {n: (c.hook, c.policy) for n, c in rs.chains.items()} == {
        "INPUT": ("input", "drop"), "FORWARD": ("forward", "accept"), "OUTPUT": ("output", "accept")}
    assert [b.chain for b in rs.bindings] == ["FORWARD"] and rs.bindings[0].direction == "forward"
    assert (len(rs.chains["INPUT"].rules), len(rs.chains["OUTPUT"].rules)) == (input_rules, output_rules)
    ssh = rs.chains["INPUT"].rules[-1]
    assert (ssh.action, ssh.match.protocols, ssh.match.dport, ssh.match.src) == ("accept", {"tcp"}, ((22, 22),), None)
    assert ssh.origin.line == 16 - (host == "host2") and ssh.origin.text == "-A INPUT -p tcp --dport 22 -j ACCEPT"
    if host == "host2":
        drop = rs.chains["OUTPUT"].rules[0]
        assert drop.action == "drop" and drop.match.dst == IPSet(["2.128.0.101/32"]) and drop.origin.line == 16


def test_router_rules_field_by_field():
    rs = iptables.parse(ROUTER, [IPSETS])
    assert rs.unsupported == []
    assert rs.lines == len(ROUTER.read_text().splitlines()) + len(IPSETS.read_text().splitlines())
    assert rs.sets == {"plc": IPSet(["10.20.0.10/32", "10.20.0.64/28"]), "eng": IPSet(["10.10.0.7/32"])}
    fwd = rs.chains["FORWARD"]
    assert fwd.policy == "drop" and len(fwd.rules) == 11 and len(rs.chains["from_office"].rules) == 3
    assert rs.chains["from_office"].policy is None and rs.chains["from_office"].hook is None
    est, inv, modbus, shadow, web, notot, log, ssh, jump, icmp, telnet = fwd.rules
    assert est.match.states == {"established", "related"} and est.action == "accept"
    assert inv.match.states == {"invalid"} and inv.action == "drop"
    assert modbus.match.dst == rs.sets["plc"] and modbus.match.src == IPSet(["10.10.0.0/24"])
    assert modbus.comment == "modbus from office to PLCs" and modbus.origin.line == 18
    assert shadow.match.dport == ((1, 1024),) and shadow.action == "drop"
    assert web.match.dport == ((80, 80), (443, 443))
    assert notot.match.negate == {"dst"} and notot.match.dst == IPSet(["10.20.0.0/16"])
    assert notot.match.protocols == {"udp"} and notot.match.dport == ((5000, 5010),)
    assert log.action == "continue" and ssh.action == "accept" and ssh.match.src == rs.sets["eng"]
    assert (jump.action, jump.target, jump.match.in_iface) == ("jump", "from_office", "z1+")
    assert icmp.match.icmp_types == {8} and icmp.match.protocols == {"icmp"}
    assert telnet.action == "reject"
    assert [r.action for r in rs.chains["from_office"].rules] == ["accept", "return", "continue"]
    assert [r.nat for r in rs.nat] == ["DNAT --to-destination 10.20.0.10:80", "MASQUERADE"]
    assert rs.nat[1].match.out_iface == "wan"


def test_ip6tables_family_negation_and_port_ranges():
    rs = iptables.parse(ROUTER6)
    assert rs.unsupported == [] and rs.chains["FORWARD"].family == "ip6"
    dns = rs.chains["FORWARD"].rules[3]
    assert dns.match.negate == {"src"} and dns.match.sport == ((1024, 65535),) and dns.match.dport == ((53, 53),)
    ping = rs.chains["FORWARD"].rules[2]
    assert ping.match.protocols == {"icmpv6"} and ping.match.icmp_types == {128}


def test_unsupported_rules_are_reported_and_left_out():
    path = DATA / "linux-unsupported.iptables"
    rs = iptables.parse(path)
    why = {u.origin.line: u.why for u in rs.unsupported}
    assert sorted(why) == [3, 9, 10, 11, 12]
    assert "raw table" in why[3] and "'limit'" in why[9] and "--syn" in why[10]
    assert "nosuch" in why[11] and "NFQUEUE" in why[12]
    assert all("left out" in w for w in why.values())
    # only the one modelled rule is in the chain: the model never guesses what the others match
    assert [r.origin.line for r in rs.chains["FORWARD"].rules] == [13]
    assert rs.lines == 14


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_text("hello\n")
    with pytest.raises(ValueError, match=r"x\.txt: not iptables-save output"):
        iptables.parse(bad)
    with pytest.raises(ValueError, match=r"give `nft -j list ruleset` output"):
        nftables.parse(NFT)
    with pytest.raises(ValueError, match=r"x\.txt: not nftables JSON"):
        nftables.parse(bad)


# -- nftables ---------------------------------------------------------------------------------

def test_nft_json_from_the_kernel(nft_json):
    rs = nftables.parse(nft_json)
    assert rs.format == "nftables" and rs.unsupported == []
    assert rs.sets == {"inet fw plc": IPSet(["10.20.0.10/32", "10.20.0.64/28"])}
    fwd = rs.chains["inet fw forward"]
    assert (fwd.hook, fwd.policy) == ("forward", "drop")
    assert [b.chain for b in rs.bindings] == ["inet fw forward"]
    actions = [r.action for r in fwd.rules]
    # the vmap { 23 : drop, 2222 : accept } becomes two rules at the same element
    assert actions == ["accept", "drop", "accept", "drop", "accept", "accept", "jump", "accept", "accept",
                       "drop", "accept"]
    est, _, modbus, _, web, notot, jump, icmp, ssh6, vm23, vm2222 = fwd.rules
    assert est.match.states == {"established", "related"}
    assert modbus.match.dst == rs.sets["inet fw plc"] and modbus.match.dport == ((502, 502),)
    assert web.match.dport == ((80, 80), (443, 443)) and "@web" in web.origin.text
    assert notot.match.negate == {"dst"} and notot.match.dport == ((5000, 5010),)
    assert notot.match.src == IPSet(["0.0.0.0/0"])          # the family the ip payload test implies
    assert (jump.target, jump.match.in_iface) == ("inet fw from_office", "z1*")
    assert icmp.match.protocols == {"icmp"} and ssh6.match.src == IPSet(["2001:db8:10::/64"])
    assert vm23.origin.line == vm2222.origin.line and vm23.match.dport == ((23, 23),)
    assert [r.action for r in rs.chains["inet fw from_office"].rules] == ["accept", "return", "continue"]
    assert rs.lines == len(__import__("json").loads(nft_json.read_text())["nftables"])


def test_nft_unmodelled_statements_are_reported(tmp_path):
    doc = {"nftables": [
        {"table": {"family": "inet", "name": "t"}},
        {"chain": {"family": "inet", "table": "t", "name": "f", "type": "filter", "hook": "forward",
                   "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "t", "chain": "f", "handle": 2, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
            {"limit": {"rate": 5, "per": "second"}}, {"accept": None}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "f", "handle": 3, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 23}},
            {"drop": None}]}}]}
    path = tmp_path / "r.json"
    path.write_text(__import__("json").dumps(doc))
    rs = nftables.parse(path)
    assert [(u.origin.line, "'limit'" in u.why and "left out" in u.why) for u in rs.unsupported] == [(2, True)]
    assert [r.match.dport for r in rs.chains["inet t f"].rules] == [((23, 23),)]


# -- the kernel proof -------------------------------------------------------------------------

OFFICE, OT, DMZ, ENG = "z1lan", "ot", "dmz", "eng"
PACKETS = [
    Packet("10.10.0.3", "10.20.0.10", dport=502, in_iface=OFFICE, out_iface=OT),     # modbus to a PLC
    Packet("10.10.0.3", "10.20.0.70", dport=502, in_iface=OFFICE, out_iface=OT),     # PLC by set prefix
    Packet("10.10.0.3", "10.20.0.11", dport=502, in_iface=OFFICE, out_iface=OT),     # not a PLC: policy
    Packet("10.10.0.5", "10.20.0.10", dport=80, in_iface=OFFICE, out_iface=OT),      # shadowing drop first
    Packet("10.10.0.3", "10.20.0.50", dport=443, in_iface=OFFICE, out_iface=OT),
    Packet("10.10.0.3", "10.30.0.1", protocol="udp", dport=5005, in_iface=OFFICE, out_iface=DMZ),   # ! -d
    Packet("10.10.0.3", "10.20.0.1", protocol="udp", dport=5005, in_iface=OFFICE, out_iface=OT),
    Packet("10.10.0.3", "10.20.0.99", protocol="udp", dport=161, in_iface=OFFICE, out_iface=OT),    # user chain
    Packet("10.10.0.3", "10.20.0.98", protocol="udp", dport=161, in_iface=OFFICE, out_iface=OT),    # return
    Packet("10.10.0.3", "10.20.0.1", protocol="icmp", in_iface=OFFICE, out_iface=OT),
    Packet("10.20.0.1", "10.10.0.3", protocol="icmp", in_iface=OT, out_iface=OFFICE),
    Packet("10.10.0.3", "10.20.0.1", dport=23, in_iface=OFFICE, out_iface=OT),
    Packet("10.10.0.3", "10.20.0.1", dport=22, in_iface=OFFICE, out_iface=OT),
]


def _agree(rs, verdicts) -> list[tuple]:
    assert all(v.delivered is not None for v in verdicts), [v.why for v in verdicts]
    return [(v.packet, forward(rs, v.packet), v.delivered) for v in verdicts
            if (forward(rs, v.packet) == "accept") != v.delivered]


@pytest.mark.slow
def test_kernel_agrees_with_the_iptables_model():
    _need_root(*kernel.TOOLS["iptables"])
    rs = iptables.parse(ROUTER, [IPSETS])
    packets = [*PACKETS, Packet("10.10.0.7", "10.20.0.1", dport=22, in_iface=ENG, out_iface=OT)]
    verdicts = kernel.prove(ROUTER, "iptables", packets, companions=[IPSETS])
    assert _agree(rs, verdicts) == []
    assert sum(v.delivered for v in verdicts) == 7 and len(verdicts) == 14


@pytest.mark.slow
def test_kernel_agrees_with_the_ip6tables_model():
    _need_root(*kernel.TOOLS["iptables"])
    rs = iptables.parse(ROUTER6)
    packets = [Packet("2001:db8:10::5", "2001:db8:20::9", dport=22, in_iface="a", out_iface="b"),
               Packet("2001:db8:10::5", "2001:db8:30::9", dport=22, in_iface="a", out_iface="c"),
               Packet("2001:db8:10::5", "2001:db8:20::9", protocol="icmp", in_iface="a", out_iface="b"),
               Packet("2001:db8:30::5", "2001:db8:20::53", protocol="udp", sport=2000, dport=53,
                      in_iface="c", out_iface="b"),
               Packet("2001:db8:10::5", "2001:db8:20::53", protocol="udp", sport=2000, dport=53,
                      in_iface="a", out_iface="b")]
    verdicts = kernel.prove_ruleset(rs, packets)          # family ip6 from the parsed chains
    assert _agree(rs, verdicts) == []
    assert [v.delivered for v in verdicts] == [True, False, True, True, False]


@pytest.mark.slow
def test_kernel_agrees_with_the_nft_model(nft_json):
    rs = nftables.parse(nft_json)
    packets = [*PACKETS, Packet("2001:db8:10::5", "2001:db8:20::9", dport=22, in_iface=OFFICE, out_iface=OT),
               Packet("10.10.0.3", "10.20.0.1", dport=2222, in_iface=OFFICE, out_iface=OT),
               # `ip daddr != 10.20.0.0/16 udp dport 5000-5010 accept` is an IPv4 rule: not for this one
               Packet("2001:db8:10::5", "2001:db8:30::9", protocol="udp", dport=5005, in_iface=OFFICE, out_iface=DMZ)]
    verdicts = kernel.prove(nft_json, "nftables", packets)        # the JSON itself, loaded with nft -j -f
    assert _agree(rs, verdicts) == []
    assert sum(v.delivered for v in verdicts) == 8
    assert not [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
                if ns.startswith("pgk")]


def test_kernel_refuses_in_one_line():
    assert "iptables, nftables" in kernel.unavailable("cisco-ios") or os.geteuid() != 0
    with pytest.raises(kernel.KernelUnavailable):
        kernel.prove(ROUTER, "fortios", [])


@pytest.mark.slow
def test_kernel_proof_cleans_up_when_the_config_does_not_load(tmp_path):
    _need_root(*kernel.TOOLS["iptables"])
    bad = tmp_path / "bad.iptables"
    bad.write_text("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m nosuchmodule -j ACCEPT\nCOMMIT\n")
    with pytest.raises(kernel.KernelUnavailable, match="iptables-restore"):
        kernel.prove(bad, "iptables", PACKETS[:2])
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    assert not [ns for ns in listed.split() if ns.startswith("pgk")]
