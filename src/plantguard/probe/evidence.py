"""The evidence of a probe run: a pcap of every frame sent and received, in order.

TCP and UDP exchanges go through the kernel's sockets, so their frames are written as the
sockets carried them: the payloads byte for byte, inside Ethernet/IPv4/TCP headers rebuilt with
the connection's real addresses and ports, consistent sequence numbers, the three-way handshake
and the close (FIN from us, then from the device, or its RST). Raw Layer-2 exchanges (DCP) are
written exactly as sent and received. The passive decoders read this file like any capture."""
from __future__ import annotations

import os
import time
from pathlib import Path

from plantguard.demo.frames import (
    ETH_IPV4,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    ethernet,
    ipv4,
    tcp,
    udp,
)
from plantguard.demo.pcapwriter import write_pcap

OUR_MAC = "02:00:00:00:00:01"        # the transcript's MACs: placeholders, never an asset's


def their_mac(ip: str) -> str:
    """A device's placeholder MAC, one per address (locally administered, 02:00 + the IPv4
    bytes): with one MAC for all, the passive inventory would take every device of a run for
    one host and merge their identities."""
    return "02:00:" + ":".join(f"{int(b):02x}" for b in ip.split("."))

WINDOW = 64240
MAX_SEGMENT = 1460


class Evidence:
    """Frames in order, with their microsecond timestamps; written once, at the end."""

    def __init__(self):
        self.frames: list[tuple[int, bytes]] = []
        self._ident = 1

    def _add(self, frame: bytes, ts: float | None = None) -> None:
        self.frames.append((int((ts if ts is not None else time.time()) * 1_000_000), frame))

    def _ip(self, src: str, dst: str, proto: int, seg: bytes, mac_src: str, mac_dst: str) -> None:
        self._ident += 1
        self._add(ethernet(mac_dst, mac_src, ETH_IPV4, ipv4(src, dst, proto, seg, self._ident, 64), None))

    def udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes, outgoing: bool) -> None:
        macs = (OUR_MAC, their_mac(dst)) if outgoing else (their_mac(src), OUR_MAC)
        self._ip(src, dst, 17, udp(src, dst, sport, dport, payload), *macs)

    def l2(self, frame: bytes) -> None:
        self._add(frame)

    def tcp(self, local: tuple[str, int], remote: tuple[str, int]) -> "TcpTranscript":
        return TcpTranscript(self, local, remote)

    def write(self, path: str | os.PathLike) -> int:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{path}.part")
        with open(tmp, "wb") as f:
            n = write_pcap(f, self.frames)
        os.replace(tmp, path)
        return n


class TcpTranscript:
    """One TCP connection's frames: handshake, data both ways, close."""

    def __init__(self, ev: Evidence, local: tuple[str, int], remote: tuple[str, int]):
        self.ev, self.local, self.remote = ev, local, remote
        self.seq_out, self.seq_in = 0x10000000, 0x20000000
        self._seg(True, TCP_SYN)
        self.seq_out += 1
        self._seg(False, TCP_SYN | TCP_ACK)
        self.seq_in += 1
        self._seg(True, TCP_ACK)

    def _seg(self, outgoing: bool, flags: int, payload: bytes = b"") -> None:
        (s, sp), (d, dp) = (self.local, self.remote) if outgoing else (self.remote, self.local)
        seq, ack = (self.seq_out, self.seq_in) if outgoing else (self.seq_in, self.seq_out)
        macs = (OUR_MAC, their_mac(d)) if outgoing else (their_mac(s), OUR_MAC)
        self.ev._ip(s, d, 6, tcp(s, d, sp, dp, seq, ack, flags, WINDOW, payload), *macs)

    def data(self, payload: bytes, outgoing: bool) -> None:
        for i in range(0, len(payload), MAX_SEGMENT):
            chunk = payload[i:i + MAX_SEGMENT]
            self._seg(outgoing, TCP_PSH | TCP_ACK, chunk)
            if outgoing:
                self.seq_out += len(chunk)
            else:
                self.seq_in += len(chunk)

    def close(self, reset_by_peer: bool = False) -> None:
        if reset_by_peer:
            self._seg(False, TCP_RST | TCP_ACK)
            return
        self._seg(True, TCP_FIN | TCP_ACK)
        self.seq_out += 1
        self._seg(False, TCP_FIN | TCP_ACK)
        self.seq_in += 1
        self._seg(True, TCP_ACK)
