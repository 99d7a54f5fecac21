"""The reference analysis: every frame decoded one at a time in plain Python. Slow, simple and
obviously right; the columnar engine must produce the same flows and observations, and tests
compare the two."""
from __future__ import annotations

import logging
import os
from typing import Callable, Iterable, Iterator

from plantguard.capture import formats
from plantguard.capture.aggregate import ObservationAggregator
from plantguard.capture.interrupt import interrupt_in
from plantguard.capture.deep import DeepTier, flow_key, orient
from plantguard.capture.layers import (FRAGMENT_COUNTERS, TUNNEL_KEYS, Layers, Reassembler, adopt_link,
                                       decode_frame, undecoded_kind, undecoded_notes)
from plantguard.model import AnalysisResult, Flow

log = logging.getLogger(__name__)

PROGRESS_EVERY = 65536
ICMP = ("icmp", "icmpv6", "igmp")   # a flow each, never a protocol module


def iter_frames(path, stats: formats.ReadStats | None = None,
                with_linktype: bool = False) -> Iterator[tuple]:
    """(frame number, timestamp, wire length, [link type,] decoded layers or None) for every
    record of one capture, one at a time."""
    for chunk in formats.read_chunks(path, stats):
        buf = chunk.buf
        for i in range(len(chunk)):
            o = int(chunk.offsets[i])
            lt = int(chunk.linktype[i])
            lay = decode_frame(lt, bytes(buf[o:o + int(chunk.caplen[i])]))
            if with_linktype:
                yield chunk.first_frame + i, float(chunk.ts[i]), int(chunk.wirelen[i]), lt, lay
            else:
                yield chunk.first_frame + i, float(chunk.ts[i]), int(chunk.wirelen[i]), lay


def decoded_frames(path) -> Iterator[tuple[int, float, Layers]]:
    """(frame number, timestamp, layers) for every frame of a capture that decodes."""
    for frame_no, ts, _wirelen, lay in iter_frames(path):
        if lay is not None:
            yield frame_no, ts, lay


def analyze_reference(paths: Iterable[str | os.PathLike],
                      progress: Callable[[int], None] | None = None, packet_filter=None) -> AnalysisResult:
    """`packet_filter` (bpf.PacketFilter) is applied frame by frame, to the frame as read."""
    result = AnalysisResult()
    deep = DeepTier()
    agg = ObservationAggregator()
    flows: dict[tuple, Flow] = {}
    counters = dict.fromkeys(FRAGMENT_COUNTERS + ("undecoded_link",), 0)
    for path in formats.expand_paths(list(paths)):
        cap = str(path)
        st = formats.ReadStats(cap)
        frames = iter_frames(path, st, with_linktype=True)
        reasm = Reassembler()   # per capture: fragments of different captures never meet
        try:
            done = 0
            for frame_no, ts, wirelen, linktype, lay in frames:
                done += 1
                if progress and done % PROGRESS_EVERY == 0:
                    progress(PROGRESS_EVERY)
                if packet_filter is not None and not packet_filter.matches(lay):
                    st.packets -= 1     # the capture counts what was analysed, as the engine's
                    st.bytes -= wirelen
                    continue
                if lay is not None and lay.fragment:
                    counters["fragments"] += 1
                    whole = reasm.feed(ts, lay.l3)
                    if whole is not None:   # the datagram is one packet, at its last fragment
                        wirelen = lay.l3_off + len(whole)
                        lay = adopt_link(decode_frame(formats.LINKTYPE_RAW, whole), lay)
                kind = undecoded_kind(linktype, lay)
                if kind is not None:
                    counters[kind] = counters.get(kind, 0) + 1
                if lay is None:
                    counters["undecoded_link"] += 1
                    continue
                # ICMP and IGMP carry nothing for a protocol module: a flow only
                obs = [] if lay.l4 in ICMP else deep.handle(cap, frame_no, ts, lay)
                if lay.l4:
                    _account(flows, deep, lay, cap, frame_no, ts, wirelen, obs)
                agg.extend(obs)
            if progress and done % PROGRESS_EVERY:
                progress(done % PROGRESS_EVERY)
        except formats.CaptureError as exc:
            st.warn("unreadable", str(exc))
        except Exception as exc:   # as the engine: one capture that breaks something loses no other
            if (ki := interrupt_in(exc)) is not None:
                raise ki from None
            log.exception("capture %s: analysis stopped", cap)
            st.failed(exc)
        finally:
            frames.close()
            for k, v in reasm.counts().items():
                counters[k] += v
        result.captures.append(st.capture_stats())
    result.observations = agg.observations
    result.flows = list(flows.values())
    counters["decode_errors"] = deep.errors
    counters["flows_evicted"] = 0
    counters["states_evicted"] = deep.evicted
    result.counters = counters
    result.notes.extend(undecoded_notes(counters))
    return result


def _account(flows: dict, deep: DeepTier, lay, cap: str, frame_no: int, ts: float, wirelen: int,
             obs) -> None:
    key = flow_key(lay)
    f = flows.get(key)
    if f is None:
        client, cport = ((lay.src, 0) if lay.sport == 0 else (lay.dst, 0)) if lay.l4 in ICMP else orient(lay)
        if client == lay.src and cport == lay.sport:
            server, sport, cmac, smac = lay.dst, lay.dport, lay.src_mac, lay.dst_mac
        else:
            server, sport, cmac, smac = lay.src, lay.sport, lay.dst_mac, lay.src_mac
        f = Flow(lay.l4, client, server, cport, sport, lay.vlan, cmac, smac,
                 first=ts, capture=cap, first_frame=frame_no)
        flows[key] = f
    f.packets += 1
    f.bytes += wirelen
    if lay.src == f.client and lay.sport == f.client_port:
        f.packets_to_server += 1
        f.bytes_to_server += wirelen
    f.last = ts
    if f.tunnel is None and lay.tunnel:   # a mark, not part of the key (flows.FlowTable.assign)
        f.tunnel = TUNNEL_KEYS[lay.tunnel]
    if f.app is None:
        fs = deep.flows.get(key)
        if fs is not None and fs.module is not None:
            f.app = fs.module.SPEC.name
    # Operations belong to the flow whose packet carried them.
    for o in obs:
        if o.kind == "operation":
            cat = o.data.get("category", "other")
            f.operations[cat] = f.operations.get(cat, 0) + 1
