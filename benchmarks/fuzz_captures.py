#!/usr/bin/env python
"""Mutation fuzzer for the capture readers and the packet engine: a benchmark, not a unit test
(tests/test_capture_hostile.py runs a few hundred inputs of it).

Seeds are the real shared captures (pcap and pcapng, every link type present). Each input is
one seed with one or more seeded mutations:

  bit_flip       1-16 bits flipped (half of the time within the first 256 bytes)
  byte_insert    1-64 random bytes inserted
  byte_delete    1-64 bytes deleted
  truncate       the file cut anywhere (or one byte around a record boundary)
  block_length   a pcapng block's leading and/or trailing length set to a lie
  option         a pcapng option corrupted: length past the block, if_tsresol / if_tsoffset
                 with a short or extreme value, a cut if_tsoffset at the very end of the file
  timestamp      record times set to extremes (0, 2^32-1, past 2100, fractions >= 1 s),
                 interface resolutions and offsets to extremes (+-10^12 s, +-2^62)
  record_length  a record's captured / original length lying (pcap incl/orig, pcapng cap/orig)
  duplicate      records or blocks (interfaces, section headers too) repeated
  shuffle        a run of records or blocks put in random order
  link_swap      the file's or an interface's link type swapped for another
  payload        bytes inside packets overwritten (past the first 34: headers mostly intact, so
                 the protocol decoders and the routine recognisers get the garbage)
  gzip           the mutant gzip-compressed, sometimes cut or flipped inside the stream
  combined       two or three of the above

Each mutant is written to a temporary file and run in a worker process through
`plantguard.capture.engine.analyze([path])` and the inventory build (`build_assets`), with a
time limit per input (SIGALRM in the worker, and a watchdog that kills a worker that does not
answer) and a resident-memory watch (the worker's peak RSS per input through
/proc/self/clear_refs and VmHWM; the parent kills a worker over --rss-limit). Reported: inputs
tried, crashes (by exception type and the innermost plantguard frame, one reproducer each saved
under --out), internal errors that analyze() contained per capture (warning kind
analysis_error; counted as crashes too), hangs, memory blowups, worst peak RSS and worst time,
per attack class.

    .venv/bin/python benchmarks/fuzz_captures.py --seed 1 --inputs 10000
    .venv/bin/python benchmarks/fuzz_captures.py --seed 1 --inputs 300 --json /tmp/fuzz.json

Run it against another source tree (to measure "before") with PYTHONPATH=/that/tree/src.
Results depend on the seed only, not on timing (except which inputs hit the time limit).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("PLANTGUARD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}
SHB = b"\x0a\x0d\x0d\x0a"
LINKTYPES = [0, 1, 9, 12, 14, 101, 105, 108, 113, 127, 147, 195, 228, 229, 276, 0xFFFF, 0x0FFFFFFF]
STRUCTURAL = ["block_length", "option", "timestamp", "record_length", "duplicate", "shuffle", "link_swap", "payload"]
BYTEWISE = ["bit_flip", "byte_insert", "byte_delete", "truncate"]
CLASSES = BYTEWISE + STRUCTURAL + ["gzip", "combined"]
PCAPNG_ONLY = {"block_length", "option"}


# ---------------------------------------------------------------------------------------------
# seeds: the shared captures, parsed into records (pcap) or blocks (pcapng)
# ---------------------------------------------------------------------------------------------

class Pcap:
    def __init__(self, raw: bytes):
        self.end = PCAP_MAGICS[raw[:4]]
        self.header = bytearray(raw[:24])
        self.records: list[bytearray] = []
        off = 24
        while off + 16 <= len(raw):
            incl = struct.unpack_from(self.end + "I", raw, off + 8)[0]
            if off + 16 + incl > len(raw):
                break
            self.records.append(bytearray(raw[off:off + 16 + incl]))
            off += 16 + incl

    def linktype(self) -> int:
        return struct.unpack_from(self.end + "I", self.header, 20)[0] & 0x0FFFFFFF

    def items(self) -> list[bytearray]:
        return self.records

    def bytes(self) -> bytes:
        return bytes(self.header) + b"".join(self.records)


class Pcapng:
    def __init__(self, raw: bytes):
        self.blocks: list[list] = []     # [byte order, block bytes]
        off, end = 0, "<"
        while off + 12 <= len(raw):
            if raw[off:off + 4] == SHB:
                end = "<" if raw[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack_from(end + "I", raw, off + 4)[0]
            if blen < 12 or off + blen > len(raw):
                break
            self.blocks.append([end, bytearray(raw[off:off + blen])])
            off += blen

    def linktypes(self) -> set[int]:
        return {struct.unpack_from(e + "H", b, 8)[0] for e, b in self.blocks if _btype(e, b) == 1 and len(b) >= 20}

    def items(self) -> list:
        return self.blocks

    def bytes(self) -> bytes:
        return b"".join(bytes(b) for _e, b in self.blocks)


def _btype(end: str, b: bytearray) -> int:
    return struct.unpack_from(end + "I", b, 0)[0]


def parse(raw: bytes):
    if raw[:4] in PCAP_MAGICS:
        return Pcap(raw)
    if raw[:4] == SHB:
        return Pcapng(raw)
    return None


def load_seeds(data: Path, max_size: int) -> list[dict]:
    """Every shared pcap/pcapng capture up to max_size bytes, plus the smallest capture of each
    (format, link type) that only larger files have: all link types stay present."""
    out, big = [], {}
    for p in sorted((data / "pcaps").rglob("*")):
        if not p.is_file() or p.suffix not in (".pcap", ".pcapng", ".cap"):
            continue
        raw = p.read_bytes()
        parsed = parse(raw)
        if parsed is None:
            continue
        fmt = "pcap" if isinstance(parsed, Pcap) else "pcapng"
        lts = {parsed.linktype()} if fmt == "pcap" else parsed.linktypes()
        item = {"path": str(p.relative_to(data)), "fmt": fmt, "linktypes": sorted(lts), "size": len(raw)}
        if len(raw) <= max_size:
            out.append(item)
        for lt in lts:
            best = big.get((fmt, lt))
            if best is None or len(raw) < best["size"]:
                big[(fmt, lt)] = item
    have = {(s["fmt"], lt) for s in out for lt in s["linktypes"]}
    for key, item in sorted(big.items()):
        if key not in have and item not in out:
            out.append(item)
            have.update((item["fmt"], lt) for lt in item["linktypes"])
    return out


# ---------------------------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------------------------

def _pick(rng: random.Random, items: list, want=None):
    cand = [i for i, x in enumerate(items) if want is None or want(x)]
    return rng.choice(cand) if cand else None


def _lie(rng: random.Random, true: int) -> int:
    return rng.choice([0, 1, 4, 8, 11, 12, 13, true - 4, true - 1, true + 1, true + 4, true * 2, 0x10000,
                       256 * 1024 + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF,
                       rng.randrange(1 << 32)]) & 0xFFFFFFFF


def m_bit_flip(rng, raw: bytearray) -> bytearray:
    for _ in range(rng.randint(1, 16)):
        pos = rng.randrange(min(len(raw), 256)) if rng.random() < 0.5 else rng.randrange(len(raw))
        raw[pos] ^= 1 << rng.randrange(8)
    return raw


def m_byte_insert(rng, raw: bytearray) -> bytearray:
    pos = rng.randrange(len(raw) + 1)
    raw[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return raw


def m_byte_delete(rng, raw: bytearray) -> bytearray:
    pos = rng.randrange(len(raw))
    del raw[pos:pos + rng.randint(1, 64)]
    return raw


def m_truncate(rng, raw: bytearray, model=None) -> bytearray:
    if model is not None and rng.random() < 0.5 and model.items():
        # around a record boundary, where readers decide whether a record is whole
        cut = 24 if isinstance(model, Pcap) else 0
        items = model.items()
        for it in items[:rng.randrange(len(items)) + 1]:
            cut += len(it if isinstance(model, Pcap) else it[1])
        return raw[:max(0, cut + rng.choice([-1, 0, 1, -12, 4]))]
    return raw[:rng.randrange(len(raw))]


def m_block_length(rng, model: Pcapng) -> None:
    i = _pick(rng, model.blocks)
    end, b = model.blocks[i]
    blen = len(b)
    where = rng.choice(["lead", "trail", "both"])
    v = _lie(rng, blen)
    if where in ("lead", "both"):
        struct.pack_into(end + "I", b, 4, v)
    if where in ("trail", "both"):
        struct.pack_into(end + "I", b, blen - 4, v)


def _options_start(end: str, b: bytearray) -> int | None:
    bt = _btype(end, b)
    if bt == 0x0A0D0D0A:
        return 24
    if bt == 1:
        return 16
    if bt == 6 and len(b) >= 32:
        cap = struct.unpack_from(end + "I", b, 20)[0]
        return 28 + ((cap + 3) & ~3)
    return None


def _rebuild(end: str, b: bytearray, start: int, options: bytes) -> bytearray:
    body = bytes(b[8:start]) + options
    n = 12 + len(body)
    return bytearray(struct.pack(end + "II", _btype(end, b), n) + body + struct.pack(end + "I", n))


def m_option(rng, model: Pcapng) -> None:
    i = _pick(rng, model.blocks, lambda x: _options_start(*x) is not None)
    if i is None:
        return
    end, b = model.blocks[i]
    start = _options_start(end, b)
    kind = rng.choice(["tsoffset_at_end", "too_long", "short_value", "extreme", "no_end", "many"])
    if kind == "tsoffset_at_end":
        # an interface description as the last block, its if_tsoffset value cut off by the end
        body = struct.pack(end + "HHI", rng.choice(LINKTYPES[:12]), 0, 262144) + struct.pack(end + "HH", 14, 8)
        n = 12 + len(body)
        model.blocks.append([end, bytearray(struct.pack(end + "II", 1, n) + body + struct.pack(end + "I", n))])
        return
    if kind == "too_long":
        opts = struct.pack(end + "HH", rng.choice([2, 9, 14, 1, 0x8001]), rng.choice([0xFFFF, 200, 9, 7]))
        opts += bytes(rng.randrange(256) for _ in range(rng.choice([0, 4, 8])))
    elif kind == "short_value":
        code = rng.choice([9, 14])
        opts = struct.pack(end + "HH", code, rng.randint(0, 7)) + b"\x00" * 4
    elif kind == "extreme":
        opts = rng.choice([
            struct.pack(end + "HH", 9, 1) + bytes([rng.choice([0, 1, 0x7F, 0x80, 0x80 | 63, 0xFF])]) + b"\0" * 3,
            struct.pack(end + "HHq", 14, 8, rng.choice([-10 ** 12, 10 ** 12, -(2 ** 62), 2 ** 62, -(2 ** 63)])),
        ]) + struct.pack(end + "HH", 0, 0)
    elif kind == "no_end":
        opts = struct.pack(end + "HH", 2, 4) + b"abcd"
    else:
        opts = b"".join(struct.pack(end + "HH", rng.choice([2, 3, 9, 14, 0x2bac]), 4) + b"\x01\x02\x03\x04"
                        for _ in range(rng.randint(50, 400))) + struct.pack(end + "HH", 0, 0)
    model.blocks[i][1] = _rebuild(end, b, start, opts)


def m_timestamp(rng, model) -> None:
    if isinstance(model, Pcap):
        for _ in range(rng.randint(1, 8)):
            i = _pick(rng, model.records)
            if i is None:
                return
            r = model.records[i]
            sec = rng.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 3_400_000_000, 4_200_000_000])
            frac = rng.choice([0, 999_999, 1_000_000, 999_999_999, 0xFFFFFFFF])
            struct.pack_into(model.end + "II", r, 0, sec, frac)
        return
    if rng.random() < 0.5:
        i = _pick(rng, model.blocks, lambda x: _btype(*x) == 1)
        if i is not None:
            end, b = model.blocks[i]
            opt = rng.choice([
                struct.pack(end + "HH", 9, 1) + bytes([rng.choice([0, 0x80, 0x7F, 0xFF, 0x80 | 40])]) + b"\0" * 3,
                struct.pack(end + "HHq", 14, 8, rng.choice([-10 ** 12, 10 ** 12, -(2 ** 62), 2 ** 62, -1])),
            ]) + struct.pack(end + "HH", 0, 0)
            model.blocks[i][1] = _rebuild(end, b, 16, opt)
            return
    for _ in range(rng.randint(1, 8)):
        i = _pick(rng, model.blocks, lambda x: _btype(*x) == 6 and len(x[1]) >= 32)
        if i is None:
            return
        end, b = model.blocks[i]
        struct.pack_into(end + "II", b, 12, rng.choice([0, 0xFFFFFFFF, 0x80000000, 0x00060000, 1]),
                         rng.randrange(1 << 32))


def m_record_length(rng, model) -> None:
    for _ in range(rng.randint(1, 3)):
        if isinstance(model, Pcap):
            i = _pick(rng, model.records)
            if i is None:
                return
            r = model.records[i]
            field = rng.choice([8, 12])
            struct.pack_into(model.end + "I", r, field, _lie(rng, len(r) - 16))
        else:
            i = _pick(rng, model.blocks, lambda x: _btype(*x) in (3, 6) and len(x[1]) >= 16)
            if i is None:
                return
            end, b = model.blocks[i]
            field = 8 if _btype(end, b) == 3 else rng.choice([20, 24])
            if field + 4 <= len(b) - 4:
                struct.pack_into(end + "I", b, field, _lie(rng, len(b) - 32))


def m_duplicate(rng, model) -> None:
    items = model.items()
    if not items:
        return
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(items))
        it = items[i]
        copy = bytearray(it) if isinstance(model, Pcap) else [it[0], bytearray(it[1])]
        items.insert(rng.randrange(i, len(items) + 1), copy)


def m_shuffle(rng, model) -> None:
    items = model.items()
    if len(items) < 2:
        return
    a = rng.randrange(len(items) - 1)
    b = min(len(items), a + rng.randint(2, 20))
    window = items[a:b]
    rng.shuffle(window)
    items[a:b] = window


def m_link_swap(rng, model) -> None:
    lt = rng.choice(LINKTYPES + [rng.randrange(1 << 16)])
    if isinstance(model, Pcap):
        struct.pack_into(model.end + "I", model.header, 20, lt & 0xFFFFFFFF)
        return
    i = _pick(rng, model.blocks, lambda x: _btype(*x) == 1 and len(x[1]) >= 20)
    if i is not None:
        end, b = model.blocks[i]
        struct.pack_into(end + "H", b, 8, lt & 0xFFFF)


def m_gzip(rng, raw: bytearray) -> bytearray:
    z = bytearray(gzip.compress(bytes(raw), compresslevel=1, mtime=0))
    what = rng.choice(["whole", "cut", "flip", "twice"])
    if what == "cut":
        z = z[:rng.randrange(2, len(z))]
    elif what == "flip":
        z[rng.randrange(10, len(z))] ^= 1 << rng.randrange(8)
    elif what == "twice":
        z += gzip.compress(bytes(raw[: len(raw) // 2]), compresslevel=1, mtime=0)
    return z


def m_payload(rng, model) -> None:
    if isinstance(model, Pcap):
        items, start, pick = model.records, 16, model.records
    else:
        pick = [b for e, b in model.blocks if _btype(e, b) == 6 and len(b) >= 32]
        items, start = pick, 28
    if not items:
        return
    for _ in range(rng.randint(1, 20)):
        r = rng.choice(pick)
        lo, hi = start + 34, len(r) - (0 if isinstance(model, Pcap) else 4)
        if hi <= lo:
            continue
        for _ in range(rng.randint(1, 8)):
            r[rng.randrange(lo, hi)] = rng.choice([0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)])


STRUCT_FNS = {"block_length": m_block_length, "option": m_option, "timestamp": m_timestamp,
              "record_length": m_record_length, "duplicate": m_duplicate, "shuffle": m_shuffle,
              "link_swap": m_link_swap, "payload": m_payload}
BYTE_FNS = {"bit_flip": m_bit_flip, "byte_insert": m_byte_insert, "byte_delete": m_byte_delete}


def mutate(rng: random.Random, raw: bytes, cls: str) -> tuple[bytes, list[str]]:
    """The seed's bytes mutated as attack class `cls`; returns (mutant, operations applied)."""
    model = parse(raw)
    fmt = "pcap" if isinstance(model, Pcap) else "pcapng"
    if cls == "combined":
        pool = [c for c in BYTEWISE + STRUCTURAL + ["gzip"] if fmt == "pcapng" or c not in PCAPNG_ONLY]
        ops = rng.sample(pool, rng.randint(2, 3))
    else:
        ops = [cls]
    for op in ops:                          # structure first, on the parsed file
        if op in STRUCT_FNS:
            STRUCT_FNS[op](rng, model)
    data = bytearray(model.bytes())
    for op in ops:                          # then bytes
        if not data:
            break
        if op in BYTE_FNS:
            data = BYTE_FNS[op](rng, data)
        elif op == "truncate":
            data = m_truncate(rng, data, model if len(ops) == 1 else None)
    if "gzip" in ops:
        data = m_gzip(rng, data)
    return bytes(data), ops


def plan(rng: random.Random, seeds: list[dict], n: int) -> list[tuple[int, str]]:
    """(seed index, attack class) per input: classes in turn; the seed from a source folder
    chosen uniformly half of the time (so the 141 tiny DNP3 conformance dumps do not crowd out
    the rest), else from a (format, link type) chosen in turn, so rare link types get tried."""
    by_class, by_folder = defaultdict(list), defaultdict(list)
    for i, s in enumerate(seeds):
        for lt in s["linktypes"]:
            by_class[(s["fmt"], lt)].append(i)
        by_folder["/".join(s["path"].split("/")[1:3])].append(i)
    keys, folders = sorted(by_class), sorted(by_folder)
    out = []
    for k in range(n):
        cls = CLASSES[k % len(CLASSES)]
        if rng.random() < 0.5:
            si = rng.choice(by_folder[rng.choice(folders)])
        else:
            si = rng.choice(by_class[keys[(k // len(CLASSES)) % len(keys)]])
        if seeds[si]["fmt"] == "pcap" and cls in PCAPNG_ONLY:
            ng = [i for i, s in enumerate(seeds) if s["fmt"] == "pcapng"]
            si = rng.choice(ng)
        out.append((si, cls))
    return out


# ---------------------------------------------------------------------------------------------
# the worker: one process analysing inputs one at a time
# ---------------------------------------------------------------------------------------------

WORKER = r'''
import json, os, signal, sys, time, traceback, logging

class Hang(BaseException):
    pass

def on_alarm(signum, frame):
    raise Hang()

signal.signal(signal.SIGALRM, on_alarm)
contained = []

class Catch(logging.Handler):
    def emit(self, record):
        if record.exc_info:
            contained.append(record.exc_info)

logging.getLogger("plantguard").addHandler(Catch())
logging.getLogger("plantguard").propagate = False
from plantguard.capture.engine import analyze
from plantguard.inventory.build import build_assets
ASSESS = os.environ.get("FUZZ_ASSESS") == "1"
DIFFERENTIAL = int(os.environ.get("FUZZ_DIFFERENTIAL", "0"))
if ASSESS:
    from plantguard.assess import run_assessment
    from plantguard.site.load import parse_site
    SITE = parse_site("zones:\n  - {name: plant, kind: ot-control, networks: ['0.0.0.0/0', '::/0']}\n"
                      "maintenance_windows:\n  - {days: daily, start: '01:00', hours: 1}\n")
if DIFFERENTIAL:
    sys.path.insert(0, os.environ["FUZZ_TESTS"])
    from plantguard.capture.reference import analyze_reference
    from test_engine_equivalence import assert_equivalent

def rss_peak_kb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0

def where(tb_list):
    frames = [f for f in tb_list if "plantguard" in f.filename]
    f = (frames or tb_list)[-1]
    name = f.filename.split("src/plantguard/")[-1] if "src/plantguard/" in f.filename else os.path.basename(f.filename)
    return f"{name}:{f.lineno} ({f.name})"

def crash(exc_type, exc, tb):
    if tb is None:      # a check that failed inside run_assessment (its traceback was logged there)
        return {"type": "CheckError", "where": str(exc).split(":")[0], "tb": str(exc)}
    stack = traceback.extract_tb(tb)
    return {"type": exc_type.__name__, "where": where(stack) if stack else "?",
            "tb": "".join(traceback.format_exception(exc_type, exc, tb))[-4000:]}

print(json.dumps({"ready": os.getpid()}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    contained.clear()
    out = {"id": job["id"]}
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, job["limit"])
    try:
        res = analyze([job["path"]])
        assets = build_assets(res)
        out["packets"] = sum(c.packets for c in res.captures)
        out["assets"] = len(assets)
        out["decode_errors"] = res.counters.get("decode_errors", 0)
        kinds = {}
        for c in res.captures:
            for k, v in (getattr(c, "warning_counts", None) or {}).items():
                kinds[k] = kinds.get(k, 0) + v
        out["warning_kinds"] = kinds
        out["warnings"] = sum(len(c.warnings) for c in res.captures)
        if ASSESS:
            contract = run_assessment(res, SITE)
            bad = [n for n in contract["checks_not_run"] if n["reason"].startswith("internal error")]
            if bad and not contained:
                contained.append((RuntimeError, RuntimeError(f"check {bad[0]['check']}: {bad[0]['reason']}"), None))
        out["time"] = time.perf_counter() - t0
        out["rss_kb"] = rss_peak_kb()
        if DIFFERENTIAL and job["id"] % DIFFERENTIAL == 0:
            try:
                assert_equivalent(analyze_reference([job["path"]]), res)
                out["differential"] = "equal"
            except AssertionError as exc:
                out["differential"] = " ".join(str(exc).split())[:300]
        if contained:
            out["contained"] = [crash(*e) for e in contained[:1]]
    except Hang:
        out["hang"] = True
    except BaseException as exc:
        out["crash"] = crash(type(exc), exc, exc.__traceback__)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out.setdefault("time", time.perf_counter() - t0)   # analysis, inventory and assessment only
    out.setdefault("rss_kb", rss_peak_kb())
    print(json.dumps(out), flush=True)
'''


class Worker:
    def __init__(self, env: dict, warm_up: str):
        self.env = env
        self.warm_up = warm_up      # a valid capture analysed after each start, result dropped
        self.proc = None
        self.done = 0
        self.start()

    def start(self) -> None:
        """A fresh worker, warmed up (imports, compiled kernels, data files the inventory loads
        on first use), so the first input after a restart is not charged for them."""
        self._spawn()
        r = self.run({"id": -1, "path": self.warm_up, "limit": 600}, 1200, 1 << 40, warm=True)
        self.baseline_kb = max(getattr(self, "baseline_kb", 0), r.get("rss_kb", 0))
        self.done = 0

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=self.env, bufsize=1,
                                     cwd=tempfile.gettempdir())   # no ./plantguard.db picked up
        ready = json.loads(self.proc.stdout.readline())
        self.pid = ready["ready"]
        self.done = 0

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def rss_kb(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self, job: dict, watchdog: float, rss_limit_kb: int, warm: bool = False) -> dict:
        """Send one input; wait for the answer, killing the worker if it overruns the watchdog
        or the memory limit (then restarted)."""
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        t0 = time.perf_counter()
        peak = 0
        while True:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    self.kill()
                    if warm:
                        raise SystemExit("the fuzz worker died while warming up")
                    self.start()
                    return {"id": job["id"], "crash": {"type": "WorkerDied", "where": "?", "tb": ""},
                            "time": time.perf_counter() - t0, "rss_kb": peak}
                self.done += 1
                return json.loads(line)
            peak = max(peak, self.rss_kb())
            elapsed = time.perf_counter() - t0
            if elapsed > watchdog or peak > rss_limit_kb:
                self.kill()
                if warm:
                    raise SystemExit("the fuzz worker hung while warming up")
                self.start()
                return {"id": job["id"], "hang": elapsed > watchdog, "memory": peak > rss_limit_kb,
                        "time": elapsed, "rss_kb": peak}


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (pcaps/ below it)")
    ap.add_argument("--max-seed-size", type=int, default=256 * 1024,
                    help="larger captures are seeds only for a link type no smaller one has")
    ap.add_argument("--time-limit", type=float, default=20.0, help="seconds per input")
    ap.add_argument("--rss-limit", type=int, default=2048, help="MiB of resident memory per worker")
    ap.add_argument("--restart-every", type=int, default=1000, help="inputs per worker process")
    ap.add_argument("--out", type=Path, default=Path("/tmp/plantguard-fuzz"), help="reproducers go here")
    ap.add_argument("--json", type=Path, help="write the full results here")
    ap.add_argument("--no-assess", action="store_true",
                    help="skip the whole assessment (with a site file that has maintenance windows) "
                         "after the inventory build")
    ap.add_argument("--differential", type=int, default=0, metavar="N",
                    help="every Nth input, also compare the engine with the reference decoder")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    results = run(args)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if results["crashes"] or results["hangs"] or results["memory"] else 0


def run(args) -> dict:
    rng = random.Random(args.seed)
    seeds = load_seeds(args.data, args.max_seed_size)
    if not seeds:
        raise SystemExit(f"no captures under {args.data / 'pcaps'}")
    raws = {}
    todo = plan(rng, seeds, args.inputs)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PLANTGUARD_DB"}
    env.update(FUZZ_ASSESS="0" if args.no_assess else "1", FUZZ_DIFFERENTIAL=str(args.differential),
               FUZZ_TESTS=str(Path(__file__).resolve().parents[1] / "tests"), PLANTGUARD_SHARED_DATA=str(args.data))
    warm = min((s for s in seeds if s["fmt"] == "pcap" and 1 in s["linktypes"]), key=lambda s: -min(s["size"], 64_000))
    worker = Worker(env, str(args.data / warm["path"]))
    differential = Counter()
    mismatches: list[dict] = []
    per_class = {c: {"inputs": 0, "failures": 0, "crashes": 0, "contained": 0, "hangs": 0, "memory": 0,
                     "worst_rss_kb": 0, "worst_time": 0.0} for c in CLASSES}
    crashes: dict[str, dict] = {}
    worst = {"rss_kb": 0, "time": 0.0, "rss_input": None, "time_input": None}
    totals = Counter()
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="pg-fuzz-") as tmp:
        for k, (si, cls) in enumerate(todo):
            seed = seeds[si]
            raw = raws.get(si)
            if raw is None:
                raw = raws[si] = (args.data / seed["path"]).read_bytes()
            irng = random.Random(f"{args.seed}:{k}")
            data, ops = mutate(irng, raw, cls)
            ext = ".pcapng" if seed["fmt"] == "pcapng" else ".pcap"
            path = Path(tmp) / f"input{ext}"
            path.write_bytes(data)
            if worker.done >= args.restart_every:
                worker.kill()
                worker.start()
            r = worker.run({"id": k, "path": str(path), "limit": args.time_limit},
                           args.time_limit * 2 + 10, args.rss_limit * 1024)
            if "differential" in r:
                differential["compared"] += 1
                if r["differential"] != "equal":
                    differential["different"] += 1
                    if len(mismatches) < 20:
                        h = hashlib.sha1(data).hexdigest()[:12]
                        repro = args.out / f"differential-{h}{ext}"
                        repro.write_bytes(data)
                        mismatches.append({"input": k, "seed": seed["path"], "ops": ops, "reproducer": str(repro),
                                           "diff": r["differential"]})
            pc = per_class[cls]
            pc["inputs"] += 1
            totals["inputs"] += 1
            for key in ("decode_errors",):
                totals[key] += r.get(key, 0) or 0
            if r.get("decode_errors"):
                totals["inputs_with_decode_errors"] += 1
            failure = None
            if "crash" in r:
                failure, c = "crashes", r["crash"]
            elif r.get("contained"):
                failure, c = "contained", r["contained"][0]
            elif r.get("hang"):
                failure, c = "hangs", {"type": "Hang", "where": f"over {args.time_limit:g} s", "tb": ""}
            elif r.get("memory"):
                failure, c = "memory", {"type": "MemoryBlowup", "where": f"over {args.rss_limit} MiB", "tb": ""}
            if failure:
                pc[failure] += 1
                pc["failures"] += 1
                totals[failure] += 1
                sig = f"{c['type']} at {c['where']}"
                entry = crashes.get(sig)
                if entry is None:
                    h = hashlib.sha1(data).hexdigest()[:12]
                    repro = args.out / f"{failure}-{c['type']}-{h}{ext}"
                    repro.write_bytes(data)
                    entry = crashes[sig] = {"kind": failure, "type": c["type"], "where": c["where"], "count": 0,
                                            "reproducer": str(repro), "seed": seed["path"], "ops": ops,
                                            "input": k, "traceback": c.get("tb", "")}
                entry["count"] += 1
            rss, t = r.get("rss_kb", 0), r.get("time", 0.0)
            pc["worst_rss_kb"] = max(pc["worst_rss_kb"], rss)
            pc["worst_time"] = max(pc["worst_time"], t)
            if rss > worst["rss_kb"]:
                worst.update(rss_kb=rss, rss_input={"input": k, "seed": seed["path"], "ops": ops})
            if t > worst["time"]:
                worst.update(time=t, time_input={"input": k, "seed": seed["path"], "ops": ops})
            if not args.quiet and (k + 1) % 500 == 0:
                print(f"{k + 1:,}/{len(todo):,} inputs, {totals['crashes']} crashes, {totals['contained']} contained, "
                      f"{totals['hangs']} hangs, {time.time() - t_start:.0f} s", file=sys.stderr, flush=True)
    worker.kill()
    return {"seed": args.seed, "inputs": totals["inputs"], "seeds": len(seeds),
            "seed_classes": sorted({f"{s['fmt']}/{lt}" for s in seeds for lt in s["linktypes"]}),
            "crashes": totals["crashes"], "contained": totals["contained"], "hangs": totals["hangs"],
            "memory": totals["memory"], "decode_errors": totals["decode_errors"],
            "inputs_with_decode_errors": totals["inputs_with_decode_errors"],
            "worst_rss_mb": round(worst["rss_kb"] / 1024, 1), "worst_rss_input": worst["rss_input"],
            "baseline_rss_mb": round(worker.baseline_kb / 1024, 1),
            "worst_time_s": round(worst["time"], 3), "worst_time_input": worst["time_input"],
            "wall_s": round(time.time() - t_start, 1), "time_limit_s": args.time_limit,
            "per_class": per_class, "failures": list(crashes.values()),
            "assess": not args.no_assess, "differential": dict(differential), "mismatches": mismatches}


def render(r: dict) -> str:
    lines = [(f"fuzz_captures: seed {r['seed']}, {r['inputs']:,} inputs from {r['seeds']} seed captures "
              f"({', '.join(r['seed_classes'])}), {r['wall_s']:.0f} s"),
             (f"crashes {r['crashes']}, contained internal errors {r['contained']}, hangs {r['hangs']}, "
              f"memory blowups {r['memory']}, worst peak RSS {r['worst_rss_mb']} MiB (a warmed-up worker: "
              f"{r['baseline_rss_mb']} MiB), worst time {r['worst_time_s']} s; "
              f"decoder errors counted by the deep tier: {r['decode_errors']:,} in {r['inputs_with_decode_errors']:,} inputs"),
             "", "| attack class | inputs | failures | crashes | contained | hangs | worst RSS MiB | worst time s |",
             "|---|---|---|---|---|---|---|---|"]
    for c, v in r["per_class"].items():
        lines.append(f"| {c} | {v['inputs']:,} | {v['failures']} | {v['crashes']} | {v['contained']} | {v['hangs']} | "
                     f"{v['worst_rss_kb'] / 1024:.0f} | {v['worst_time']:.2f} |")
    if r["differential"]:
        d = r["differential"]
        lines += ["", f"engine vs reference decoder: {d.get('compared', 0):,} compared, {d.get('different', 0):,} different"]
        lines += [f"  {m['seed']} ops {'+'.join(m['ops'])} -> {m['reproducer']}: {m['diff'][:160]}"
                  for m in r["mismatches"][:10]]
    if r["failures"]:
        lines += ["", "failures (one reproducer each):"]
        for f in sorted(r["failures"], key=lambda f: -f["count"]):
            lines.append(f"  {f['count']:5d} x {f['kind']}: {f['type']} at {f['where']}  "
                         f"seed {f['seed']} ops {'+'.join(f['ops'])} -> {f['reproducer']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
