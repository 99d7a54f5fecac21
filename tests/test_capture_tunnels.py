"""Every frame accounted for: what the decode does not unwrap is counted by kind and noted,
and ICMP-only hosts become flows. Counts are checked against tshark (`tshark -r F -q -z io,phs`,
figures in the comments) on the shared captures, and on built frames."""
from __future__ import annotations

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
        for k, v in C.undecoded(C.decode(arr, ch.offsets, ch.caplen, ch.linktype), ch.linktype).items():
            out[k] = out.get(k, 0) + v
    return out


# tshark io,phs: radiotap 2 frames (wlan/llc/arp), wlan 2, 802.15.4 (wpan) 407
@needs_data
@pytest.mark.parametrize("name,kind,count", [
    ("zeek/arp-who-has-radiotap.pcap", "undecoded_link_type:127", 2),
    ("zeek/arp-who-has-wlanmon.pcap", "undecoded_link_type:105", 2),
    ("ICS-Security-Tools/Zigbee/control4-sample.pcap", "undecoded_link_type:195", 407),
])
def test_undecoded_link_types_counted_and_noted(name, kind, count):
    res = analyze_reference([PCAPS / name])
    assert res.counters[kind] == count
    assert any(n.startswith(f"{count:,} frames of link type {kind.rsplit(':', 1)[1]} ") for n in res.notes), res.notes
    assert columnar_kinds(PCAPS / name) == {kind: count}


def icmp(t: int, code: int = 0, rest: bytes = b"\x00\x00\x00\x01abcd") -> bytes:
    return struct.pack("!BBH", t, code, 0) + rest


def frames_pcap(tmp_path, frames, name="t.pcap"):
    p = tmp_path / name
    p.write_bytes(pcap_bytes([(1.0 + i, f) for i, f in enumerate(frames)]))
    return p


def test_tunnels_and_other_protocols_counted(tmp_path):
    inner = ipv4("192.168.1.1", "192.168.1.2", 17, udp(1000, 502, b"x"))
    frames = [
        eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800, ipv4("10.0.0.1", "10.0.0.2", 47, b"\x00\x00\x08\x00" + inner)),
        eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(5555, 4789, b"\x08" + bytes(7) + bytes(14) + inner))),
        eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800, ipv4("10.0.0.1", "10.0.0.2", 4, inner)),
        eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x86DD, ipv6("fe80::1", "fe80::2", 4, inner)),
        eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x8847, b"\x00\x01\x01\x40" + inner),
        eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800, ipv4("10.0.0.1", "10.0.0.2", 50, bytes(16))),
    ]
    p = frames_pcap(tmp_path, frames)
    res = analyze_reference([p])
    want = {"tunnelled:GRE": 1, "tunnelled:VXLAN": 1, "tunnelled:IPv4-in-IP": 2, "tunnelled:MPLS": 1,
            "undecoded_ip_proto:50": 1}
    assert {k: v for k, v in res.counters.items() if ":" in k} == want
    assert columnar_kinds(p) == want
    assert "1 packets in GRE tunnels not unwrapped: the hosts and flows inside are missing " \
           "(the outer endpoints are kept)" in res.notes


def test_notes_name_fragments():
    assert undecoded_notes({"fragments": 3}) == [
        "3 IP fragments not reassembled: their datagrams' ports, flows and contents are missing"]
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
