"""IEC 61850-9-2 Sampled Values: EtherType 0x88BA, 802.1Q-tagged or not (the capture layer hands
over the payload after the tags).

Frame: the common header (protocols/_iec61850_l2.py: APPID, Length, Reserved 1 with the
simulation bit, Reserved 2), then the savPdu [APPLICATION 0] (tag 0x60) in BER: noASDU [0],
security [1] (optional), seqASDU [2] (0xA2) of ASDUs (0x30), each:

    svID [0] (0x80)  datSet [1] (optional)  smpCnt [2]  confRev [3]  refrTm [4] (optional)
    smpSynch [5]  smpRate [6] (optional)  sample [7]  smpMod [8] (optional)

A merging unit publishes a stream 4,000 to 14,400 times a second; its frames differ only in
smpCnt, the samples and refrTm. What the decoder says, from each frame alone (it keeps no state):
- identity of the publisher (subject src, keyed by its MAC): each stream (svID, datSet, APPID,
  confRev, smpRate) as one of its modules (`route` "SV <svID>"); the IED name when datSet is an
  object reference ("IED/LLN0$ds");
- service "sv" and role "ied";
- an error observation when the simulation bit of Reserved 1 is set (the samples are a test
  set's, not the process's).
frame_routine() replays frames whose bytes but smpCnt, refrTm and the samples were seen before."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plantguard.model import Observation, Packet
from plantguard.protocols import _iec61850_l2 as l2
from plantguard.protocols._ber import BerError, children, read_tlv
from plantguard.protocols._spec import ProtocolSpec

NAME = "sv"
SV_ETHERTYPE = 0x88BA
APDU_TAG = 0x60
SEQ_ASDU = 0xA2
ASDU_TAG = 0x30
MAX_ASDUS = 16                  # ASDUs read per frame (9-2LE uses 1 or 8)
MAX_ELEMENTS = 12               # elements read per ASDU (it has 9, 10 with gmIdentity)

# tag -> (field, how to read it): the ASDU elements as data
ELEMENTS = {
    0x80: ("sv_id", "text"),
    0x81: ("dataset", "text"),
    0x82: ("smp_cnt", "uint"),
    0x83: ("conf_rev", "uint"),
    0x84: ("refr_tm", "utc"),
    0x85: ("smp_synch", "uint"),
    0x86: ("smp_rate", "uint"),
    0x87: ("sample", "raw"),
    0x88: ("smp_mod", "uint"),
}
VOLATILE = (0x82, 0x84, 0x87)   # smpCnt, refrTm, sample: what changes every frame


@dataclass
class SampledValues:
    header: l2.Header
    no_asdu: int | None = None
    asdus: list = field(default_factory=list)
    error: str | None = None


def parse(payload: bytes) -> SampledValues | None:
    """The SV frame, or None when it is not one (no header, no savPdu). A BER error inside the
    PDU keeps the ASDUs read before it (error set)."""
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
    sv = SampledValues(h)
    try:
        for tag, s, e in children(payload, start, stop, 4):
            if tag == 0x80:
                sv.no_asdu = l2.uint(payload[s:e])
            elif tag == SEQ_ASDU:
                for atag, a, b in children(payload, s, e, MAX_ASDUS):
                    if atag == ASDU_TAG:
                        sv.asdus.append(_asdu(payload, a, b))
    except BerError as err:
        sv.error = str(err)
    return sv


def _asdu(payload: bytes, start: int, stop: int) -> dict:
    out: dict = {}
    for tag, s, e in children(payload, start, stop, MAX_ELEMENTS):
        spec = ELEMENTS.get(tag)
        if spec is None:
            continue
        key, how = spec
        b = payload[s:e]
        out[key] = l2.text(b) if how == "text" else l2.uint(b) if how == "uint" else \
            l2.utc_time(b) if how == "utc" else len(b)
    return out


def signature(payload: bytes) -> bool:
    sv = parse(payload)
    return sv is not None and sv.error is None and bool(sv.asdus) and "sv_id" in sv.asdus[0]


def decode(pkt: Packet) -> list[Observation]:
    sv = parse(pkt.payload)
    if sv is None:
        return []
    out: list[Observation] = []
    for a in sv.asdus:
        sid = a.get("sv_id")
        if sid is None:
            continue
        ds = a.get("dataset")
        name = l2.ied_name(ds) if ds else None
        if name:
            out.append(pkt.observe("identity", NAME, subject="src", name=name))
        stream = {k: a[k] for k in ("dataset", "conf_rev", "smp_rate") if a.get(k) not in (None, "")}
        out.append(pkt.observe("identity", NAME, subject="src", route=f"SV {sid}", sv_id=sid,
                               appid=sv.header.appid, **stream))
    out.append(pkt.observe("service", NAME, subject="src", name=NAME))
    out.append(pkt.observe("role", NAME, subject="src", role="ied",
                           reason="publishes IEC 61850-9-2 Sampled Values (a merging unit)"))
    if sv.header.simulation:
        what = ", ".join(a["sv_id"] for a in sv.asdus[:4] if a.get("sv_id")) or f"APPID 0x{sv.header.appid:04x}"
        out.append(pkt.observe("error", NAME, code="simulation", name="SV simulation flag set", detail=what))
    return out


# --- routine frames --------------------------------------------------------------------------

def frame_routine(arr: np.ndarray, off: np.ndarray, plen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, key) for the chunk's SV frames: a savPdu whose every element the walk reads (as
    parse() reads it, each ending its parent), keyed by its bytes but the values of smpCnt,
    refrTm and sample in each ASDU (the decoder's output depends on none of them)."""
    n = len(off)
    off = off.astype(np.int64)
    plen = plen.astype(np.int64)
    if not n:
        return np.zeros(0, bool), np.zeros(0, np.uint64)
    last = len(arr) - 1
    length = arr[np.clip(off + 2, 0, last)].astype(np.int64) << 8 | arr[np.clip(off + 3, 0, last)]
    end = off + np.minimum(plen, np.maximum(length, l2.HEADER))
    ok = (plen >= l2.HEADER + 2) & (plen <= l2.MAX_ROUTINE_BYTES)
    good, tag, start, stop = l2.tlv(arr, off + l2.HEADER, end)
    ok &= good & (tag == APDU_TAG)
    # savPdu: noASDU, then seqASDU (no security element: left to the decoder)
    g1, t1, s1, e1 = l2.tlv(arr, start, stop)
    ok &= g1 & (t1 == 0x80) & (e1 - s1 >= 1) & (e1 - s1 <= 5)
    g2, t2, s2, e2 = l2.tlv(arr, e1, stop)
    ok &= g2 & (t2 == SEQ_ASDU) & (e2 == stop)
    volatile: list = []
    pos = s2.copy()
    active = ok & (pos < e2)
    for _ in range(MAX_ASDUS):
        if not active.any():
            break
        ga, ta, sa, ea = l2.tlv(arr, pos, e2)
        ok &= ~active | (ga & (ta == ASDU_TAG))
        active &= ga & (ta == ASDU_TAG)
        q = sa.copy()
        inner = active & (q < ea)
        for _ in range(MAX_ELEMENTS):
            if not inner.any():
                break
            g, t, s, e = l2.tlv(arr, q, ea)
            ok &= ~inner | g
            inner &= g
            vol = inner & np.isin(t, VOLATILE)
            volatile.append((np.where(vol, s, 0), np.where(vol, e, 0)))
            q = np.where(inner, e, q)
            inner &= q < ea
        ok &= ~inner & (~active | (q == ea))
        pos = np.where(active, ea, pos)
        active &= pos < e2
    ok &= ~active & (pos == e2)
    return ok, l2.masked_hash(arr, off, plen, ok, volatile)


SPEC = ProtocolSpec(
    name=NAME, title="IEC 61850 Sampled Values", layer="industrial",
    decode=decode, signature=signature,
    ethertypes=(SV_ETHERTYPE,),
    frame_routine=frame_routine,
    traits=frozenset({"industrial"}),
    observes=("identity", "service", "role", "error"),
)
