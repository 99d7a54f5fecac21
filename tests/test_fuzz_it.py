"""Fuzzing the IT-protocol decoders (ARP, DHCP, LLDP, CDP, SNMP, HTTP, FTP, Telnet, TLS, SSH,
DNS) with random bytes and with mutated real payloads from the shared captures: no
exception, no hang (per-example deadline), bounded output and bounded per-flow state."""
from __future__ import annotations

from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.decode import frames, packet

from plantguard.protocols import arp, cdp, dhcp, dns, ftp, http, lldp, snmp, ssh, telnet, tls

MAX_OBS_PER_PACKET = 400
MAX_STATE_BYTES = 1 << 19

# module -> (layer: "l2" | "udp" | "tcp", port, captures with real traffic of it)
TARGETS = {
    arp: ("l2", 0, ["pcaps/zeek/arp-who-has.pcap", "pcaps/zeek/arp-leak.pcap", "pcaps/zeek/snap-arp.pcapng"]),
    lldp: ("l2", 0, ["pcaps/zeek/lldp.pcap", "pcaps/ICS-Security-Tools/profinet/Profinet_Failed.pcap"]),
    cdp: ("l2", 0, ["pcaps/zeek/cdp-v1.pcap", "pcaps/ICS-Security-Tools/openics/EIP-SoftwareUploadFailure.pcap"]),
    dhcp: ("udp", 67, ["pcaps/zeek/dhcp/dhcp.pcap", "pcaps/zeek/dhcp/dhcp_discover_param_req_and_client_id.pcap"]),
    snmp: ("udp", 161, ["pcaps/zeek/snmp/snmpv1_get.pcap", "pcaps/zeek/snmp/snmpv3_get_next.pcap",
                        "pcaps/zeek/snmp/snmp-crash-62790.pcap", "pcaps/zeek/snmp/snmpv1_trap.pcap"]),
    dns: ("udp", 53, ["pcaps/zeek/modbus/modbusSmall.pcap", "pcaps/ICS-Security-Tools/profinet/Profinet_Failed.pcap"]),
    http: ("tcp", 80, ["pcaps/zeek/http/basic-auth-with-colon.pcap", "pcaps/zeek/http/http-lower-case.pcap",
                       "pcaps/zeek/http/no-version.pcap"]),
    ftp: ("tcp", 21, ["pcaps/zeek/ftp/ipv4.pcap", "pcaps/zeek/ftp/ftp-password-pass-command.pcap"]),
    telnet: ("tcp", 23, ["pcaps/zeek/telnet-auth-missing-name.pcap"]),
    tls: ("tcp", 443, ["pcaps/zeek/tls/tls1.2.pcap", "pcaps/zeek/tls/ssl-v2.pcap", "pcaps/zeek/tls/ecdsa-cert.pcap"]),
    ssh: ("tcp", 22, []),
}
BUILTIN = {
    ssh: [b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1\r\n", b"SSH-1.99-Cisco-1.25\r\n"],
    telnet: [b"\xff\xfb\x01\xff\xfb\x03\r\nlogin: ", b"admin\r\n", b"\xff\xfa\x18\x00VT100\xff\xf0"],
    http: [b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic YTpi\r\n\r\n",
           b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
    ftp: [b"220 vsFTPd 3.0.5\r\n", b"USER a\r\nPASS b\r\n", b"230 ok\r\n"],
}


@lru_cache(maxsize=None)
def seeds(mod) -> tuple[bytes, ...]:
    """Real payloads of this protocol from the shared captures (plus built-in ones)."""
    from conftest import SHARED_DATA
    layer, _port, caps = TARGETS[mod]
    out = list(BUILTIN.get(mod, []))
    for rel in caps:
        path = SHARED_DATA / rel
        if not path.exists():
            continue
        for _f, _ts, lay in frames(path):
            if layer == "l2" and not lay.l4 and lay.src is None:
                data = bytes(lay.l3)
                out.append(data[8:] if lay.llc else data)
            elif layer == lay.l4 and lay.payload:
                out.append(bytes(lay.payload))
            if len(out) >= 60:
                break
    return tuple(out) or (b"\x00",)


def run(mod, payload: bytes, state: dict | None = None, from_client: bool = True, seq: int = 0):
    layer, port, _ = TARGETS[mod]
    if layer == "l2":
        pkt = packet(payload, l4="", src=None, dst=None)
    else:
        sport, dport = (40000, port) if from_client else (port, 40000)
        pkt = packet(payload, l4=layer, sport=sport, dport=dport, from_client=from_client,
                     state=state, seq=seq)
    out = mod.decode(pkt)
    assert isinstance(out, list) and len(out) <= MAX_OBS_PER_PACKET
    for o in out:
        assert o.kind and o.proto and isinstance(o.data, dict)
        for v in o.data.values():
            assert not isinstance(v, (bytes, bytearray))          # observations carry text, not raw bytes
            assert len(str(v)) <= 4096
    return out


def state_bytes(state: dict) -> int:
    total = 0
    for v in state.values():
        if isinstance(v, (bytes, bytearray, str)):
            total += len(v)
        for attr in ("data", "sb", "hs"):
            x = getattr(v, attr, None) if not isinstance(v, (dict, set, list, tuple)) else None
            if isinstance(x, (bytes, bytearray)):
                total += len(x)
            elif x is not None and hasattr(x, "data"):
                total += len(x.data)
    return total


MODULES = list(TARGETS)
FUZZ = settings(max_examples=120, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
STREAMS = settings(max_examples=50, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
@FUZZ
@given(payload=st.binary(max_size=3000))
def test_random_bytes(mod, payload):
    run(mod, payload)
    mod.signature(payload)


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
@FUZZ
@given(data=st.data())
def test_mutated_real_payloads(mod, data):
    base = bytearray(data.draw(st.sampled_from(seeds(mod))))
    for _ in range(data.draw(st.integers(0, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if not base:
            break
        i = data.draw(st.integers(0, len(base) - 1))
        if op == "flip":
            base[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del base[i:]
        elif op == "insert":
            base[i:i] = data.draw(st.binary(max_size=16))
        else:
            base[i:i] = base[i:i + data.draw(st.integers(1, 64))]
    run(mod, bytes(base))
    mod.signature(bytes(base))


@pytest.mark.parametrize("mod", [m for m in MODULES if TARGETS[m][0] == "tcp"] + [dns], ids=lambda m: m.NAME)
@STREAMS
@given(data=st.data())
def test_streams_stay_bounded(mod, data):
    """Many segments in both directions through one flow state: bounded state, no error."""
    state: dict = {}
    seqs = {True: 1000, False: 9000}
    pool = seeds(mod)
    for _ in range(data.draw(st.integers(1, 20))):
        client = data.draw(st.booleans())
        chunk = data.draw(st.one_of(st.sampled_from(pool), st.binary(max_size=600)))
        if data.draw(st.booleans()):
            cut = data.draw(st.integers(0, len(chunk)))
            chunk = chunk[:cut]
        if TARGETS[mod][0] == "udp":
            run(mod, chunk, state, client)
            continue
        if data.draw(st.integers(0, 9)) == 0:
            seqs[client] += data.draw(st.integers(-3000, 3000))      # a gap or a retransmission
        run(mod, chunk, state, client, seqs[client] & 0xFFFFFFFF)
        seqs[client] += len(chunk)
    assert state_bytes(state) <= MAX_STATE_BYTES


def test_huge_inputs_finish():
    big = b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\n"
    run(http, big)
    run(tls, b"\x16\x03\x01\x48\x00" + b"\x0b\xff\xff\xff" + b"\x00" * 18000)
    run(dns, b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" + b"a" * 63 * 1000)
    run(snmp, b"\x30\x82\xff\xff" + b"\x02\x01\x01\x04\x00" + b"\xa0\x82\xff\xf0" + b"\x30\x03\x06\x01\x2b" * 10000)
    run(telnet, b"\xff\xfa" + b"\x00" * 100_000)
    run(lldp, b"\x02\x07\x04" + b"\x00" * 6 + b"\xfe\xff" * 40_000)
