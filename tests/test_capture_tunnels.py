"""Every frame accounted for: what the decode does not unwrap is counted by kind and noted,
and ICMP-only hosts become flows. Counts are checked against tshark (`tshark -r F -q -z io,phs`,
figures in the comments) on the shared captures, and on built frames."""
from __future__ import annotations

import collections
import struct

import numpy as np
import pytest

from conftest import SHARED_DATA
from plantguard.capture import columns as C, formats
from plantguard.capture.layers import decode_frame, undecoded_kind, undecoded_notes
from plantguard.capture.reference import analyze_reference
from support.packets import eth, ipv4, ipv6, pcap_bytes, udp

PCAPS = SHARED_DATA / "pcaps"
needs_data = pytest.mark.skipif(not PCAPS.is_dir(), reason="shared data not present")


def columnar_kinds(path) -> dict[str, int]:
    out: dict[str, int] = {}
    for ch in formats.read_chunks(path):
        arr = np.frombuffer(ch.buf, np.uint8)
        for k, v in C.undecoded(C.decode(arr, ch.offsets, ch.caplen, ch.linktype), ch.linktype, arr, ch.offsets, ch.caplen).items():
            out[k] = out.get(k, 0) + v
    return out


# tshark io,phs: 802.15.4 (wpan) 407 frames, which plantguard does not decode
@needs_data
def test_undecoded_link_types_counted_and_noted():
    name, kind, count = "ICS-Security-Tools/Zigbee/control4-sample.pcap", "undecoded_link_type:195", 407
    res = analyze_reference([PCAPS / name])
    assert res.counters[kind] == count
    assert f"{count} frames of link type 195 (802.15.4) not decoded: their hosts are missing" in res.notes
    assert columnar_kinds(PCAPS / name) == {kind: count}


# tshark: radiotap/wlan/llc/arp 2 frames, SA 78:31:c1:c6:3f:c2 (10.0.0.2) asks for 10.0.0.1, which
# f8:ed:a5:c0:a4:f1 answers; the wlanmon capture is the same frames without radiotap
@needs_data
@pytest.mark.parametrize("name", ["zeek/arp-who-has-radiotap.pcap", "zeek/arp-who-has-wlanmon.pcap"])
def test_80211_data_frames_decoded(name):
    from plantguard.capture.engine import analyze
    for res in (analyze([PCAPS / name]), analyze_reference([PCAPS / name])):
        got = {(o.src_mac, o.data["ip"], o.data["mac"]) for o in res.observations if o.kind == "address"}
        assert ("78:31:c1:c6:3f:c2", "10.0.0.2", "78:31:c1:c6:3f:c2") in got
        assert ("f8:ed:a5:c0:a4:f1", "10.0.0.1", "f8:ed:a5:c0:a4:f1") in got
        assert not res.counters.get("undecoded_link")
    assert columnar_kinds(PCAPS / name) == {}


# tshark -z conv,tcp: 10.41.128.33:63934 <-> 192.168.45.100:5007, 36 frames 3454 bytes (PPP link type 9)
@needs_data
def test_ppp_link_type_decoded():
    from plantguard.capture.engine import analyze
    path = PCAPS / "blackhat23-melsoft/cve_2021_20594_username_bruteforce.pcapng"
    for res in (analyze([path]), analyze_reference([path])):
        assert [(f.l4, f.client, f.client_port, f.server, f.port, f.packets, f.bytes) for f in res.flows] == [
            ("tcp", "10.41.128.33", 63934, "192.168.45.100", 5007, 36, 3454)]
        assert not res.counters.get("undecoded_link")


def test_other_link_types_built(tmp_path):
    """C-HDLC, Frame Relay (NLPID and SNAP), NFLOG and 802.11 with PPI, each carrying the same
    UDP packet; tshark decodes each to 10.5.0.1 -> 10.5.0.2 port 502 (checked when present)."""
    import shutil
    import subprocess
    from plantguard.capture.engine import analyze
    pkt = ipv4("10.5.0.1", "10.5.0.2", 17, udp(1000, 502, b"x"))
    wlan = bytes([0x08, 0x01, 0, 0]) + bytes.fromhex("02aa00000001" "02aa00000002" "02aa00000003") + bytes(2) \
        + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + pkt
    cases = {
        104: b"\x0f\x00\x08\x00" + pkt,
        107: b"\x18\x41\x03\xcc" + pkt,
        239: bytes([2, 0, 0, 1]) + struct.pack("<HH", 8, 1) + b"\x08\x00\x03\x00"
        + struct.pack("<HH", 4 + len(pkt), 9) + pkt,
        192: struct.pack("<BBHI", 0, 0, 8, 105) + wlan,
    }
    for lt, frame in cases.items():
        p = tmp_path / f"lt{lt}.pcap"
        p.write_bytes(pcap_bytes([(1.0, frame)], linktype=lt))
        for res in (analyze([p]), analyze_reference([p])):
            assert [(f.client, f.server, f.port) for f in res.flows] == [("10.5.0.1", "10.5.0.2", 502)], lt
        if lt == 192:
            assert [(f.client_mac, f.server_mac) for f in analyze([p]).flows] == [("02:aa:00:00:00:02", "02:aa:00:00:00:03")]
        if shutil.which("tshark"):
            out = subprocess.run(["tshark", "-r", str(p), "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
                                  "-e", "udp.dstport"], capture_output=True, text=True).stdout.split()
            assert out == ["10.5.0.1", "10.5.0.2", "502"], (lt, out)
    fr_snap = b"\x18\x41\x03\x00\x80\x00\x00\x00\x08\x00" + pkt
    assert decode_frame(107, fr_snap).dport == 502


def icmp(t: int, code: int = 0, rest: bytes = b"\x00\x00\x00\x01abcd") -> bytes:
    return struct.pack("!BBH", t, code, 0) + rest


def frames_pcap(tmp_path, frames, name="t.pcap"):
    p = tmp_path / name
    p.write_bytes(pcap_bytes([(1.0 + i, f) for i, f in enumerate(frames)]))
    return p


M1, M2, M3, M4 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"


def tunnel_frames():
    """One frame per tunnel kind, each carrying UDP 192.168.1.<k> -> 192.168.2.<k> port 502 + k;
    tshark -q -z io,phs on them (test below) finds the same inner packets."""
    def inner(k, v6=False):
        if v6:
            return ipv6(f"fd00:1::{k}", f"fd00:2::{k}", 17, udp(1000, 502 + k, b"x"))
        return ipv4(f"192.168.1.{k}", f"192.168.2.{k}", 17, udp(1000, 502 + k, b"x"))

    def inner_eth(k):
        return eth(M3, M4, 0x0800, inner(k))

    o4 = lambda proto, body: eth(M1, M2, 0x0800, ipv4("10.0.0.1", "10.0.0.2", proto, body))
    o6 = lambda proto, body: eth(M1, M2, 0x86DD, ipv6("fd99::1", "fd99::2", proto, body))
    return [
        ("GRE", o4(47, b"\x00\x00\x08\x00" + inner(1))),
        ("GRE", o4(47, b"\x20\x00\x65\x58" + b"\0\0\0\x2a" + inner_eth(2))),          # keyed, Ethernet
        ("ERSPAN", o4(47, b"\x10\x00\x88\xbe" + b"\0\0\0\x01" + b"\x10\x00\x00\x01" + bytes(4) + inner_eth(3))),  # type II
        ("VXLAN", o4(17, udp(5555, 4789, b"\x08" + bytes(7) + inner_eth(4)))),
        ("Geneve", o4(17, udp(5555, 6081, b"\x00\x00\x65\x58" + bytes(4) + inner_eth(5)))),
        ("Teredo", o4(17, udp(3544, 40000, inner(6, v6=True)))),
        ("IPv4-in-IP", o4(4, inner(7))),
        ("IPv4-in-IP", o6(4, inner(8))),                                                       # 4in6
        ("IPv6-in-IP (6in4/4in6)", o4(41, inner(9, v6=True))),                               # 6in4
        ("PPPoE session", eth(M1, M2, 0x8864, struct.pack("!BBHHH", 0x11, 0, 1, 42, 0x0021) + inner(10))),
        ("MPLS", eth(M1, M2, 0x8847, struct.pack("!II", 16 << 12 | 64, 17 << 12 | 0x100 | 64) + inner(11))),
        ("GRE", o4(47, b"\x00\x00\x08\x00" + ipv4("10.9.0.1", "10.9.0.2", 4, inner(12)))),  # GRE > IPIP
    ]


def test_tunnels_unwrapped_engine_and_reference(tmp_path):
    from plantguard.capture.engine import analyze
    built = tunnel_frames()
    p = frames_pcap(tmp_path, [f for _k, f in built] + [o for o in (
        eth(M1, M2, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 50, bytes(16))),)])
    want_flows = set()
    for k in range(1, 13):
        v6 = k in (6, 9)
        c, s = (f"fd00:1::{k}", f"fd00:2::{k}") if v6 else (f"192.168.1.{k}", f"192.168.2.{k}")
        mac = (M3, M4) if k in (2, 3, 4, 5) else (M1, M2)
        want_flows.add(("udp", c, s, 1000, 502 + k) + mac)
    for res in (analyze([p]), analyze_reference([p])):
        got = {(f.l4, f.client, f.server, f.client_port, f.port, f.client_mac, f.server_mac) for f in res.flows}
        assert got == want_flows
    res = analyze_reference([p])
    kinds = {}
    for k, _f in built:
        kinds["tunnelled:" + k] = kinds.get("tunnelled:" + k, 0) + 1
    kinds["undecoded_ip_proto:50"] = 1
    assert {k: v for k, v in res.counters.items() if ":" in k} == kinds
    assert columnar_kinds(p) == kinds
    assert "3 packets unwrapped from GRE tunnels: the hosts and flows inside are kept, the tunnel " \
           "endpoints are not flows" in res.notes


def test_tshark_sees_the_same_inner_packets(tmp_path):
    import shutil
    import subprocess
    if not shutil.which("tshark"):
        pytest.skip("no tshark")
    built = tunnel_frames()
    p = frames_pcap(tmp_path, [f for _k, f in built])
    out = subprocess.run(["tshark", "-r", str(p), "-d", "udp.port==3544,teredo", "-T", "fields",
                          "-e", "ip.dst", "-e", "ipv6.dst", "-e", "udp.dstport"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    for k, line in enumerate(out, 1):
        inner = f"fd00:2::{k}" if k in (6, 9) else f"192.168.2.{k}"
        assert inner in line and str(502 + k) in line.split("\t")[-1], (k, line)


def test_nesting_is_bounded():
    from plantguard.capture.layers import MAX_TUNNEL_DEPTH
    pkt = ipv4("192.168.1.1", "192.168.2.1", 17, udp(1, 2, b"x"))
    for _ in range(MAX_TUNNEL_DEPTH + 1):
        pkt = ipv4("10.0.0.1", "10.0.0.2", 4, pkt)
    f = eth(M1, M2, 0x0800, pkt)
    lay = decode_frame(1, f)
    assert lay.tunnel and lay.ip_proto == 4 and not lay.l4     # stopped one level short
    assert undecoded_kind(1, lay) == "tunnelled:IPv4-in-IP"
    cols = C.decode(np.frombuffer(f, np.uint8), np.array([0]), np.array([len(f)]), np.array([1]))
    assert int(cols.ip_proto[0]) == 4 and int(cols.l4[0]) == 0


def test_notes_name_fragments():
    assert undecoded_notes({"fragments": 3, "datagrams_reassembled": 1}) == [
        "3 IP fragments: 1 datagrams reassembled and decoded as one packet each (at their last fragment)"]
    assert undecoded_notes({"fragments": 5, "datagrams_reassembled": 1, "datagrams_incomplete": 2,
                            "fragment_overlaps": 1}) == [
        "5 IP fragments: 1 datagrams reassembled and decoded as one packet each (at their last fragment); "
        "datagrams lost: 2 incomplete (a fragment missing, timed out or cut by the capture's end) (their "
        "fragments only counted here); 1 fragments overlapped bytes already held (the lower offset kept)"]
    assert undecoded_kind(1, decode_frame(1, eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0806, bytes(28)))) is None


# ---- ICMP-only hosts ----
@needs_data
def test_icmp_only_host_becomes_a_flow():
    # tshark -Y icmp: 53 echo replies 192.168.10.125 -> 192.168.10.200, no requests
    from plantguard.capture.engine import analyze
    path = PCAPS / "ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap"
    for res in (analyze([path]), analyze_reference([path])):
        icmp_flows = [(f.l4, f.client, f.server, f.client_port, f.port, f.packets, f.packets_to_server)
                      for f in res.flows if f.l4 == "icmp"]
        assert icmp_flows == [("icmp", "192.168.10.200", "192.168.10.125", 0, 8, 53, 0)]


def test_echo_pair_is_one_flow_and_both_hosts_are_assets(tmp_path):
    from plantguard.capture.engine import analyze
    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    frames = [
        eth(a, b, 0x0800, ipv4("10.1.0.1", "10.1.0.2", 1, icmp(8))),
        eth(b, a, 0x0800, ipv4("10.1.0.2", "10.1.0.1", 1, icmp(0))),
        eth(a, b, 0x86DD, ipv6("fd00::1", "fd00::2", 58, icmp(128))),
        eth(b, a, 0x86DD, ipv6("fd00::2", "fd00::1", 58, icmp(129))),
        eth(b, a, 0x0800, ipv4("10.1.0.2", "10.1.0.1", 1, icmp(3, 3))),   # unreachable: .2 reports
    ]
    p = frames_pcap(tmp_path, frames)
    for res in (analyze([p]), analyze_reference([p])):
        got = sorted((f.l4, f.client, f.server, f.client_port, f.port, f.packets, f.packets_to_server,
                      f.client_mac, f.server_mac) for f in res.flows)
        assert got == [("icmp", "10.1.0.1", "10.1.0.2", 0, 3, 1, 0, a, b),
                       ("icmp", "10.1.0.1", "10.1.0.2", 0, 8, 2, 1, a, b),
                       ("icmpv6", "fd00::1", "fd00::2", 0, 128, 2, 1, a, b)]
    from plantguard.inventory.build import build_assets
    ips = {ip for asset in build_assets(analyze([p])) for ip in (asset.ips | {asset.ip})}
    assert {"10.1.0.1", "10.1.0.2", "fd00::1", "fd00::2"} <= ips


# ---- fragments: reassembled, the datagram is one packet ----
def dns_query(qid: int) -> bytes:
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\xff\x00\x01"


def fragmented_dns_frames():
    """A DNS query and its 1,200-byte answer cut into IPv4 fragments of 600 + 608 bytes, and the
    same over IPv6 (fragment header); tshark reassembles both answers (test below)."""
    c, s = "02:00:00:00:00:c1", "02:00:00:00:00:53"
    answer = dns_query(7)[:2] + b"\x81\x80" + dns_query(7)[4:] + bytes(1200 - len(dns_query(7)))
    dgram = struct.pack("!HHHH", 53, 40000, 8 + len(answer), 0) + answer
    frames = [eth(c, s, 0x0800, ipv4("10.0.0.5", "10.0.0.53", 17, udp(40000, 53, dns_query(7))))]
    for off in range(0, len(dgram), 600):
        part = dgram[off:off + 600]
        mf = 0x2000 if off + 600 < len(dgram) else 0
        hdr = bytearray(ipv4("10.0.0.53", "10.0.0.5", 17, part, flags_frag=mf | (off // 8)))
        hdr[4:6] = b"\x12\x34"                                           # IP id
        hdr[10:12] = struct.pack("!H", _checksum(bytes(hdr[:20])))
        frames.append(eth(s, c, 0x0800, bytes(hdr)))
    frames.append(eth(c, s, 0x86DD, ipv6("fd00::5", "fd00::53", 17, udp(40001, 53, dns_query(8)))))
    dgram = struct.pack("!HHHH", 53, 40001, 8 + len(answer), 0) + answer
    for off in range(0, len(dgram), 600):
        part = dgram[off:off + 600]
        mf = 1 if off + 600 < len(dgram) else 0
        frag = struct.pack("!BBHI", 17, 0, (off // 8) << 3 | mf, 0x5678)
        frames.append(eth(s, c, 0x86DD, ipv6("fd00::53", "fd00::5", 44, frag + part)))
    return frames


def _checksum(b: bytes) -> int:
    b = b[:10] + b"\0\0" + b[12:]
    t = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF


def test_reassembled_answer_is_one_packet_of_its_flow(tmp_path):
    from plantguard.capture.engine import analyze
    p = frames_pcap(tmp_path, fragmented_dns_frames())
    for res in (analyze([p]), analyze_reference([p]), analyze([p], chunk_records=1)):
        got = sorted((f.client, f.client_port, f.server, f.port, f.packets, f.packets_to_server, f.bytes, f.app)
                     for f in res.flows)
        # the query and the reassembled answer (14 + 20 + 1208 bytes; IPv6: 14 + 40 + 1208)
        assert got == [("10.0.0.5", 40000, "10.0.0.53", 53, 2, 1, 71 + 1242, "dns"),
                       ("fd00::5", 40001, "fd00::53", 53, 2, 1, 91 + 1262, "dns")]
        assert {k: res.counters[k] for k in ("fragments", "datagrams_reassembled", "datagrams_incomplete")} == \
            {"fragments": 6, "datagrams_reassembled": 2, "datagrams_incomplete": 0}
        # the DNS answers were decoded, at their last fragment (frames 4 and 8, as tshark shows them)
        assert sorted(o.frame for o in res.observations if o.kind == "service") == [4, 8]


def test_lost_fragment_is_counted_not_decoded(tmp_path):
    from plantguard.capture.engine import analyze
    frames = fragmented_dns_frames()
    del frames[2]                                     # the IPv4 answer's second fragment
    p = frames_pcap(tmp_path, frames)
    for res in (analyze([p]), analyze_reference([p])):
        assert sorted((f.client, f.packets) for f in res.flows) == [("10.0.0.5", 1), ("fd00::5", 2)]
        assert (res.counters["fragments"], res.counters["datagrams_reassembled"],
                res.counters["datagrams_incomplete"]) == (5, 1, 1)


def test_tshark_reassembles_the_built_fragments(tmp_path):
    import shutil
    import subprocess
    if not shutil.which("tshark"):
        pytest.skip("no tshark")
    p = frames_pcap(tmp_path, fragmented_dns_frames())
    out = subprocess.run(["tshark", "-r", str(p), "-Y", "dns.flags.response == 1", "-T", "fields",
                          "-e", "udp.srcport", "-e", "udp.length"], capture_output=True, text=True).stdout.split()
    assert out == ["53", "1208", "53", "1208"]


def test_reassembled_answers_agree_with_tshark(tmp_path):
    """tshark reassembles by default: the DNS answers are shown at their last fragment, with the
    whole UDP length; ours are decoded at the same frames, from datagrams of the same length."""
    import shutil
    import subprocess
    from plantguard.capture.engine import analyze
    if not shutil.which("tshark"):
        pytest.skip("no tshark")
    p = frames_pcap(tmp_path, fragmented_dns_frames())
    out = subprocess.run(["tshark", "-r", str(p), "-Y", "dns", "-T", "fields", "-e", "frame.number",
                          "-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.length"],
                         capture_output=True, text=True).stdout.split("\n")
    theirs = sorted(tuple(int(x) for x in line.split("\t")) for line in out if line)
    ours = sorted((lay_frame, lay.sport, lay.dport, 8 + len(lay.payload)) for lay_frame, lay in _reassembled(p))
    assert ours == theirs
    for res in (analyze([p]), analyze_reference([p])):
        dns = sorted(o.frame for o in res.observations if o.proto == "dns")
        assert dns == [t[0] for t in theirs]


def _reassembled(path):
    """(frame, layers) of every whole UDP datagram of a capture, fragments reassembled as the
    reference decoder does."""
    from plantguard.capture.layers import Reassembler, adopt_link
    from plantguard.capture.reference import iter_frames
    r, out = Reassembler(), []
    for frame, ts, _wl, lay in iter_frames(path):
        if lay is not None and lay.fragment:
            whole = r.feed(ts, lay.l3)
            lay = None if whole is None else adopt_link(decode_frame(101, whole), lay)
        if lay is not None and lay.l4 == "udp":
            out.append((frame, lay))
    return out


# ---- the bounded reassembler ----
def _ip_of(frame: bytes) -> bytes:
    return frame[14:]


def test_reassembler_rebuilds_the_fragmented_answers():
    from plantguard.capture.layers import Reassembler
    frames = fragmented_dns_frames()
    r = Reassembler()
    whole = [w for i, f in enumerate(frames) if (w := r.feed(float(i), _ip_of(f))) is not None]
    assert len(whole) == 2 and r.reassembled == 2 and not r.pending and r.held == 0
    for w, (src, dport) in zip(whole, (("10.0.0.53", 40000), ("fd00::53", 40001))):
        lay = decode_frame(101, w)
        assert (lay.src, lay.l4, lay.sport, lay.dport, lay.fragment) == (src, "udp", 53, dport, False)
        assert len(lay.payload) == 1200 and lay.payload[2:4] == b"\x81\x80"   # tshark: udp.length 1208


def test_reassembler_bounds_timeout_and_overlaps():
    from plantguard.capture.layers import Reassembler
    frames = fragmented_dns_frames()
    first, second = _ip_of(frames[1]), _ip_of(frames[2])
    r = Reassembler(timeout=5.0)
    assert r.feed(0.0, first) is None
    assert r.feed(10.0, second) is None and r.expired == 1          # the first piece timed out
    r = Reassembler()
    assert r.feed(0.0, first) is None and r.feed(0.1, first) is None
    assert r.overlaps == 1 and r.held == 600
    assert r.feed(0.2, second) is None and r.feed(0.3, _ip_of(frames[3])) is not None
    r = Reassembler(max_datagrams=1)
    r.feed(0.0, first)
    r.feed(0.0, _ip_of(frames[5]))                                   # another datagram: the first is dropped
    assert r.dropped == 1 and len(r.pending) == 1
    r = Reassembler(max_bytes=700)
    r.feed(0.0, first)
    r.feed(0.0, _ip_of(frames[5]))
    assert r.dropped == 1 and r.held <= 700



def test_many_fragmented_datagrams_equal_the_reference(tmp_path):
    """2,000 fragmented answers (3 fragments each) with unfragmented queries between some of
    them: engine and reference agree at any chunk size, every answer decoded once."""
    import sys
    from pathlib import Path
    from plantguard.capture.engine import analyze
    sys.path.insert(0, str(Path(__file__).parent))
    from test_engine_equivalence import assert_equivalent
    base = fragmented_dns_frames()
    frames = []
    for i in range(2000):
        if i % 3 == 0:
            frames.append(base[0])
        for f in base[1:4]:
            b = bytearray(f)
            b[18:20] = struct.pack("!H", i)                   # IP id: a datagram each
            frames.append(bytes(b))
    p = frames_pcap(tmp_path, frames)
    ref = analyze_reference([p])
    assert ref.counters["datagrams_reassembled"] == 2000 and ref.counters["fragments"] == 6000
    assert [(f.packets, f.packets_to_server) for f in ref.flows] == [(2667, 667)]
    for chunk in (65536, 13, 1):
        assert_equivalent(ref, analyze([p], chunk_records=chunk))

# ---- IP in 802.2 LLC/SNAP (OUI 0 and an EtherType) ----
@needs_data
def test_ip_in_snap_is_decoded_as_its_ethertype():
    # tshark: 192.168.1.1:12345 -> 192.168.1.2:80, 8 frames, frame 4 "GET / HTTP/1.1"; Zeek too
    import shutil
    import subprocess
    from plantguard.capture.engine import analyze
    path = PCAPS / "zeek/snap-tcp.pcap"
    frames = [f for _n, _ts, _wl, f in _frames(path)]
    for ch in formats.read_chunks(path):
        cols = C.decode(np.frombuffer(ch.buf, np.uint8), ch.offsets, ch.caplen, ch.linktype)
        assert [(int(cols.ethertype[i]), int(cols.l4[i]), int(cols.sport[i]), bool(cols.llc[i]))
                for i in range(len(cols))] == [(f.ethertype, 6, f.sport, f.llc) for f in frames]
    assert all(f.ethertype == 0x0800 and not f.llc for f in frames)
    for res in (analyze([path]), analyze_reference([path])):
        assert [(f.client, f.client_port, f.server, f.port, f.packets, f.app) for f in res.flows] == \
            [("192.168.1.1", 12345, "192.168.1.2", 80, 8, "http")]
        gets = [(o.frame, o.data["method"]) for o in res.observations if o.kind == "operation"]
        assert gets == [(4, "GET")]
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(path), "-Y", "http.request", "-T", "fields", "-e", "frame.number",
                              "-e", "http.request.method"], capture_output=True, text=True).stdout.split()
        assert out == ["4", "GET"]


def _frames(path):
    from plantguard.capture.reference import iter_frames
    return list(iter_frames(path))


def test_arp_in_snap_reaches_the_arp_module(tmp_path):
    from plantguard.capture.engine import analyze
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes.fromhex("020000000001"),
                      bytes([10, 0, 0, 1]), bytes(6), bytes([10, 0, 0, 2]))
    snap = b"\xaa\xaa\x03\x00\x00\x00\x08\x06" + arp
    frame = bytes.fromhex("ffffffffffff020000000001") + struct.pack("!H", len(snap)) + snap
    p = frames_pcap(tmp_path, [frame])
    for res in (analyze([p]), analyze_reference([p])):
        assert [(o.kind, o.proto, o.data["ip"], o.data["mac"]) for o in res.observations] == \
            [("address", "arp", "10.0.0.1", "02:00:00:00:00:01")]

# ---- IGMP-only hosts ----
@needs_data
def test_igmp_only_host_becomes_a_flow_and_an_asset():
    # tshark -Y igmp: 2 v2 membership reports (type 0x12) 208.73.217.142 -> 239.255.255.100 in
    # this capture, and nothing else from that host
    import shutil
    import subprocess
    from plantguard.capture.engine import analyze
    from plantguard.inventory.build import build_assets
    path = PCAPS / "ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap"
    want = [("igmp", "208.73.217.142", "239.255.255.100", 0, 0x12, 2, 2)]
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(path), "-Y", "igmp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
                              "-e", "igmp.type"], capture_output=True, text=True).stdout.splitlines()
        seen = collections.Counter(tuple(line.split("\t")) for line in out)
        want = [("igmp", s, d, 0, int(t, 0), n, n) for (s, d, t), n in sorted(seen.items())]
    for res in (analyze([path]), analyze_reference([path])):
        assert [(f.l4, f.client, f.server, f.client_port, f.port, f.packets, f.packets_to_server)
                for f in res.flows if f.l4 == "igmp"] == want
        assert not any(k.startswith("undecoded_ip_proto:2") for k in res.counters)
    ips = {ip for asset in build_assets(analyze([path])) for ip in (asset.ips | {asset.ip})}
    assert "208.73.217.142" in ips


# ---- the tunnel mark on flows ----
TUNNEL_MARKS = {"GRE": "gre", "ERSPAN": "erspan", "VXLAN": "vxlan", "Geneve": "geneve", "Teredo": "teredo",
                "IPv4-in-IP": "ipv4-in-ip", "IPv6-in-IP (6in4/4in6)": "ipv6-in-ip", "PPPoE session": "pppoe",
                "MPLS": "mpls"}


def test_tunnelled_flows_are_marked_with_the_outermost_tunnel(tmp_path):
    from plantguard.capture.engine import analyze
    from plantguard.contract import Flow as FlowContract
    built = tunnel_frames()
    plain = eth(M1, M2, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 502, b"x")))
    # the GRE-carried inner packet of k = 1 seen again untunnelled: still one flow, still marked
    again = eth(M3, M4, 0x0800, ipv4("192.168.1.1", "192.168.2.1", 17, udp(1000, 503, b"x")))
    p = frames_pcap(tmp_path, [f for _k, f in built] + [plain, again])
    want = {502 + k: TUNNEL_MARKS[kind] for k, (kind, _f) in enumerate(built, 1)}   # GRE > IPIP: gre
    want[502] = None
    for res in (analyze([p]), analyze_reference([p]), analyze([p], chunk_records=2)):
        assert {f.port: f.tunnel for f in res.flows} == want
        assert [f.packets for f in res.flows if f.port == 503] == [2]
        for f in res.flows:                                   # the contract takes the mark
            FlowContract(src=f.client, dst=f.server, proto=f.l4, port=f.port, packets=f.packets,
                         bytes=f.bytes, tunnel=f.tunnel)


def test_evicted_tunnelled_flows_keep_the_mark_in_their_aggregate(tmp_path):
    from plantguard.capture.engine import analyze
    frames = [eth(M1, M2, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 47, b"\x00\x00\x08\x00"
                                        + ipv4(f"192.168.1.{k}", "192.168.2.1", 17, udp(1000 + k, 502, b"x"))))
              for k in range(1, 60)]
    res = analyze([frames_pcap(tmp_path, frames)], max_flows=10)
    assert res.counters["flows_evicted"] and all(f.tunnel == "gre" for f in res.flows)
