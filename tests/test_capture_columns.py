"""The columnar L2-L4 decode must equal the per-frame reference decode (layers.decode_frame)
for every frame: structured random frames (VLAN stacks, IPv4 options and fragments, IPv6
extension headers, short and lying length fields) and plain random bytes, on every link type."""
from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings, strategies as st

from plantguard.capture import columns as C
from plantguard.capture.layers import decode_frame, undecoded_kind

LINKTYPES = [1, 0, 12, 14, 101, 108, 113, 228, 229, 276, 147, 9, 50, 104, 105, 107, 127, 192, 239]


def columnar(linktype: int, frames: list[bytes]) -> C.Columns:
    buf = b"".join(frames)
    offs, o = [], 0
    for f in frames:
        offs.append(o)
        o += len(f)
    arr = np.frombuffer(buf + b"\x00", dtype=np.uint8)  # never empty
    n = len(frames)
    return C.decode(arr, np.asarray(offs, np.int64), np.asarray([len(f) for f in frames], np.int32),
                    np.full(n, linktype, np.int32)), buf


def assert_same(linktype: int, frames: list[bytes]) -> None:
    cols, buf = columnar(linktype, frames)
    for i, f in enumerate(frames):
        lay = decode_frame(linktype, f)
        assert bool(cols.ok[i]) == (lay is not None), (i, f.hex())
        if lay is None:
            continue
        assert C.mac_text(int(cols.src_mac[i])) == lay.src_mac
        assert C.mac_text(int(cols.dst_mac[i])) == lay.dst_mac
        assert int(cols.ethertype[i]) == lay.ethertype
        assert (None if cols.vlan[i] < 0 else int(cols.vlan[i])) == lay.vlan
        assert (None if cols.inner_vlan[i] < 0 else int(cols.inner_vlan[i])) == lay.inner_vlan
        assert bool(cols.llc[i]) == lay.llc
        assert int(cols.tunnel[i]) == lay.tunnel, f.hex()
        assert int(cols.l3[i]) == lay.l3_off, f.hex()
        assert int(cols.ip_version[i]) == lay.ip_version, f.hex()
        if lay.ip_version:
            v = lay.ip_version
            assert C.ip_text(v, int(cols.src_hi[i]), int(cols.src_lo[i])) == lay.src
            assert C.ip_text(v, int(cols.dst_hi[i]), int(cols.dst_lo[i])) == lay.dst
            assert int(cols.ip_proto[i]) == lay.ip_proto
        assert bool(cols.fragment[i]) == lay.fragment
        assert {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 0: ""}[int(cols.l4[i])] == lay.l4, f.hex()
        assert int(cols.sport[i]) == lay.sport and int(cols.dport[i]) == lay.dport
        assert int(cols.tcp_flags[i]) == lay.tcp_flags and int(cols.seq[i]) == lay.seq
        po, pl = int(cols.pay_off[i]), int(cols.pay_len[i])
        assert buf[po:po + pl] == lay.payload, f.hex()
    kinds: dict[str, int] = {}
    for f in frames:
        k = undecoded_kind(linktype, decode_frame(linktype, f))
        if k is not None:
            kinds[k] = kinds.get(k, 0) + 1
    offs = np.cumsum([0] + [len(f) for f in frames[:-1]]).astype(np.int64)
    caps = np.asarray([len(f) for f in frames], np.int64)
    lts = np.full(len(frames), linktype)
    assert C.undecoded(cols, lts, np.frombuffer(buf + b"\x00", np.uint8), offs, caps) == kinds


# ---- structured frames: every layer present, with fields chosen to hit the edge cases ----
ports = st.integers(0, 65535)
small = st.binary(max_size=40)


@st.composite
def l4_part(draw, proto):
    payload = draw(small)
    if proto == 6:
        doff = draw(st.sampled_from([5, 5, 6, 4, 15, 0]))
        hdr = struct.pack("!HHIIBBHHH", draw(ports), draw(ports), draw(st.integers(0, 2**32 - 1)), 0,
                          doff << 4, draw(st.integers(0, 255)), 0, 0, 0)
        hdr += b"\x01" * max(0, (doff - 5) * 4 if doff > 5 else 0)
        return hdr + payload
    if proto == 17:
        ln = draw(st.sampled_from([8 + len(payload), 0, 7, 8, 300, 8 + len(payload) // 2]))
        port = draw(st.sampled_from([4789, 6081, 3544, 53])) if draw(st.booleans()) else draw(ports)
        return struct.pack("!HHHH", draw(ports), port, ln, 0) + payload
    if proto in (1, 58):
        return bytes([draw(st.sampled_from([0, 8, 3, 11, 128, 129, 135, 136, 200]))]) + payload
    return payload


@st.composite
def ip_part(draw):
    proto = draw(st.sampled_from([6, 17, 1, 6, 17, 58, 47, 4, 41, 50]))
    body = draw(l4_part(proto))
    if draw(st.booleans()):
        ihl = draw(st.sampled_from([5, 5, 6, 4, 15]))
        opts = b"\x01" * (max(ihl - 5, 0) * 4)
        total = draw(st.sampled_from([20 + len(opts) + len(body), 0, 10, 20 + len(opts) + len(body) + 50,
                                      20 + len(opts) + len(body) // 2]))
        ff = draw(st.sampled_from([0, 0, 0x4000, 0x2000, 0x0001, 0x2005]))
        return 0x0800, struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total & 0xFFFF, 0, ff, 64, proto, 0,
                                   draw(st.binary(min_size=4, max_size=4)),
                                   draw(st.binary(min_size=4, max_size=4))) + opts + body
    exts = draw(st.lists(st.sampled_from([0, 43, 60, 44]), max_size=6))
    chain = b""
    nxts = exts + [proto]
    for i, _e in enumerate(exts):
        hl = draw(st.sampled_from([0, 1]))
        chain += bytes([nxts[i + 1], hl]) + b"\x00" * (6 + 8 * hl)
    plen = draw(st.sampled_from([len(chain) + len(body), 0, 3, len(chain) + len(body) + 30]))
    return 0x86DD, (struct.pack("!IHBB", 0x60000000, plen & 0xFFFF, nxts[0], 64)
                    + draw(st.binary(min_size=32, max_size=32)) + chain + body)


def _v4(proto: int, body: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
                       b"\x0a\0\0\1", b"\x0a\0\0\2") + body


def _v6(nxt: int, body: bytes) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(body), nxt, 64) + bytes(15) + b"\1" + bytes(15) + b"\2" + body


def _udp(dport: int, body: bytes) -> bytes:
    return struct.pack("!HHHH", 40000, dport, 8 + len(body), 0) + body


@st.composite
def tunnelled(draw, depth=0):
    """(ethertype, L3 bytes) of a tunnel carrying an IP packet or an Ethernet frame, nested."""
    if depth < 4 and draw(st.booleans()):
        et, inner_ip = draw(tunnelled(depth + 1))
    else:
        et, inner_ip = draw(ip_part())
    inner_eth = draw(st.binary(min_size=12, max_size=12)) + struct.pack("!H", et) + inner_ip
    kind = draw(st.sampled_from(["gre", "gre_eth", "erspan1", "erspan2", "erspan3", "vxlan", "geneve",
                                 "teredo", "ipip", "4in6", "pppoe", "mpls", "gre_bad"]))
    bits = draw(st.sampled_from([0, 0x8000, 0x2000, 0x1000, 0xB000]))
    opt = bytes(4 * bin(bits).count("1"))
    if kind == "gre":
        out = 0x0800, _v4(47, struct.pack("!HH", bits, et) + opt + inner_ip)
    elif kind == "gre_eth":
        out = 0x0800, _v4(47, struct.pack("!HH", bits, 0x6558) + opt + inner_eth)
    elif kind == "gre_bad":
        out = 0x0800, _v4(47, struct.pack("!HH", draw(st.sampled_from([0x4000, 1, 0x0081])), et) + inner_ip)
    elif kind == "erspan1":
        out = 0x86DD, _v6(47, struct.pack("!HH", 0, 0x88BE) + inner_eth)
    elif kind == "erspan2":
        out = 0x0800, _v4(47, struct.pack("!HHI", 0x1000, 0x88BE, 7) + bytes(8) + inner_eth)
    elif kind == "erspan3":
        o = draw(st.booleans())
        out = 0x0800, _v4(47, struct.pack("!HHI", 0x1000, 0x22EB, 7) + bytes(11) + bytes([o]) + bytes(8 * o) + inner_eth)
    elif kind == "vxlan":
        out = 0x0800, _v4(17, _udp(4789, b"\x08" + bytes(7) + inner_eth))
    elif kind == "geneve":
        ol = draw(st.integers(0, 3))
        pt = draw(st.sampled_from([0x6558, et, 0x1234]))
        body = inner_eth if pt == 0x6558 else inner_ip
        out = 0x0800, _v4(17, _udp(6081, bytes([ol, 0]) + struct.pack("!H", pt) + bytes(4) + bytes(4 * ol) + body))
    elif kind == "teredo":
        pre = draw(st.sampled_from([b"", bytes(8), b"\0\1"]))
        out = 0x0800, _v4(17, _udp(3544, pre + inner_ip))
    elif kind == "ipip":
        out = 0x0800, _v4(4 if et == 0x0800 else 41, inner_ip)
    elif kind == "4in6":
        out = 0x86DD, _v6(4 if et == 0x0800 else 41, inner_ip)
    elif kind == "pppoe":
        out = 0x8864, struct.pack("!BBHHH", 0x11, 0, 1, len(inner_ip) + 2, 0x0021 if et == 0x0800 else 0x0057) + inner_ip
    else:
        labels = draw(st.integers(1, 9))
        out = 0x8847, b"".join(struct.pack("!I", (16 << 12) | (1 << 8 if i == labels - 1 else 0) | 64)
                               for i in range(labels)) + inner_ip
    return out


@st.composite
def eth_frame(draw):
    et, ip = draw(tunnelled()) if draw(st.integers(0, 2)) == 0 else draw(ip_part())
    tags = b""
    for _ in range(draw(st.integers(0, 6))):
        tags += struct.pack("!HH", draw(st.sampled_from([0x8100, 0x88A8, 0x9100])), draw(st.integers(0, 65535)))
    if draw(st.integers(0, 9)) == 0:
        et = draw(st.sampled_from([0x0806, 0x88CC, 0x0042, 0x8892, 0x8864, 0x8847]))
    f = draw(st.binary(min_size=12, max_size=12)) + tags + struct.pack("!H", et) + ip
    cut = draw(st.integers(0, len(f)))
    return f if draw(st.booleans()) else f[:cut]


@st.composite
def any_frame(draw):
    lt = draw(st.sampled_from(LINKTYPES))
    if draw(st.integers(0, 3)) == 0:
        return lt, draw(st.binary(max_size=120))
    f = draw(eth_frame())
    if lt == 1:
        return lt, f
    et, ip = draw(ip_part())
    if lt == 113:
        hdr = struct.pack("!HHH", 0, 1, draw(st.sampled_from([6, 4, 8]))) + draw(st.binary(min_size=8, max_size=8))
        return lt, hdr + struct.pack("!H", et) + ip
    if lt == 276:
        hdr = struct.pack("!HHIHBB", et, 0, 2, 1, 0, draw(st.sampled_from([6, 0]))) + draw(st.binary(min_size=8, max_size=8))
        return lt, hdr + ip
    if lt in (9, 50):
        pre = draw(st.sampled_from([b"\xff\x03", b""]))
        return lt, pre + struct.pack("!H", draw(st.sampled_from([0x0021, 0x0057, 0xC021]))) + ip
    if lt == 104:
        return lt, b"\x0f\x00" + struct.pack("!H", et) + ip
    if lt == 107:
        hdr = draw(st.sampled_from([b"\x18\x41\x03\xcc", b"\x18\x41\x03\x8e", b"\x18\x41\x03\x80\0\0\0" + struct.pack("!H", et),
                                    b"\x18\x41\x03\x00\x80\0\0\0" + struct.pack("!H", et), b"\x18\x41\x02\xcc"]))
        return lt, hdr + ip
    if lt == 239:
        fam = 2 if et == 0x0800 else 10
        tlvs = b""
        for _ in range(draw(st.integers(0, 3))):
            body = draw(st.binary(max_size=7))
            tlvs += struct.pack("<HH", 4 + len(body), draw(st.sampled_from([1, 2, 10]))) + body + bytes(-len(body) % 4)
        return lt, bytes([fam, 0, 0, 1]) + tlvs + struct.pack("<HH", 4 + len(ip), 9) + ip
    if lt in (105, 127, 192):
        fc0 = draw(st.sampled_from([0x08, 0x88, 0x48, 0x80, 0x0C]))
        fc1 = draw(st.sampled_from([0, 1, 2, 3, 0x41, 0x81]))
        hdr = bytes([fc0, fc1]) + bytes(2) + draw(st.binary(min_size=24, max_size=24))
        hl = 24 + (6 if fc1 & 3 == 3 else 0) + ((2 + (4 if fc1 & 0x80 else 0)) if fc0 & 0x80 else 0)
        w = hdr[:hl].ljust(hl, b"\0") + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", et) + ip
        if lt == 127:
            rl = draw(st.sampled_from([8, 12, 36]))
            return lt, bytes([0, 0]) + struct.pack("<H", rl) + bytes(rl - 4) + w
        if lt == 192:
            return lt, bytes([0, 0]) + struct.pack("<HI", 8, draw(st.sampled_from([105, 105, 1]))) + w
        return lt, w
    if lt in (0, 108):
        fam = draw(st.sampled_from([2, 10, 24, 28, 30, 7]))
        return lt, struct.pack(draw(st.sampled_from(["<I", ">I"])), fam) + ip
    return lt, ip


@settings(max_examples=300, deadline=None)
@given(st.lists(any_frame(), min_size=1, max_size=12))
def test_columnar_equals_reference_on_random_frames(items):
    by_lt: dict[int, list[bytes]] = {}
    for lt, f in items:
        by_lt.setdefault(lt, []).append(f)
    for lt, frames in by_lt.items():
        assert_same(lt, frames)


def test_mixed_link_types_in_one_chunk():
    from support.packets import tcp_frame
    f_eth = tcp_frame("10.0.0.1", "10.0.0.2", 1234, 502, b"abc", vlans=(110,))
    f_raw = f_eth[18:]
    frames = [f_eth, f_raw]
    buf = b"".join(frames)
    arr = np.frombuffer(buf, np.uint8)
    cols = C.decode(arr, np.array([0, len(f_eth)]), np.array([len(f_eth), len(f_raw)]), np.array([1, 101]))
    assert list(cols.l4) == [6, 6] and list(cols.vlan) == [110, -1]
    assert list(cols.dport) == [502, 502] and list(cols.pay_len) == [3, 3]


def test_plain_numpy_gather_equals_compiled(monkeypatch):
    """Without numba the gather falls back to fancy indexing; both give the same matrix."""
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, 5000).astype(np.uint8)
    base = np.array([0, 17, 4990, 4999, -3, 100_000], np.int64)
    got = C.gather(arr, base, 24)
    monkeypatch.setattr(C, "gather_compiled", None)
    assert np.array_equal(C.gather(arr, base, 24), got)


def test_plain_record_walk_equals_compiled():
    from support.packets import pcap_bytes, tcp_frame
    from plantguard.capture import walk
    raw = pcap_bytes([(1.5 + i, tcp_frame("10.0.0.1", "10.0.0.2", 1, 2, bytes(i))) for i in range(50)])
    raw = raw[:-7]                                   # a truncated last record
    arr = np.frombuffer(raw, np.uint8)
    a = walk._walk_py(arr, 24, 30, False, 1 << 18)
    b = walk.walk_pcap(arr, 24, 30, False, 1 << 18)
    c = walk._walk_py(arr, int(a[5]), 100, False, 1 << 18)
    d = walk.walk_pcap(arr, int(b[5]), 100, False, 1 << 18)
    for x, y in zip(a[:5] + c[:5], b[:5] + d[:5]):
        assert np.array_equal(x, y)
    assert (a[5], a[6], c[6]) == (b[5], b[6], d[6]) and c[6] == walk.TRUNC_DATA and len(c[0]) == 19


def _shared_captures():
    from conftest import SHARED_DATA
    return sorted(p for p in (SHARED_DATA / "pcaps").rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))


def test_compiled_common_case_equals_the_array_decode():
    """fastcols decodes the common case compiled and leaves the rest to the array decode: the
    columns are the array decode's, field by field and dtype by dtype, on every shared capture
    and on a copy of each with 1 % of its bytes overwritten at random (headers made hostile)."""
    import pytest

    from plantguard.capture import fastcols, formats
    files = _shared_captures()
    if not files:
        pytest.skip("shared captures not found")
    assert fastcols.COMPILED
    rng = np.random.default_rng(3)
    records = fast = 0
    for path in files:
        for chunk in formats.read_chunks(path, formats.ReadStats(str(path)), 65536):
            arr = chunk.arr if chunk.arr is not None else np.frombuffer(chunk.buf, np.uint8)
            hostile = arr.copy()
            hit = rng.random(len(hostile)) < 0.01
            hostile[hit] = rng.integers(0, 256, int(hit.sum()))
            for a in (arr, hostile):
                want = C._decode_arrays(a, chunk.offsets, chunk.caplen, chunk.linktype)
                got = C.decode(a, chunk.offsets, chunk.caplen, chunk.linktype)
                for name in C.Columns.__dataclass_fields__:
                    x, y = getattr(want, name), getattr(got, name)
                    assert x.dtype == y.dtype and np.array_equal(x, y), (path.name, name)
                records += len(want)
                _, slow = fastcols.decode_common(a, chunk.offsets, chunk.caplen, chunk.linktype, C.Columns, C.DTYPES)
                fast += int(np.count_nonzero(~slow))
    assert records > 400_000 and fast > 0.8 * records, (records, fast)
