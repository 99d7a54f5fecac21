"""Hostile files (issue "Hostile traffic, hostile files", the capture parts). Each crash found is
rebuilt here from a real shared capture, mutated the way it was found:

  - an Interface Description Block whose if_tsoffset option runs past the end of the file
    raised struct.error and aborted the whole run (the other captures and the packets already
    read were lost): now a counted warning, the packets before it kept;
  - an implausible pcapng timestamp (if_tsoffset of -10^12 s, and the other extremes) made the
    maintenance-window check raise ValueError later: now counted at the reader, once per
    capture, and replaced when no consumer could use it;
  - one capture that breaks something inside the engine loses no other capture.

Also: warnings stay bounded (500,000 bad records give a few lines and a count), FIFOs are
refused before they can block, and a small run of the mutation fuzzer
(benchmarks/fuzz_captures.py) finds nothing."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared_path
from support.scripts import load_script
from test_engine_equivalence import assert_equivalent, flow_table

from plantguard.capture import engine, formats
from plantguard.capture.engine import analyze
from plantguard.capture.reference import analyze_reference

PROFINET = "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_device.pcapng"   # real pcapng with a control operation
MODBUS = "pcaps/zeek/modbus/modbusSmall.pcap"
WINDOW_SITE = ("zones:\n  - {name: plant, kind: ot-control, networks: ['0.0.0.0/0', '::/0']}\n"
               "maintenance_windows:\n  - {days: daily, start: '01:00', hours: 1}\n")


# ---- pcapng surgery on real captures (little-endian sections, as the shared ones are) ----
def blocks(raw: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of every block."""
    out, off = [], 0
    while off + 12 <= len(raw):
        bt, bl = struct.unpack_from("<II", raw, off)
        out.append((off, bt, bl))
        off += bl
    return out


def block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def idb_with_cut_option(code: int = 14, length: int = 8, value: bytes = b"") -> bytes:
    """An Interface Description Block whose last option claims `length` bytes but has only
    `value` before the block (and, appended last, the file) ends."""
    return block(1, struct.pack("<HHI", 1, 0, 262144) + struct.pack("<HH", code, length) + value)


def with_interface_options(raw: bytes, options: bytes) -> bytes:
    """Every Interface Description Block of a real capture with `options` put first."""
    out = bytearray()
    for off, bt, bl in blocks(raw):
        if bt == 1:
            out += block(1, raw[off + 8:off + 16] + options + raw[off + 16:off + bl - 4])
        else:
            out += raw[off:off + bl]
    return bytes(out)


def with_tsresol(raw: bytes, v: int) -> bytes:
    """Every interface's existing if_tsresol option set to v."""
    out = bytearray(raw)
    for off, bt, bl in blocks(raw):
        o = off + 16
        while bt == 1 and o + 4 <= off + bl - 4:
            code, ln = struct.unpack_from("<HH", raw, o)
            if code == 0:
                break
            if code == 9:
                out[o + 4] = v
            o += 4 + ((ln + 3) & ~3)
    return bytes(out)


def with_packet_times(raw: bytes, hi: int, lo: int) -> bytes:
    out = bytearray(raw)
    for off, bt, _bl in blocks(raw):
        if bt == 6:
            struct.pack_into("<II", out, off + 12, hi, lo)
    return bytes(out)


def summary(res):
    return [(Path(c.path).name, c.packets, c.bytes, c.first, c.last) for c in res.captures]


def flows_without_path(res):
    return {k: v[:10] for k, v in flow_table(res).items()}


# ---- 1. the if_tsoffset option at the very end of the file ----
def test_interface_option_past_the_end_of_the_file_is_a_counted_warning(tmp_path):
    real = shared_path(PROFINET)
    raw = real.read_bytes()
    p = tmp_path / "idb_tsoffset_at_end.pcapng"
    p.write_bytes(raw + idb_with_cut_option(14, 8))       # was: struct.error, whole run lost
    good = analyze([real])
    res = analyze([p])
    (c,) = res.captures
    assert c.packets == good.captures[0].packets > 0     # the packets before it are kept
    assert c.warning_counts == {"corrupt_option": 1}
    assert c.warnings == [f"interface description option 14 (length 8) runs past its block at byte {len(raw) + 16}"]
    assert flows_without_path(res) == flows_without_path(good)
    assert_equivalent(analyze_reference([p]), res)


@pytest.mark.parametrize("code,length,value", [(14, 8, b""), (14, 8, b"\x00" * 4), (9, 1, b""), (9, 4, b""),
                                               (2, 0xFFFF, b"abcd"), (14, 7, b"")])
def test_every_option_and_block_length_is_bounds_checked(tmp_path, code, length, value):
    raw = shared_path(PROFINET).read_bytes()
    n = analyze([shared_path(PROFINET)]).captures[0].packets
    tail = idb_with_cut_option(code, length, value)
    for cut in range(len(tail) + 1):          # and the same block cut at every byte
        p = tmp_path / f"o{cut}.pcapng"
        p.write_bytes(raw + tail[:cut])
        st = formats.ReadStats(str(p))
        got = sum(len(ch) for ch in formats.read_chunks(p, st))
        assert got == n
        assert (cut == 0) == (not st.warnings), (cut, st.warnings)


def test_a_lying_block_length_ends_the_file_with_a_warning(tmp_path):
    raw = bytearray(shared_path(PROFINET).read_bytes())
    bl = blocks(bytes(raw))
    off, _bt, blen = bl[4]                     # the third packet block
    struct.pack_into("<I", raw, off + 4, blen + 8)          # leading length lies, trailer does not
    p = tmp_path / "lie.pcapng"
    p.write_bytes(bytes(raw))
    (c,) = analyze([p]).captures
    assert c.packets == 2 and c.warning_counts == {"corrupt_block": 1}
    assert "does not end with its length" in c.warnings[0]


# ---- 2. implausible timestamps: counted once at the reader, the assessment runs ----
def _assess(path):
    from plantguard.assess import run_assessment
    from plantguard.site.load import parse_site
    res = analyze([path])
    return res, run_assessment(res, parse_site(WINDOW_SITE))


def test_timestamp_offset_minus_10_12_seconds(tmp_path):
    real = shared_path(PROFINET)
    p = tmp_path / "tsoffset.pcapng"
    p.write_bytes(with_interface_options(real.read_bytes(), struct.pack("<HHq", 14, 8, -10 ** 12)))
    res, contract = _assess(p)            # was: plc.change-outside-window "internal error: ValueError"
    (c,) = res.captures
    n = c.packets
    assert n == analyze([real]).captures[0].packets
    assert c.warning_counts == {"implausible_timestamp": n}
    assert c.warnings == [(f"{n} packets with implausible timestamps (before 1990 or more than a day after the reading, UTC); {n} of them, before "
                           "1970, after 2100 or not a number, were replaced by the previous packet's time (1970 or 2100 "
                           "when none came before)")]
    assert c.first == c.last == 0.0 and all(o.ts == 0.0 for o in res.observations)
    assert not [x for x in contract["checks_not_run"] if "internal error" in x["reason"]], contract["checks_not_run"]
    assert "plc.change-outside-window" in {f["check"] for f in contract["findings"]}
    cap = contract["captures"][0]
    assert cap["first"] == "1970-01-01T00:00:00.000000Z" and cap["warning_counts"] == {"implausible_timestamp": n}


@pytest.mark.parametrize("name,mutate,implausible,replaced", [
    # the far future (2076, as ICS-Security-Tools/IEC61850/m-send-req.mms.pcap has): kept, but counted
    ("year 2076", lambda raw: with_interface_options(raw, struct.pack("<HHq", 14, 8, 1_990_000_000)), "all", 0),
    ("negative", lambda raw: with_interface_options(raw, struct.pack("<HHq", 14, 8, -1_400_000_000)), "all", "all"),
    ("past 2100", lambda raw: with_interface_options(raw, struct.pack("<HHq", 14, 8, 2 ** 62)), "all", "all"),
    ("all ones", lambda raw: with_packet_times(raw, 0xFFFFFFFF, 0xFFFFFFFF), "all", "all"),
    ("seconds as units", lambda raw: with_tsresol(raw, 0), "all", "all"),
    ("zero", lambda raw: with_packet_times(raw, 0, 0), "all", 0),            # 1970: a clock never set, kept
])
def test_other_implausible_timestamps(tmp_path, name, mutate, implausible, replaced):
    real = shared_path(PROFINET)
    p = tmp_path / "t.pcapng"
    p.write_bytes(mutate(real.read_bytes()))
    res, contract = _assess(p)
    (c,) = res.captures
    n = c.packets
    assert n == analyze([real]).captures[0].packets
    want = n if implausible == "all" else implausible
    assert c.warning_counts.get("implausible_timestamp", 0) == want
    st = formats.ReadStats(str(p))
    for _ in formats.read_chunks(p, st):
        pass
    assert st.replaced_ts == (n if replaced == "all" else replaced)
    assert 0.0 <= c.first <= c.last <= formats.TS_MAX
    assert not [x for x in contract["checks_not_run"] if "internal error" in x["reason"]], contract["checks_not_run"]
    assert contract["captures"][0]["first"] is not None


def with_record_times(raw: bytes, times: list[float]) -> bytes:
    """The first len(times) records of a little-endian microsecond pcap, at those times."""
    out, off = [raw[:24]], 24
    for t in times:
        incl = struct.unpack_from("<I", raw, off + 8)[0]
        sec = int(t)
        out.append(struct.pack("<II", sec, round((t - sec) * 1e6)) + raw[off + 8:off + 16 + incl])
        off += 16 + incl
    return b"".join(out)


def test_unusable_times_take_the_previous_packets_across_chunks(tmp_path):
    raw = shared_path(MODBUS).read_bytes()
    times = [4_000_000_000.5, 1_700_000_000.0, 4_294_967_295.0, 1.0, 1_700_000_002.0, 4_294_000_000.0]
    p = tmp_path / "t.pcap"
    p.write_bytes(with_record_times(raw, times))
    st = formats.ReadStats(str(p))
    ts = [t for ch in formats.read_chunks(p, st, chunk_records=2) for t in ch.ts.tolist()]
    # 4.0e9 is 2096: implausible (ahead of now), kept. 2106 (2^32-1 s) has no use: the previous
    # packet's time. 1970 is kept. Twice a time goes back (1.7e9 after 2096, 1 s after 1.7e9).
    assert ts == pytest.approx([4_000_000_000.5, 1_700_000_000.0, 1_700_000_000.0, 1.0, 1_700_000_002.0,
                                1_700_000_002.0])
    assert st.warning_counts == {"implausible_timestamp": 4, "time_backwards": 2} and st.replaced_ts == 2
    first = formats.ReadStats(str(p))
    p.write_bytes(with_record_times(raw, [4_294_967_295.0, 1_700_000_000.0]))
    ts = [t for ch in formats.read_chunks(p, first, chunk_records=1) for t in ch.ts.tolist()]
    assert ts == [formats.TS_MAX, 1_700_000_000.0]       # none before it: clamped to 2100


# ---- 3. one bad capture loses no other ----
def _directory(tmp_path) -> tuple[Path, list[Path]]:
    d = tmp_path / "captures"
    d.mkdir()
    good = [shared_path(PROFINET), shared_path(MODBUS)]
    shutil.copy(good[0], d / "a_good.pcapng")
    shutil.copy(good[1], d / "d_good.pcap")
    return d, good


def test_corrupt_captures_in_a_directory_of_good_ones(tmp_path):
    d, good = _directory(tmp_path)
    raw = good[0].read_bytes()
    (d / "b_cut_option.pcapng").write_bytes(raw + idb_with_cut_option())
    (d / "c_garbage.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(range(256)) * 3)
    (d / "c_not_a_capture.cap").write_bytes(b"hello\n")
    res = analyze([d])
    by = {Path(c.path).name: c for c in res.captures}
    assert list(by) == ["a_good.pcapng", "b_cut_option.pcapng", "c_garbage.pcap", "c_not_a_capture.cap", "d_good.pcap"]
    alone = {p.name: analyze([p]).captures[0] for p in good}
    assert (by["a_good.pcapng"].packets, by["a_good.pcapng"].warnings) == (alone[good[0].name].packets, [])
    assert (by["d_good.pcap"].packets, by["d_good.pcap"].warnings) == (alone[good[1].name].packets, [])
    assert by["b_cut_option.pcapng"].warning_counts == {"corrupt_option": 1}
    assert by["c_not_a_capture.cap"].warning_counts == {"unreadable": 1}
    assert str(d / "c_not_a_capture.cap") in by["c_not_a_capture.cap"].warnings[0]
    assert by["c_garbage.pcap"].warnings and by["c_garbage.pcap"].packets == 0
    assert_equivalent(analyze_reference([d]), res)


def test_an_internal_error_in_one_capture_is_a_warning_naming_it(tmp_path, monkeypatch):
    d, good = _directory(tmp_path)
    shutil.copy(good[1], d / "b_breaks.pcap")
    process = engine.Engine.process

    def breaking(self, cap_idx, cap, chunk):
        if cap.endswith("b_breaks.pcap"):
            raise IndexError("something nobody anticipated\nsecond line")
        return process(self, cap_idx, cap, chunk)

    monkeypatch.setattr(engine.Engine, "process", breaking)
    res = analyze([d])
    by = {Path(c.path).name: c for c in res.captures}
    assert by["b_breaks.pcap"].warning_counts == {"analysis_error": 1}
    (w,) = by["b_breaks.pcap"].warnings
    assert w.startswith("internal error while analysing packets up to 166 (IndexError: something nobody "
                        "anticipated second line)") and "\n" not in w
    monkeypatch.setattr(engine.Engine, "process", process)
    for name, path in (("a_good.pcapng", good[0]), ("d_good.pcap", good[1])):
        alone = analyze([path])
        assert by[name].packets == alone.captures[0].packets and by[name].warnings == []
    # the good captures' flows are all there, as when they are analysed without the bad one
    both = analyze([d / "a_good.pcapng", d / "d_good.pcap"])
    assert flows_without_path(res) == flows_without_path(both)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_and_skipped_in_a_directory(tmp_path):
    d, _good = _directory(tmp_path)
    os.mkfifo(d / "live.pcap")
    code = ("import sys\nfrom plantguard.capture.engine import analyze\nfrom plantguard.capture.formats import CaptureError\n"
            "r = analyze([sys.argv[1]])\nprint(len(r.captures))\n"
            "try:\n    analyze([sys.argv[2]])\nexcept CaptureError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(d), str(d / "live.pcap")], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["2", f"{d / 'live.pcap'}: cannot read capture (a FIFO, not a regular file)"]


# ---- bounded warnings ----
def test_half_a_million_bad_records_give_a_few_lines_and_a_count(tmp_path):
    real = shared_path(PROFINET)
    raw = real.read_bytes()
    n_bad = 500_000
    bad = block(6, struct.pack("<IIIII", 7, 0, 0, 4, 4) + b"\x00" * 4)     # names interface 7: none has it
    over = block(6, struct.pack("<IIIII", 0, 0, 0, 400, 400) + b"\x00" * 4)  # longer than its block
    p = tmp_path / "bad.pcapng"
    p.write_bytes(raw + bad * n_bad + over * 10)
    res = analyze([p])
    (c,) = res.captures
    assert c.packets == analyze([real]).captures[0].packets
    assert c.warning_counts == {"unknown_interface": n_bad, "packet_overruns_block": 10}
    assert len(c.warnings) == 2 * formats.WARNING_EXAMPLES + 2
    assert c.warnings[-2:] == ["500,000 unknown interface warnings in all (the first 3 are listed)",
                               "10 packet overruns block warnings in all (the first 3 are listed)"]
    from plantguard.contract import Capture
    assert Capture.model_validate(c.as_dict()).warning_counts == c.warning_counts
    assert len(json.dumps(c.as_dict())) < 2000


# ---- a small run of the mutation fuzzer ----
@pytest.mark.slow
def test_mutation_fuzzer_small_run(tmp_path):
    if not (SHARED_DATA / "pcaps").is_dir():
        pytest.skip(f"shared captures not found under {SHARED_DATA}")
    fuzz = load_script("benchmarks/fuzz_captures.py")
    out = tmp_path / "fuzz.json"
    code = fuzz.main(["--seed", "7", "--inputs", "300", "--differential", "10", "--data", str(SHARED_DATA),
                      "--out", str(tmp_path / "repro"), "--json", str(out), "--quiet"])
    r = json.loads(out.read_text())
    assert r["inputs"] == 300 and r["failures"] == [], r["failures"]
    assert (r["crashes"], r["contained"], r["hangs"], r["memory"]) == (0, 0, 0, 0)
    assert r["differential"]["compared"] == 30 and r["mismatches"] == [], r["mismatches"]
    assert code == 0
