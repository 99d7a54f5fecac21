"""Capture readers: pcap (µs/ns, both byte orders), pcapng (several interfaces with their own
link types and timestamp resolutions, EPB/SPB, both byte orders), gzip; and bad input:
truncation anywhere, corrupt lengths, garbage, empty and non-capture files. Everything
readable comes back with a counted warning, or a one-line CaptureError; never a traceback."""
from __future__ import annotations

import gzip
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from support.packets import ipv4, ipv6, pcap_bytes, pcapng_bytes, tcp, tcp_frame, udp_frame
from plantguard.capture import formats
from plantguard.capture.engine import analyze
from plantguard.capture.reference import analyze_reference

FRAMES = [tcp_frame("10.0.0.1", "10.0.0.2", 40000 + i, 502, bytes(range(i)), seq=i) for i in range(20)]
TIMES = [1_700_000_000 + i * 0.001 + 0.000123 for i in range(20)]


def read_all(path):
    st = formats.ReadStats(str(path))
    chunks = list(formats.read_chunks(path, st, chunk_records=7))
    return st, chunks


def frames_of(chunks):
    out = []
    for c in chunks:
        for o, n in zip(c.offsets.tolist(), c.caplen.tolist()):
            out.append(bytes(c.buf[o:o + n]))
    return out


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("big", [False, True])
def test_pcap_resolutions_and_byte_orders(tmp_path, nano, big):
    p = tmp_path / "a.pcap"
    p.write_bytes(pcap_bytes(zip(TIMES, FRAMES), nano=nano, big=big))
    st, chunks = read_all(p)
    assert st.warnings == [] and st.packets == 20
    assert frames_of(chunks) == FRAMES
    ts = [t for c in chunks for t in c.ts.tolist()]
    assert ts == pytest.approx(TIMES, abs=2e-6)
    assert [c.first_frame for c in chunks] == [1, 8, 15]
    res = analyze([p])
    assert sum(f.packets for f in res.flows) == 20 and len(res.flows) == 20


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("simple", [False, True])
def test_pcapng_interfaces_with_own_link_types_and_resolutions(tmp_path, big, simple):
    f_eth = udp_frame("10.1.0.1", "10.1.0.2", 5000, 161, b"x")
    f_raw = ipv4("10.2.0.1", "10.2.0.2", 6, tcp(40000, 502, b"", flags=0x02))
    f_sll = struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + ipv4("10.3.0.1", "10.3.0.2", 6, tcp(40001, 102))
    f_v6 = ipv6("fe80::1", "fe80::2", 6, tcp(40002, 443, flags=0x02))
    interfaces = [(1, None), (101, 9), (113, 0x80 | 20), (101, 3)]
    t0 = 1_700_000_000
    pkts = [(0, t0 + 100.5, f_eth), (1, t0 + 200.000000123, f_raw), (2, t0 + 300.25, f_sll),
            (3, t0 + 400.125, f_v6), (0, t0 + 100.75, f_eth)]
    p = tmp_path / "a.pcapng"
    p.write_bytes(pcapng_bytes(interfaces, pkts, big=big, simple=simple))
    st, chunks = read_all(p)
    assert st.packets == 5
    assert frames_of(chunks) == [f for _i, _t, f in pkts]
    lts = [x for c in chunks for x in c.linktype.tolist()]
    assert lts == [1, 101, 113, 101, 1]
    ts = [x for c in chunks for x in c.ts.tolist()]
    if simple:   # simple packet blocks carry no time: they take the previous one
        assert ts == pytest.approx([0.0] + [p[1] for p in pkts[1:4]] + [pkts[3][1]], abs=1e-6)
        # the first has none before it: 1970, counted as implausible
        assert st.warnings == ["1 packet with implausible timestamps (before 1990 or more than a day after the reading, UTC); kept as recorded"]
    else:   # the last packet (interface 0 again) is earlier than the one before it: counted
        assert st.warning_counts == {"time_backwards": 1}
        assert st.warnings == [("1 record earlier than the record before (the capture's times go backwards; "
                                "kept as recorded)")]
        assert ts == pytest.approx([p[1] for p in pkts], abs=1e-6)
    res = analyze([p])
    servers = sorted((f.server, f.port) for f in res.flows)
    assert servers == [("10.1.0.2", 161), ("10.2.0.2", 502), ("10.3.0.2", 102), ("fe80::2", 443)]


def test_gzip_and_truncated_gzip(tmp_path):
    raw = pcap_bytes(zip(TIMES, FRAMES))
    p = tmp_path / "a.pcap.gz"
    p.write_bytes(gzip.compress(raw))
    st, chunks = read_all(p)
    assert st.packets == 20 and st.warnings == []
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])
    st, chunks = read_all(cut)
    assert 0 < st.packets < 20
    assert any("gzip" in w for w in st.warnings)


def test_truncated_at_every_offset_keeps_what_is_whole(tmp_path):
    raw = pcap_bytes(zip(TIMES, FRAMES))
    ends = []
    o = 24
    for f in FRAMES:
        o += 16 + len(f)
        ends.append(o)
    for cut in range(0, len(raw), 3):
        p = tmp_path / f"c{cut}.pcap"
        p.write_bytes(raw[:cut])
        res = analyze([p])
        whole = sum(1 for e in ends if e <= cut)
        assert res.captures[0].packets == whole
        if cut not in ends and cut != 24:
            assert len(res.captures[0].warnings) == 1


def test_truncated_pcapng(tmp_path):
    raw = pcapng_bytes([(1, None)], [(0, 1.0 + i, f) for i, f in enumerate(FRAMES)])
    rnd = random.Random(7)
    for cut in sorted(rnd.sample(range(1, len(raw)), 40)):
        p = tmp_path / "t.pcapng"
        p.write_bytes(raw[:cut])
        res = analyze([p])
        assert res.captures[0].packets < 20
        assert res.captures[0].warnings or cut < 12


def test_corrupt_record_length(tmp_path):
    raw = bytearray(pcap_bytes(zip(TIMES, FRAMES)))
    third = 24 + sum(16 + len(f) for f in FRAMES[:2])
    struct.pack_into("<I", raw, third + 8, 0x7FFFFFF0)
    p = tmp_path / "c.pcap"
    p.write_bytes(bytes(raw))
    res = analyze([p])
    assert res.captures[0].packets == 2
    assert len(res.captures[0].warnings) == 1 and "corrupt record length" in res.captures[0].warnings[0]


def test_empty_garbage_and_non_capture_files(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(5000)))
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n")
    header_only = tmp_path / "h.pcap"
    header_only.write_bytes(pcap_bytes([]))
    short = tmp_path / "short.pcap"
    short.write_bytes(pcap_bytes([])[:10])
    res = analyze([empty, garbage, text, header_only, short])
    by = {c.path.rsplit("/", 1)[-1]: c for c in res.captures}
    assert by["empty.pcap"].warnings == ["empty file"]
    for name in ("garbage.pcap", "notes.txt"):
        assert by[name].packets == 0 and len(by[name].warnings) == 1
        assert "not a pcap or pcapng capture" in by[name].warnings[0] and "\n" not in by[name].warnings[0]
    assert by["h.pcap"].packets == 0 and by["h.pcap"].warning_counts == {"no_packets": 1}
    assert by["short.pcap"].warnings == ["truncated pcap header"]
    assert res.flows == [] and res.observations == []


def test_missing_path_is_a_one_line_capture_error(tmp_path):
    with pytest.raises(formats.CaptureError) as exc:
        analyze([tmp_path / "nope.pcap"])
    assert "\n" not in str(exc.value)


def test_directory_means_every_capture_in_it(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.pcap").write_bytes(pcap_bytes(zip(TIMES[:3], FRAMES[:3])))
    (tmp_path / "sub" / "b.pcapng").write_bytes(pcapng_bytes([(1, 6)], [(0, 1.0, FRAMES[5])]))
    (tmp_path / "readme.txt").write_text("hello")
    res = analyze([tmp_path])
    assert sorted(c.packets for c in res.captures) == [1, 3]


# ---- fuzz: random and mutated files never raise anything but CaptureError, never hang ----
def _valid_samples():
    return [pcap_bytes(zip(TIMES[:6], FRAMES[:6])), pcap_bytes(zip(TIMES[:6], FRAMES[:6]), nano=True, big=True),
            pcapng_bytes([(1, None), (101, 9)], [(0, 1.0, FRAMES[1]), (1, 2.0, FRAMES[2][14:])]),
            pcapng_bytes([(1, None)], [(0, 1.0, FRAMES[3])], big=True, simple=True)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 3), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
       st.integers(0, 10_000), st.booleans())
def test_fuzz_mutated_captures(tmp_path, which, flips, cut, compress):
    data = bytearray(_valid_samples()[which])
    for pos, val in flips:
        data[pos % len(data)] = val
    data = bytes(data[: max(cut, 4)]) if cut < len(data) else bytes(data)
    if compress:
        data = gzip.compress(data)
    p = tmp_path / "fuzz.pcap"
    p.write_bytes(data)
    st_ = formats.ReadStats(str(p))
    try:
        chunks = list(formats.read_chunks(p, st_, chunk_records=3))
    except formats.CaptureError as exc:
        assert "\n" not in str(exc)
        return
    size = len(chunks[0].buf) if chunks else 0
    for c in chunks:
        assert (c.offsets >= 0).all() and (c.offsets + c.caplen <= size).all()
    a = analyze([p])
    b = analyze_reference([p])
    assert sum(f.packets for f in a.flows) == sum(f.packets for f in b.flows)
    assert len(a.observations) == len(b.observations)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a", b"\x1f\x8b"]),
       st.binary(max_size=600))
def test_fuzz_random_bytes_after_a_magic(tmp_path, magic, rest):
    p = tmp_path / "r.pcap"
    p.write_bytes(magic + rest)
    res = analyze([p])      # must not raise
    assert len(res.captures) == 1
