"""NetBIOS Name Service decoder: field by field against tshark on every NBNS capture of the shared
corpus (header, names, types, NB addresses and flags), the observations against what tshark
decodes (requests, positive answers, registrations) and Zeek's dns.log (which parses udp/137),
the engine and the inventory, and hostile or truncated input."""
from __future__ import annotations

import re
import struct
from collections import Counter

import pytest
from conftest import analyze_shared, shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.baselines import zeek_log
from support.decode import deep_observations, frames, packet
from support.packets import pcap_bytes, udp_frame
from support.peers import tshark_many

from plantguard.capture.engine import analyze
from plantguard.capture.reference import analyze_reference
from plantguard.protocols import nbns, registry

# Every capture of the shared corpus in which tshark finds NBNS (tshark -r F -Y nbns).
CAPTURES = [
    "pcaps/ICS-Security-Tools/openics/EIP-ControlProtocolChangeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-RemoteModeChangeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-SoftwareUploadFailure.pcap",
    "pcaps/ICS-Security-Tools/C37.118/C37118/c37118_1100_unclean.pcap",
    "pcaps/ICS-Security-Tools/IEC61850/Sample_File_MMS_and_GOOSE.pcap",
    "pcaps/ICS-Security-Tools/beckoff/addroute.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/addroute1.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/addrouteuse444444444.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/beckoffaddroute.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/beckoffiplink.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/beckoffiplinktc2.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/beckoffiplinktc3.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/invokeid12.pcapng",
    "pcaps/ICS-Security-Tools/s7/S7Comm/wrapup.pcapng",
    "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
    "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_2.pcapng",
]
EIP = CAPTURES[:4]
FIELDS = ["ip.src", "ip.dst", "nbns.id", "nbns.flags.response", "nbns.flags.opcode", "nbns.flags.rcode",
          "nbns.count.queries", "nbns.count.answers", "nbns.count.auth_rr", "nbns.count.add_rr",
          "nbns.name", "nbns.type", "nbns.addr", "nbns.nb_flags", "nbns.nb_flags.group",
          "nbns.name_flags", "nbns.name_flags.group", "nbns.netbios_name"]
# Hostnames the captures' NetBIOS traffic gives (the named host's address, its computer name).
KNOWN_NAMES = {
    "pcaps/ICS-Security-Tools/openics/EIP-ControlProtocolChangeAttempt.pcap": {("192.168.10.105", "DBLICENSESERVER")},
    "pcaps/ICS-Security-Tools/openics/EIP-RemoteModeChangeAttempt.pcap": {("192.168.10.21", "WIN2K3LAB021")},
    "pcaps/ICS-Security-Tools/beckoff/addroute1.pcapng": {("192.168.1.8", "CX_0D7560"),
                                                          ("192.168.1.99", "SHENHUAJ6-PC")},
    "pcaps/ICS-Security-Tools/beckoff/beckoffiplinktc3.pcapng": {("192.168.1.8", "CX_0D7560")},
    "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap": {("192.168.1.1", "KW-VLIPC")},
}


@pytest.fixture(scope="module")
def peer():
    return tshark_many([shared_path(p) for p in CAPTURES], "nbns", FIELDS)


def _flag(values: list[str]) -> bool:
    return values[0] in ("1", "True", "true")


def ws_text(n: dict) -> str:
    """The 15 name bytes as Wireshark writes them: unprintable bytes as <xx>, trailing spaces dropped."""
    return "".join(chr(b) if 0x20 <= b <= 0x7E else f"<{b:02x}>" for b in n["raw"]).rstrip(" ")


def ws_name(n: dict) -> str:
    """A parsed name as Wireshark writes nbns.name: the text, <suffix> and the scope."""
    return f"{ws_text(n)}<{n['suffix']:02x}>" + (f".{n['scope']}" if n["scope"] else "")


def _tshark_name(v: str) -> str:
    return re.sub(r" \([^()]*\)$", "", v)   # resource record names carry " (Server service)"


def _host_text(v: str) -> str:
    """tshark's rendered name without its padding (trailing spaces and NULs, shown as <00>)."""
    return re.sub(r"(<00>| )+$", "", v)


def parsed_frames(path) -> dict[int, dict]:
    """frame -> parse() of every udp/137 payload of a capture."""
    out = {}
    for frame, _ts, lay in frames(path):
        if lay.l4 == "udp" and nbns.PORT in (lay.sport, lay.dport) and lay.payload:
            try:
                out[frame] = nbns.parse(lay.payload)
            except ValueError:
                out[frame] = None
    return out


def test_every_capture_is_decoded_field_by_field_like_tshark(peer):
    compared = 0
    for rel in CAPTURES:
        path = shared_path(rel)
        ours = parsed_frames(path)
        rows = peer[path]
        assert rows, rel
        assert {r["frame"] for r in rows} == {f for f, m in ours.items() if m is not None}, rel
        for r in rows:
            m = ours[r["frame"]]
            where = (rel, r["frame"])
            assert m["id"] == int(r["nbns.id"][0], 16), where
            assert m["response"] == _flag(r["nbns.flags.response"]), where
            assert m["opcode"] == int(r["nbns.flags.opcode"][0]), where
            if r["nbns.flags.rcode"]:
                assert m["rcode"] == int(r["nbns.flags.rcode"][0]), where
            assert m["counts"] == [int(r[f"nbns.count.{k}"][0]) for k in ("queries", "answers", "auth_rr", "add_rr")]
            names = [ws_name(q["name"]) for q in m["questions"]]
            types = [q["type"] for q in m["questions"]]
            addrs, nb_flags, node_names, node_flags = [], [], [], []
            for rec in m["records"]:
                names.append(ws_name(rec["name"]))
                types.append(rec["type"])
                for flags, ip in rec["addresses"]:
                    nb_flags.append(flags)
                    addrs.append(ip)
                for n, flags in rec["node_names"]:
                    node_names.append(ws_text(n))
                    node_flags.append(flags)
            assert names == [_tshark_name(v) for v in r["nbns.name"]], where
            assert types == [int(v) for v in r["nbns.type"]], where
            assert addrs == r["nbns.addr"], where
            assert nb_flags == [int(v, 16) for v in r["nbns.nb_flags"]], where
            assert node_names == r["nbns.netbios_name"], where
            assert node_flags == [int(v, 16) for v in r["nbns.name_flags"]], where
            compared += 1
    assert compared >= 2000


def _expected_from_tshark(rows) -> tuple[Counter, set, set]:
    """What the observations should say, from tshark's fields alone: (frame, opcode) of every
    request; (address, name) of every unique workstation/server name that a registration or
    refresh request, or a positive answer, binds to a unicast address in NB records; and the
    unique names of positive node status answers with their responder (tshark gives no suffix
    for those, so they bound what we report rather than fix it)."""
    ops, hosts, status = Counter(), set(), set()
    for r in rows:
        opcode = int(r["nbns.flags.opcode"][0])
        response = _flag(r["nbns.flags.response"])
        if not response:
            ops[(r["frame"], opcode)] += 1
        rcode = int(r["nbns.flags.rcode"][0]) if r["nbns.flags.rcode"] else 0
        if response and rcode or not response and opcode not in (5, 8, 9, 15):
            continue
        names = [_tshark_name(v) for v in r["nbns.name"]][int(r["nbns.count.queries"][0]):]
        for ip, group in zip(r["nbns.addr"], r["nbns.nb_flags.group"]):   # NB records: one name each here
            m = re.fullmatch(r"(.*)<(00|20)>", names[0])
            if m and not _flag([group]) and ip not in ("0.0.0.0", "255.255.255.255"):
                hosts.add((ip, _host_text(m.group(1))))
        if response:
            for n, group in zip(r["nbns.netbios_name"], r["nbns.name_flags.group"]):
                if not _flag([group]):
                    status.add((r["ip.src"][0], _host_text(n)))
    return ops, hosts, status


def test_operations_and_hostnames_agree_with_tshark(peer):
    seen_hosts = 0
    for rel in CAPTURES:
        path = shared_path(rel)
        want_ops, want_hosts, status = _expected_from_tshark(peer[path])
        obs = [o for o in deep_observations(path) if o.proto == "nbns"]
        got_ops = Counter((o.frame, o.data["code"]) for o in obs if o.kind == "operation")
        assert got_ops == want_ops, rel
        got_hosts = {(o.data["ip"], o.data["name"]) for o in obs if o.kind == "hostname"}
        assert want_hosts <= got_hosts and got_hosts - want_hosts <= status, (rel, got_hosts, want_hosts, status)
        assert got_hosts >= KNOWN_NAMES.get(rel, set()), rel
        assert all(o.data["source"] == "netbios" for o in obs if o.kind == "hostname")
        seen_hosts += len(got_hosts)
        responders = {(r["ip.src"][0]) for r in peer[path] if _flag(r["nbns.flags.response"])}
        assert {o.src for o in obs if o.kind == "service"} == responders, rel
    assert seen_hosts >= 8


def test_query_names_agree_with_zeeks_dns_log():
    """Bro/Zeek's dns analyzer parses udp/137: the names its queries ask are our operations'."""
    for rel in EIP:
        path = shared_path(rel)
        log = shared_path(f"baselines/ICS-pcap/EIP/{path.stem}/dns.log")
        want = Counter((r["id.orig_h"], r["query"]) for r in zeek_log(log) if r["query"] != "-")
        got = Counter((o.src, re.sub(r"<[0-9a-f]{2}>$", "", o.data["detail"])) for o in deep_observations(path)
                      if o.kind == "operation" and o.proto == "nbns")
        assert got == want, rel


def test_operation_names_and_categories():
    asked = [(o.data["name"], o.data["category"], o.data["code"])
             for rel in ("pcaps/ICS-Security-Tools/beckoff/addroute1.pcapng",
                         "pcaps/ICS-Security-Tools/beckoff/beckoffiplinktc3.pcapng")
             for o in deep_observations(shared_path(rel)) if o.kind == "operation" and o.proto == "nbns"]
    assert set(asked) == {("name query", "read", 0), ("node status query", "diagnostic", 0),
                          ("registration", "other", 5)}


def test_engine_gives_nbns_flows_hostnames_reach_assets():
    from plantguard.inventory.build import build_assets
    for rel, names in KNOWN_NAMES.items():
        res = analyze_shared(rel)
        ports = [f for f in res.flows if f.l4 == "udp" and nbns.PORT in (f.port, f.client_port)]
        assert ports and all(f.app == "nbns" for f in ports), rel
        assert any(f.operations for f in ports)
        assets = {a.ip: a for a in build_assets(res)}
        for ip, name in names:
            assert name in assets[ip].hostnames, (rel, ip, assets[ip].hostnames)
            assert "nbns" in assets[ip].protocols


def test_engine_and_reference_agree_on_nbns_captures():
    from test_engine_equivalence import assert_equivalent
    for rel in CAPTURES[:4] + ["pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap"]:
        path = shared_path(rel)
        assert_equivalent(analyze_reference([path]), analyze([path]))
        assert_equivalent(analyze_reference([path]), analyze([path], chunk_records=13))


def test_registry_routes_udp_137_to_nbns():
    q = query(b"PLC-01", 0x20)
    assert registry.classify("udp", 137, 137, q) is nbns
    assert registry.classify("udp", 51000, 137, q) is nbns
    assert registry.classify("udp", 51000, 137, b"\x00" * 60) is None
    assert registry.spec_of("nbns").layer == "it" and registry.spec_of("nbns").udp_ports == (137,)


# --- built by hand -----------------------------------------------------------------------------

def encode(name: bytes, suffix: int, pad: bytes = b" ") -> bytes:
    raw = name[:15].ljust(15, pad) + bytes([suffix])
    return b"".join(bytes([0x41 + (c >> 4), 0x41 + (c & 15)]) for c in raw)


def qname(name: bytes, suffix: int, scope: bytes = b"") -> bytes:
    out = b"\x20" + encode(name, suffix)
    for label in scope.split(b".") if scope else ():
        out += bytes([len(label)]) + label
    return out + b"\x00"


def header(ident=0x1234, response=False, opcode=0, flags=0x0110, rcode=0, counts=(1, 0, 0, 0)) -> bytes:
    word = (0x8000 if response else 0) | (opcode << 11) | flags | rcode
    return struct.pack(">HHHHHH", ident, word, *counts)


def query(name: bytes, suffix: int = 0x20, qtype: int = 0x20) -> bytes:
    return header() + qname(name, suffix) + struct.pack(">HH", qtype, 1)


def nb_rr(name_field: bytes, entries, ttl: int = 300000) -> bytes:
    rdata = b"".join(struct.pack(">H", f) + bytes(map(int, ip.split("."))) for f, ip in entries)
    return name_field + struct.pack(">HHIH", 0x20, 1, ttl, len(rdata)) + rdata


def registration(name: bytes, ip: str, suffix: int = 0x00, opcode: int = 5, group: bool = False) -> bytes:
    return (header(opcode=opcode, counts=(1, 0, 0, 1)) + qname(name, suffix) + struct.pack(">HH", 0x20, 1)
            + nb_rr(b"\xc0\x0c", [(0x8000 if group else 0x6000, ip)]))


def answer(name: bytes, entries, suffix: int = 0x20, rcode: int = 0) -> bytes:
    return header(response=True, flags=0x0400, rcode=rcode, counts=(0, 1, 0, 0)) + nb_rr(qname(name, suffix), entries)


def node_status(names) -> bytes:
    body = bytes([len(names)]) + b"".join(n.ljust(15) + bytes([s]) + struct.pack(">H", f) for n, s, f in names)
    body += b"\x02\x00\x00\x00\x00\x01" + b"\x00" * 40
    rr = b"\x20" + encode(b"*", 0, b"\x00") + b"\x00"      # the wildcard name, padded with NULs
    return (header(response=True, flags=0x0400, counts=(0, 1, 0, 0)) + rr
            + struct.pack(">HHIH", 0x21, 1, 0, len(body)) + body)


def run(payload: bytes, src="10.0.0.7", dst="10.0.0.255", sport=137, dport=137, state=None):
    return nbns.decode(packet(payload, l4="udp", src=src, dst=dst, sport=sport, dport=dport, state=state))


def kinds(obs, kind):
    return [o for o in obs if o.kind == kind]


def test_first_level_encoding_round_trip_and_scope():
    m = nbns.parse(header() + qname(b"HMI-3", 0x20, b"plant.local") + struct.pack(">HH", 0x20, 1))
    (q,) = m["questions"]
    assert (q["name"]["text"], q["name"]["suffix"], q["name"]["scope"]) == ("HMI-3", 0x20, "plant.local")
    assert ws_name(q["name"]) == "HMI-3<20>.plant.local"
    (op,) = run(header() + qname(b"HMI-3", 0x20, b"plant.local") + struct.pack(">HH", 0x20, 1))
    assert op.data == {"category": "read", "code": 0, "name": "name query", "detail": "HMI-3<20>.plant.local"}


def test_registration_names_its_sender_and_group_names_name_nobody():
    obs = run(registration(b"ENG-WS1", "10.0.0.7"))
    assert [(o.subject, o.data) for o in kinds(obs, "hostname")] == \
        [("src", {"name": "ENG-WS1", "ip": "10.0.0.7", "source": "netbios"})]
    assert [o.data["name"] for o in kinds(obs, "operation")] == ["registration"]
    assert kinds(obs, "service") == []                    # a request offers nothing
    assert kinds(run(registration(b"WORKGROUP", "10.0.0.7", group=True)), "hostname") == []
    assert kinds(run(registration(b"WORKGROUP", "10.0.0.7", suffix=0x1D)), "hostname") == []   # master browser
    assert kinds(run(registration(b"ENG-WS1", "0.0.0.0")), "hostname") == []
    refresh = run(registration(b"ENG-WS1", "10.0.0.7", opcode=8))
    assert [(o.data["name"], o.data["code"]) for o in kinds(refresh, "operation")] == [("refresh", 8)]
    assert len(kinds(refresh, "hostname")) == 1
    release = run(registration(b"ENG-WS1", "10.0.0.7", opcode=6))
    assert kinds(release, "hostname") == [] and kinds(release, "operation")[0].data["name"] == "release"


def test_positive_answer_names_the_address_in_the_record():
    own = run(answer(b"PLC-GW", [(0x0000, "10.0.0.9")]), src="10.0.0.9", dst="10.0.0.7")
    (h,) = kinds(own, "hostname")
    assert (h.subject, h.subject_ip, h.data["ip"], h.data["name"]) == ("src", "10.0.0.9", "10.0.0.9", "PLC-GW")
    assert [(o.subject, o.data) for o in kinds(own, "service")] == [("src", {"name": "nbns"})]
    # a WINS server answering for another host: the address is the named host
    wins = run(answer(b"HIST-1", [(0x0000, "10.0.2.5"), (0x0000, "10.0.3.5")]), src="10.0.0.2", dst="10.0.0.7")
    assert {(o.data["ip"], o.subject) for o in kinds(wins, "hostname")} == {("10.0.2.5", "dst"), ("10.0.3.5", "dst")}
    assert kinds(run(answer(b"HIST-1", [(0, "10.0.2.5")], rcode=3), src="10.0.0.2", dst="10.0.0.7"), "hostname") == []
    assert kinds(run(answer(b"HIST-1", [(0, "224.0.0.1")]), src="10.0.0.2"), "hostname") == []
    assert kinds(run(answer(b"HIST-1", [(0, "10.0.2.5")]), src="10.0.0.2", sport=40000), "service") == []


def test_node_status_answer_names_the_responder():
    obs = run(node_status([(b"CX-PLC", 0x00, 0x0400), (b"PLANT", 0x00, 0x8400), (b"CX-PLC", 0x20, 0x0400),
                           (b"CX-PLC", 0x03, 0x0400)]), src="10.0.0.9", dst="10.0.0.7")
    assert [(o.data["name"], o.data["ip"], o.subject) for o in kinds(obs, "hostname")] == \
        [("CX-PLC", "10.0.0.9", "src"), ("CX-PLC", "10.0.0.9", "src")]
    q = header() + b"\x20" + encode(b"*", 0, b"\x00") + b"\x00" + struct.pack(">HH", 0x21, 1)
    (op,) = run(q, dst="10.0.0.9", sport=40000)
    assert op.data == {"category": "diagnostic", "code": 0, "name": "node status query", "detail": "*<00>"}


def test_hostile_name_bytes_are_kept_raw():
    evil = b"\x1b[31mPWN\x07"
    (h,) = kinds(run(registration(evil, "10.0.0.7")), "hostname")
    assert h.data["name"] == evil.decode("latin-1")
    m = nbns.parse(registration(b"A\x00B", "10.0.0.7"))
    assert ws_name(m["questions"][0]["name"]) == "A<00>B<00>"


def test_per_flow_caps():
    state: dict = {}
    details = [kinds(run(query(f"HOST{i}".encode()), state=state), "operation")[0].data["detail"]
               for i in range(nbns.MAX_QUERY_NAMES + 5)]
    assert details[:nbns.MAX_QUERY_NAMES] == [f"HOST{i}<20>" for i in range(nbns.MAX_QUERY_NAMES)]
    assert details[nbns.MAX_QUERY_NAMES:] == [None] * 5
    assert details[0] == kinds(run(query(b"HOST0"), state=state), "operation")[0].data["detail"]   # known: kept
    state = {}
    for i in range(nbns.MAX_HOSTNAMES + 3):
        run(registration(f"WS{i}".encode(), f"10.1.{i // 250}.{i % 250 + 1}"), state=state)
    assert len(state["nbns_h"]) == nbns.MAX_HOSTNAMES


def test_records_and_entries_are_bounded():
    many_q = header(counts=(1000, 0, 0, 0)) + (qname(b"X", 0x20) + struct.pack(">HH", 0x20, 1)) * 1000
    assert len(nbns.parse(many_q)["questions"]) == nbns.MAX_RECORDS
    entries = [(0x6000, f"10.0.0.{i}") for i in range(1, 200)]
    m = nbns.parse(answer(b"MH", entries))
    assert len(m["records"][0]["addresses"]) == nbns.MAX_ADDRESSES
    status = node_status([(f"N{i}".encode(), 0, 0x0400) for i in range(255)])
    assert len(nbns.parse(status)["records"][0]["node_names"]) == nbns.MAX_NODE_NAMES
    assert len(kinds(run(status, src="10.0.0.9", dst="10.0.0.7"), "hostname")) == nbns.MAX_PACKET_HOSTNAMES


@pytest.mark.parametrize("payload", [
    header() + b"\x20" + b"A" * 31 + b"\x00" + b"\x00\x20\x00\x01",              # label of 31
    header() + b"\x20" + b"Z" * 32 + b"\x00" + b"\x00\x20\x00\x01",              # outside 'A'..'P'
    header() + b"\xc0\x0c" + b"\x00\x20\x00\x01",                                 # pointer to itself
    header() + b"\xc0\x20" + b"\x00" * 40,                                        # pointer forward
    header(counts=(0, 1, 0, 0)) + b"\x20" + encode(b"A", 0) + b"\x80" + b"\x00" * 10,  # label type 10
    header(opcode=3) + qname(b"A", 0) + b"\x00\x20\x00\x01",                    # unknown opcode
    header() + b"\x20" + encode(b"A", 0) + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
    + b"\x3f" + b"d" * 63 + b"\x00\x00\x20\x00\x01",                               # name over 255 bytes
])
def test_malformed_messages_raise_and_decode_to_nothing(payload):
    with pytest.raises(ValueError):
        nbns.parse(payload)
    assert run(payload) == [] and not nbns.signature(payload)


@pytest.mark.parametrize("good", [query(b"PLC-01"), registration(b"ENG-WS1", "10.0.0.7"),
                                  answer(b"PLC-GW", [(0, "10.0.0.9")] * 3),
                                  node_status([(b"CX-PLC", 0, 0x0400)] * 3)], ids=["query", "reg", "answer", "status"])
def test_every_truncation_is_safe(good):
    assert nbns.signature(good) and nbns.parse(good)
    for n in range(len(good)):
        cut = good[:n]
        try:
            nbns.parse(cut)
        except ValueError:
            pass
        assert isinstance(run(cut), list)
        nbns.signature(cut)


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_messages_never_raise_and_stay_bounded(data):
    base = bytearray(data.draw(st.sampled_from([query(b"PLC-01"), registration(b"ENG-WS1", "10.0.0.7"),
                                                answer(b"PLC-GW", [(0, "10.0.0.9")] * 3),
                                                node_status([(b"CX-PLC", 0, 0x0400)] * 3)])))
    for _ in range(data.draw(st.integers(0, 8))):
        if not base:
            break
        i = data.draw(st.integers(0, len(base) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            base[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del base[i:]
        else:
            base[i:i] = data.draw(st.binary(max_size=64))
    state: dict = {}
    out = run(bytes(base), state=state)
    nbns.signature(bytes(base))
    assert len(out) <= 2 + nbns.MAX_PACKET_HOSTNAMES
    for o in out:
        assert all(not isinstance(v, (bytes, bytearray)) for v in o.data.values())
        assert len(str(o.data.get("detail") or "")) <= 300


@settings(max_examples=200, deadline=1000)
@given(payload=st.binary(max_size=600))
def test_random_bytes_never_raise(payload):
    assert isinstance(run(payload), list)
    nbns.signature(payload)


def test_synthetic_capture_engine_equals_reference(tmp_path):
    """Registrations, queries and answers repeated with the same bytes (replay must not apply):
    the engine, also in chunks of 13 records, gives what the reference gives."""
    pkts = []
    for k in range(40):
        pkts.append(udp_frame("10.0.0.7", "10.0.0.255", 137, 137, registration(b"ENG-WS1", "10.0.0.7")))
        pkts.append(udp_frame("10.0.0.7", "10.0.0.255", 137, 137, query(f"PLC-{k % 3}".encode())))
        pkts.append(udp_frame("10.0.0.9", "10.0.0.7", 137, 137, answer(f"PLC-{k % 3}".encode(), [(0, "10.0.0.9")])))
    p = tmp_path / "nbns.pcap"
    p.write_bytes(pcap_bytes([(1.7e9 + i * 0.01, f) for i, f in enumerate(pkts)]))
    from test_engine_equivalence import assert_equivalent
    ref = analyze_reference([p])
    assert_equivalent(ref, analyze([p]))
    assert_equivalent(ref, analyze([p], chunk_records=13))
    ops = sum(sum(f.operations.values()) for f in ref.flows if f.app == "nbns")
    assert ops == 80
