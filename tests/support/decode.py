"""The deep tier as the tests drive it: walk a capture frame by frame, run every decodable frame
through the deep tier without folding (so per-PDU counts can be compared with per-PDU peer logs),
optionally with a tap on one decoder function; Packets built by hand for one decoder, and TCP
conversations fed straight to a decoder."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from plantguard.capture.deep import DeepTier
from plantguard.capture.layers import Layers
from plantguard.capture.reference import decoded_frames
from plantguard.model import Observation, Packet


def frames(path: str | Path) -> Iterator[tuple[int, float, Layers]]:
    """(frame number, timestamp, decoded layers) for every decodable frame of a capture."""
    return decoded_frames(path)


def replay(path: str | Path, module=None, tap: str | None = None) -> tuple[list[Observation], list[tuple]]:
    """Every observation of a capture in frame order, unfolded, plus (when `tap` names a function
    of `module` taking (pkt, item)) every (frame, from_client, src, sport, dst, dport, item) it saw."""
    seen: list[tuple] = []
    original = getattr(module, tap) if tap else None

    def spy(pkt, item, *rest):
        seen.append((pkt.frame, pkt.from_client, pkt.src, pkt.sport, pkt.dst, pkt.dport, item))
        return original(pkt, item, *rest)

    if tap:
        setattr(module, tap, spy)
    try:
        deep = DeepTier()
        obs: list[Observation] = []
        for frame, ts, lay in frames(path):
            obs.extend(deep.handle(str(path), frame, ts, lay))
    finally:
        if tap:
            setattr(module, tap, original)
    return obs, seen


def deep_observations(path: str | Path) -> list[Observation]:
    """Every observation the deep tier makes for a capture, in frame order and unfolded."""
    return replay(path)[0]


def of_kind(obs: Iterable[Observation], kind: str, proto: str | None = None) -> list[Observation]:
    return [o for o in obs if o.kind == kind and (proto is None or o.proto == proto)]


def packet(payload: bytes, *, l4: str = "tcp", src: str | None = "10.0.0.1", dst: str | None = "10.0.0.2",
           sport: int = 40000, dport: int = 80, from_client: bool = True, state: dict | None = None,
           seq: int = 0, frame: int = 1, src_mac: str | None = "02:00:00:00:00:01",
           dst_mac: str | None = "02:00:00:00:00:02") -> Packet:
    """A Packet as the engine would hand it to a decoder."""
    return Packet("test.pcap", frame, 1_600_000_000.0 + frame, payload, src_mac, dst_mac, 0x0800, None,
                  src, dst, l4, sport, dport, 0x18, seq, from_client, {} if state is None else state)


def stream(chunks: list[tuple[bool, bytes]], module, *, sport: int = 40000, dport: int = 80,
           client: str = "10.0.0.1", server: str = "10.0.0.2", state: dict | None = None) -> list[Observation]:
    """Feed a TCP conversation (from_client, bytes) through a decoder with consistent
    sequence numbers and one flow state (`state`, to look at it afterwards)."""
    state = {} if state is None else state
    seqs = {True: 1000, False: 5000}
    out: list[Observation] = []
    for n, (from_client, data) in enumerate(chunks, 1):
        src, dst = (client, server) if from_client else (server, client)
        sp, dp = (sport, dport) if from_client else (dport, sport)
        out.extend(module.decode(packet(data, src=src, dst=dst, sport=sp, dport=dp, from_client=from_client,
                                        state=state, seq=seqs[from_client], frame=n)))
        seqs[from_client] += len(data)
    return out
