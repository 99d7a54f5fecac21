"""IEEE C37.118 frames: the common 14-byte header (SYNC, FRAMESIZE, IDCODE, SOC, FRACSEC), the
CRC-CCITT check word, and the bodies of configuration (CFG-1/2/3), data and command frames, as
C37.118.2-2011 lays them out (field sizes below are the standard's)."""
from __future__ import annotations

import binascii

import struct
from dataclasses import dataclass, field

from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE

# SYNC: 0xAA, then bit 7 reserved (0), frame type in bits 4-6, version in bits 0-3
HEADER = header("C37Header", ">", ("sync", "B"), ("kind", "B"), ("framesize", "H"), ("idcode", "H"),
                ("soc", "I"), ("fracsec", "I"))
SYNC = 0xAA
CHK_SIZE = 2
MIN_FRAME = HEADER.size + CHK_SIZE          # a header frame with no text
MAX_FRAME = 65535
VERSIONS = frozenset({1, 2, 3})             # 2005, 2011, and the 2011 CFG-3 amendment's 3

DATA, HEADER_FRAME, CFG1, CFG2, COMMAND, CFG3 = range(6)
FRAME_TYPES = {DATA: "Data", HEADER_FRAME: "Header", CFG1: "CFG-1", CFG2: "CFG-2", COMMAND: "Command",
               CFG3: "CFG-3"}
CONFIG_TYPES = frozenset({CFG1, CFG2, CFG3})
FROM_PMU = frozenset({DATA, HEADER_FRAME, CFG1, CFG2, CFG3})   # a PMU/PDC sends these; a client commands

# FORMAT bits (CFG per PMU): 0 polar phasors, 1 float phasors, 2 float analogs, 3 float FREQ/DFREQ
FMT_POLAR, FMT_PHASOR_FLOAT, FMT_ANALOG_FLOAT, FMT_FREQ_FLOAT = 1, 2, 4, 8

MAX_PMUS = 256              # PMU blocks kept per configuration (the frame size bounds it anyway)
MAX_NAMES = 64              # channel names kept per PMU (the rest are counted, not kept)


def crc_ccitt(b: bytes) -> int:
    """CRC-CCITT (polynomial 0x1021, initial 0xFFFF, no reflection, no final xor): the standard
    library's crc_hqx is exactly this one, in C (a Python byte loop was 38 us a frame)."""
    return binascii.crc_hqx(b, 0xFFFF)


def _table() -> list[int]:
    out = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else c << 1
        out.append(c & 0xFFFF)
    return out


CRC_TABLE = _table()


def head_ok(b: bytes, off: int = 0) -> bool:
    """SYNC byte, reserved bit clear, a frame type and version of the standard's, a frame size
    that holds at least the header and check word."""
    if len(b) - off < 4 or b[off] != SYNC:
        return False
    kind = b[off + 1]
    size = (b[off + 2] << 8) | b[off + 3]
    return not kind & 0x80 and (kind >> 4) <= CFG3 and (kind & 0x0F) in VERSIONS and size >= MIN_FRAME


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= MIN_FRAME and crc_ccitt(frame[:-2]) == ((frame[-2] << 8) | frame[-1])


def frame_len(buf: bytes, off: int) -> int:
    """Bytes of the frame at `off` (NEED_MORE / BAD for _pdustream.split)."""
    if len(buf) - off < 4:
        return NEED_MORE
    if not head_ok(buf, off):
        return BAD
    return (buf[off + 2] << 8) | buf[off + 3]


@dataclass(slots=True)
class Frame:
    """One frame's header; `body` is what lies between the header and the check word."""
    frame_type: int
    version: int
    framesize: int
    idcode: int
    soc: int
    fracsec: int
    body: bytes
    crc_good: bool

    @property
    def type_name(self) -> str:
        return FRAME_TYPES.get(self.frame_type, f"type {self.frame_type}")


def parse_frame(b: bytes) -> Frame | None:
    """A whole frame (len(b) == FRAMESIZE); None when the header is not C37.118's."""
    if len(b) < MIN_FRAME or not head_ok(b):
        return None
    h = HEADER.unpack_from(b, 0)
    return Frame(h.kind >> 4, h.kind & 0x0F, h.framesize, h.idcode, h.soc, h.fracsec,
                 bytes(b[HEADER.size:len(b) - CHK_SIZE]), crc_ok(b))


@dataclass(slots=True)
class PmuConfig:
    """One PMU block of a configuration frame."""
    station: str
    idcode: int
    fmt: int
    phnmr: int
    annmr: int
    dgnmr: int
    phasor_names: list[str]
    analog_names: list[str]
    digital_names: list[str]
    fnom: int                       # 50 or 60 (Hz)
    cfgcnt: int
    global_id: str | None = None    # CFG-3: G_PMU_ID (hex)
    lat: float | None = None        # CFG-3: WGS84 position
    lon: float | None = None
    elev: float | None = None
    svc_class: str | None = None    # CFG-3: M or P

    def data_size(self) -> int:
        """Bytes of this PMU's block in a data frame: STAT, phasors, FREQ, DFREQ, analogs, digitals."""
        f = self.fmt
        ph = 8 if f & FMT_PHASOR_FLOAT else 4
        fr = 4 if f & FMT_FREQ_FLOAT else 2
        an = 4 if f & FMT_ANALOG_FLOAT else 2
        return 2 + ph * self.phnmr + 2 * fr + an * self.annmr + 2 * self.dgnmr


@dataclass(slots=True)
class Config:
    """A configuration frame: TIME_BASE, NUM_PMU, the PMU blocks, DATA_RATE."""
    frame_type: int
    time_base: int
    num_pmu: int
    pmus: list[PmuConfig] = field(default_factory=list)
    data_rate: int | None = None    # frames per second (negative: seconds per frame)
    cont_idx: int = 0               # CFG-3 fragments: 0 alone or first, 0xFFFF last

    @property
    def complete(self) -> bool:
        return self.data_rate is not None and len(self.pmus) == self.num_pmu


class _Reader:
    __slots__ = ("b", "off")

    def __init__(self, b: bytes):
        self.b, self.off = b, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.off + n > len(self.b):
            raise ValueError("short")
        v = self.b[self.off:self.off + n]
        self.off += n
        return v

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def f32(self) -> float:
        return struct.unpack(">f", self.take(4))[0]

    def name(self, cfg3: bool) -> str:
        raw = self.take(self.take(1)[0]) if cfg3 else self.take(16)
        return _text(raw)


def _text(raw: bytes) -> str:
    """A name as the device gives it: NULs and padding spaces stripped, kept as text."""
    s = raw.split(b"\x00", 1)[0].decode("utf-8" if len(raw) != 16 else "latin-1", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in s).strip()


def parse_config(frame_type: int, body: bytes) -> Config | None:
    """The configuration in a CFG-1/2/3 body; PMU blocks as far as they parse (a cut-short
    frame keeps the blocks before the cut, complete is False). None when even TIME_BASE and
    NUM_PMU are missing."""
    cfg3 = frame_type == CFG3
    r = _Reader(body)
    try:
        cont = r.u16() if cfg3 else 0
        time_base = r.u32() & 0xFFFFFF
        num = r.u16()
    except ValueError:
        return None
    cfg = Config(frame_type, time_base, num, cont_idx=cont)
    if cfg3 and cont not in (0,):
        return cfg                                 # a continuation fragment: not reassembled
    try:
        for _ in range(min(num, MAX_PMUS)):
            cfg.pmus.append(_pmu(r, cfg3))
        if num <= MAX_PMUS:
            cfg.data_rate = r.i16()
    except (ValueError, struct.error):
        pass
    return cfg


def _pmu(r: _Reader, cfg3: bool) -> PmuConfig:
    station = r.name(cfg3)
    idcode = r.u16()
    gid = r.take(16).hex() if cfg3 else None
    fmt, phnmr, annmr, dgnmr = r.u16(), r.u16(), r.u16(), r.u16()
    names = [[], [], []]
    for i, n in enumerate((phnmr, annmr, 16 * dgnmr)):
        for k in range(n):
            nm = r.name(cfg3)
            if k < MAX_NAMES:
                names[i].append(nm)
    r.take((12 if cfg3 else 4) * phnmr + (8 if cfg3 else 4) * annmr + 4 * dgnmr)   # PHUNIT, ANUNIT, DIGUNIT
    lat = lon = elev = svc = None
    if cfg3:
        lat, lon, elev = r.f32(), r.f32(), r.f32()
        svc = _text(r.take(1)) or None
        r.take(8)                                  # WINDOW, GRP_DLY
    fnom = 50 if r.u16() & 1 else 60
    cfgcnt = r.u16()
    return PmuConfig(station, idcode, fmt, phnmr, annmr, dgnmr, *names, fnom, cfgcnt, gid, lat, lon, elev, svc)


def block_sizes(cfg: Config) -> tuple[int, ...]:
    """What a flow keeps of a configuration to find the PMU blocks of its data frames."""
    return tuple(p.data_size() for p in cfg.pmus)


def data_blocks(body: bytes, sizes: tuple[int, ...] | None) -> list[tuple[int, int]]:
    """(PMU index, STAT word) of each PMU block of a data frame body. With the stream's block
    sizes (from its configuration) every block is found; without them, or when they do not fit
    the frame, only the first, whose STAT always follows the header."""
    if sizes and sum(sizes) == len(body):
        out, off = [], 0
        for i, n in enumerate(sizes):
            out.append((i, (body[off] << 8) | body[off + 1]))
            off += n
        return out
    return [(0, (body[0] << 8) | body[1])] if len(body) >= 2 else []


def data_values(body: bytes, cfg: Config) -> list[dict]:
    """Per PMU block of a data frame: STAT, phasors (pairs as sent), FREQ, DFREQ, analogs and
    digital words, with the configuration's formats ([] when the sizes do not fit)."""
    sizes = [p.data_size() for p in cfg.pmus]
    if not cfg.complete or sum(sizes) != len(body):
        return []
    out, off = [], 0
    for p in cfg.pmus:
        r = _Reader(body[off:off + p.data_size()])
        off += p.data_size()
        stat = r.u16()
        flt = p.fmt & FMT_PHASOR_FLOAT
        phasors = [struct.unpack(">ff" if flt else (">Hh" if p.fmt & FMT_POLAR else ">hh"), r.take(8 if flt else 4))
                   for _ in range(p.phnmr)]
        if p.fmt & FMT_FREQ_FLOAT:
            freq, dfreq = r.f32(), r.f32()
        else:
            freq, dfreq = p.fnom + r.i16() / 1000.0, r.i16() / 100.0
        an_f = p.fmt & FMT_ANALOG_FLOAT
        analogs = [r.f32() if an_f else r.i16() for _ in range(p.annmr)]
        digitals = [r.u16() for _ in range(p.dgnmr)]
        out.append({"stat": stat, "phasors": phasors, "freq": freq, "dfreq": dfreq, "analogs": analogs,
                    "digitals": digitals})
    return out
