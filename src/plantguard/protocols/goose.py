"""IEC 61850 GOOSE (IEC 61850-8-1 clause 18 / Annex A): EtherType 0x88B8, 802.1Q-tagged or not
(the capture layer hands over the payload after the tags).

Frame: the common header (protocols/_iec61850_l2.py: APPID, Length, Reserved 1 with the Ed.2
simulation bit, Reserved 2), then the goosePdu [APPLICATION 1] (tag 0x61) in BER:

    gocbRef [0] (0x80)  timeAllowedtoLive [1]  datSet [2]  goID [3] (optional)  t [4] UtcTime
    stNum [5]  sqNum [6]  simulation/test [7]  confRev [8]  ndsCom [9]  numDatSetEntries [10]
    allData [11] (0xAB, constructed)

A GOOSE message is a publication, not a request: the publishing IED multicasts its data set,
again and again (a heartbeat every timeAllowedtoLive/2 or so, sqNum counting up), and at once in
a burst when a value changes (stNum counting up, sqNum back to 0). So what the decoder says:
- identity of the publisher (subject src, keyed by its MAC as every layer-2 protocol is): name =
  the IED name, the part of gocbRef before '/'; the control block (gocbRef, goID, datSet, APPID,
  confRev) as one of the IED's modules (`route` "GOOSE <gocbRef>");
- service "goose" and role "ied" for the publisher;
- error observations the publisher's frames themselves show: the simulation flag (Reserved 1 bit
  15, Ed.2) or the simulation/test element set (the frame is not the process: a test set or a
  mis-set IED), ndsCom (needs commissioning);
- what changes between frames of one control block, tracked per (src MAC, dst MAC, gocbRef): a
  confRev change is operation `config` (the control block or its data set was reconfigured: the
  change timeline's reconfiguration); an stNum step forward is operation `control` (the data set
  changed: GOOSE carries trips, interlocks and breaker positions, the signals that operate
  switchgear); stNum going backwards, or sqNum going backwards without an stNum change, is an
  error observation (a replay or a spoofed publisher, or a restarted IED), folded and counted.
  The state is at most MAX_STREAMS control blocks per run; later ones are decoded without it.

Routine: heartbeats dominate. frame_routine() replays a frame only when it continues its control
block's stream (same bytes but sqNum, which is one more, and t) and the next frame of that stream in the
chunk continues it too. So a decoded frame whose predecessor was replayed continues it (and a
continuing frame is judged the same whatever earlier sqNum the state holds), and any other decoded
frame is judged by the state decoding every frame would have left (docs/engine.md)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plantguard.model import Observation, Packet
from plantguard.protocols import _iec61850_l2 as l2
from plantguard.protocols._ber import BerError, children, read_tlv
from plantguard.protocols._spec import ProtocolSpec
from plantguard.util.arrays import col, hash_keys

NAME = "goose"
GOOSE_ETHERTYPE = 0x88B8
APDU_TAG = 0x61
MAX_ELEMENTS = 32               # elements of a goosePdu read (it has 12)
MAX_STREAMS = 1024              # control blocks whose stNum / sqNum / confRev are tracked per run
WRAP = 1 << 32
WRAP_SLACK = 256                # a counter within this of 2^32 that restarts low has wrapped

# tag -> (field, how to read it): the goosePdu elements as data
ELEMENTS = {
    0x80: ("gocb_ref", "text"),
    0x81: ("time_allowed_to_live", "uint"),
    0x82: ("dataset", "text"),
    0x83: ("go_id", "text"),
    0x84: ("t", "utc"),
    0x85: ("st_num", "uint"),
    0x86: ("sq_num", "uint"),
    0x87: ("simulation", "bool"),
    0x88: ("conf_rev", "uint"),
    0x89: ("nds_com", "bool"),
    0x8A: ("num_dat_set_entries", "uint"),
    0xAB: ("all_data", "raw"),
}
REQUIRED = ("gocb_ref", "time_allowed_to_live", "dataset", "st_num", "sq_num", "conf_rev",
            "num_dat_set_entries", "all_data")


@dataclass
class Goose:
    header: l2.Header
    fields: dict = field(default_factory=dict)
    gocb_raw: bytes | None = None      # gocbRef as sent: the state key (text is made printable)
    unknown: list = field(default_factory=list)   # tags not in ELEMENTS
    error: str | None = None           # why the element walk stopped early

    @property
    def status(self) -> str:
        """ok, partial (an element missing or unknown) or failed (the BER walk broke)."""
        if self.error:
            return "failed"
        if self.unknown or any(k not in self.fields for k in REQUIRED):
            return "partial"
        return "ok"

    @property
    def simulated(self) -> bool:
        return self.header.simulation or bool(self.fields.get("simulation"))


def parse(payload: bytes) -> Goose | None:
    """The GOOSE frame, or None when it is not one (no header, no goosePdu). A BER error inside
    the PDU keeps the elements read before it (error set)."""
    h = l2.header(payload)
    if h is None:
        return None
    end = l2.apdu_end(payload, h)
    try:
        tag, start, stop = read_tlv(payload, l2.HEADER, end)
    except BerError:
        return None
    if tag != APDU_TAG:
        return None
    g = Goose(h)
    try:
        for tag, s, e in children(payload, start, stop, MAX_ELEMENTS):
            spec = ELEMENTS.get(tag)
            if spec is None:
                if len(g.unknown) < 8:
                    g.unknown.append(tag)
                continue
            key, how = spec
            g.fields[key] = _value(payload[s:e], how)
            if key == "gocb_ref":
                g.gocb_raw = bytes(payload[s:min(e, s + l2.MAX_KEY_BYTES)])
    except BerError as err:
        g.error = str(err)
    return g


def _value(b: bytes, how: str):
    if how == "text":
        return l2.text(b)
    if how == "uint":
        return l2.uint(b)
    if how == "bool":
        if len(b) != 1:
            raise BerError("bad boolean")
        return b[0] != 0
    if how == "utc":
        return l2.utc_time(b)
    return len(b)                      # allData: its size (the values are the process, not kept)


def signature(payload: bytes) -> bool:
    g = parse(payload)
    return g is not None and g.error is None and "gocb_ref" in g.fields


# --- decode --------------------------------------------------------------------------------

def decode(pkt: Packet) -> list[Observation]:
    g = parse(pkt.payload)
    if g is None:
        return []
    f = g.fields
    out: list[Observation] = []
    ref = f.get("gocb_ref")
    if ref:
        name = l2.ied_name(ref)
        if name:
            out.append(pkt.observe("identity", NAME, subject="src", name=name))
        block = {k: f[k] for k in ("go_id", "dataset", "conf_rev") if f.get(k) not in (None, "")}
        out.append(pkt.observe("identity", NAME, subject="src", route=f"GOOSE {ref}", gocb_ref=ref,
                               appid=g.header.appid, **block))
    out.append(pkt.observe("service", NAME, subject="src", name=NAME))
    out.append(pkt.observe("role", NAME, subject="src", role="ied", reason="publishes IEC 61850 GOOSE messages"))
    what = ref or f"APPID 0x{g.header.appid:04x}"
    if g.simulated:
        out.append(pkt.observe("error", NAME, code="simulation", name="GOOSE simulation/test flag set",
                               detail=what))
    if f.get("nds_com"):
        out.append(pkt.observe("error", NAME, code="nds-com", name="GOOSE needs commissioning (ndsCom)",
                               detail=what))
    if g.error is None:
        out.extend(_stream_events(pkt, g))
    return out


def _stream_events(pkt: Packet, g: Goose) -> list[Observation]:
    """What this frame changes in its control block's stream (state in pkt.state: one dict per
    run for every layer-2 frame of this module). Updated last, after the frame parsed whole."""
    f = g.fields
    st, sq, rev = f.get("st_num"), f.get("sq_num"), f.get("conf_rev")
    if g.gocb_raw is None or st is None or sq is None:
        return []
    streams = pkt.state.setdefault("streams", {})
    key = (pkt.src_mac, pkt.dst_mac, g.gocb_raw)
    last = streams.get(key)
    if last is None:
        if len(streams) < MAX_STREAMS:     # full: later control blocks go untracked (never evicted,
            streams[key] = [st, sq, rev]   # so the tracked set is the same whatever was replayed)
        return []
    ref = f["gocb_ref"]
    out = []
    l_st, l_sq, l_rev = last
    if rev is not None and l_rev is not None and rev != l_rev:
        out.append(pkt.observe("operation", NAME, category="config", code="confrev-change",
                               name="GOOSE configuration revision change",
                               detail=f"{ref}: confRev {l_rev} -> {rev}"))
    if st != l_st:
        if _behind(st, l_st):
            out.append(pkt.observe("error", NAME, code="stnum-backwards",
                                   name="GOOSE stNum went backwards (replay, spoofing or a restarted IED)",
                                   detail=ref))
        else:
            out.append(pkt.observe("operation", NAME, category="control", code="state-change",
                                   name="GOOSE state change (stNum)", detail=ref))
    elif _behind(sq, l_sq):
        out.append(pkt.observe("error", NAME, code="sqnum-backwards",
                               name="GOOSE sqNum went backwards without a state change (replay, spoofing or a restarted IED)",
                               detail=ref))
    last[:] = [st, sq, rev]
    return out


def _behind(new: int, old: int) -> bool:
    """new is before old (a counter that wrapped from near 2^32 to a low value is not)."""
    return new < old and not (old >= WRAP - WRAP_SLACK and new < WRAP_SLACK)


# --- routine frames --------------------------------------------------------------------------

def _walk(arr: np.ndarray, off: np.ndarray, plen: np.ndarray):
    """The goosePdu of every row, with array operations: (ok, gocbRef start/stop, sqNum
    start/stop). ok: header and PDU parse as parse() reads them, every element fits and the last
    ends the PDU, gocbRef, stNum and sqNum appear exactly once, sqNum has 1..5 bytes."""
    n = len(off)
    last = len(arr) - 1
    length = arr[np.clip(off + 2, 0, last)].astype(np.int64) << 8 | arr[np.clip(off + 3, 0, last)]
    end = off + np.minimum(plen, np.maximum(length, l2.HEADER))
    ok = (plen >= l2.HEADER + 2) & (plen <= l2.MAX_ROUTINE_BYTES)
    good, tag, start, stop = l2.tlv(arr, off + l2.HEADER, end)
    ok &= good & (tag == APDU_TAG)
    refs = np.zeros(n, np.int64)
    sts = np.zeros(n, np.int64)
    sqs = np.zeros(n, np.int64)
    ref_at = np.zeros((2, n), np.int64)
    sq_at = np.zeros((2, n), np.int64)
    t_at = np.zeros((2, n), np.int64)
    pos = start.copy()
    active = ok & (pos < stop)
    for _ in range(MAX_ELEMENTS):
        if not active.any():
            break
        g, t, s, e = l2.tlv(arr, pos, stop)
        ok &= ~active | g
        active &= g
        hit = active & (t == 0x84)
        t_at[0] = np.where(hit, s, t_at[0])
        t_at[1] = np.where(hit, e, t_at[1])
        for want, count, at in ((0x80, refs, ref_at), (0x86, sqs, sq_at)):
            hit = active & (t == want)
            count += hit
            at[0] = np.where(hit, s, at[0])
            at[1] = np.where(hit, e, at[1])
        sts += active & (t == 0x85)
        pos = np.where(active, e, pos)
        active &= pos < stop
    ok &= ~active & (pos == stop) & (refs == 1) & (sts == 1) & (sqs == 1)
    w = sq_at[1] - sq_at[0]
    ok &= (w >= 1) & (w <= 5)
    return ok, ref_at, sq_at, t_at


def frame_routine(arr: np.ndarray, off: np.ndarray, plen: np.ndarray, macs=None) -> tuple[np.ndarray, np.ndarray]:
    """(mask, key) for the chunk's GOOSE frames (Ethernet payload at `off`, in capture order;
    macs: their source and destination MAC columns). A frame is routine when it continues the
    previous frame of its control block in this chunk (same bytes but sqNum, sqNum one more,
    no frame the walk could not read between them) and the next frame of the block continues it;
    its key is its bytes but the values of sqNum and t."""
    n = len(off)
    off = off.astype(np.int64)
    plen = plen.astype(np.int64)
    if not n or macs is None:
        return np.zeros(n, bool), np.zeros(n, np.uint64)
    ok, ref_at, sq_at, t_at = _walk(arr, off, plen)
    key = l2.masked_hash(arr, off, plen, ok, [(sq_at[0], sq_at[1]), (t_at[0], t_at[1])])
    ref_hash = l2.masked_hash(arr, ref_at[0], ref_at[1] - ref_at[0], ok, [])
    sq = l2.uint_at(arr, sq_at[0], sq_at[1])
    src, dst = macs
    group = hash_keys((col(src), col(dst), ref_hash))
    barrier = np.cumsum(~ok)                    # frames the walk could not read, so far
    prev = l2.previous_in_group(np.where(ok, group, np.uint64(0)))
    p = np.maximum(prev, 0)
    cont = ok & (prev >= 0) & ok[p] & (barrier == barrier[p]) & (key == key[p]) \
        & (sq_at[0] - off == sq_at[0][p] - off[p]) & (sq == sq[p] + 1)
    nxt = np.full(n, -1, np.int64)
    has = prev >= 0
    nxt[prev[has]] = np.flatnonzero(has)
    mask = cont & (nxt >= 0) & cont[np.maximum(nxt, 0)]
    return mask, key


SPEC = ProtocolSpec(
    name=NAME, title="IEC 61850 GOOSE", layer="industrial",
    decode=decode, signature=signature,
    ethertypes=(GOOSE_ETHERTYPE,),
    frame_routine=frame_routine,
    traits=frozenset({"industrial", "unauthenticated-control"}),
    observes=("identity", "service", "role", "operation", "error"),
)
