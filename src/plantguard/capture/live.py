"""Live input: an AF_PACKET socket with a TPACKET_V3 memory-mapped receive ring, read in blocks.

The kernel fills ring blocks with packets and hands a block over (TP_STATUS_USER) when it is full
or `timeout_ms` after its first packet. `LiveSource.chunks()` copies each retired block out in
one copy, hands it back (TP_STATUS_KERNEL) and yields `formats.Chunk`s like the file readers do:
per-block numpy arrays of offsets, lengths and times, no Python object per packet.

The kernel strips the outer 802.1Q/802.1ad tag of a received frame into the packet header
(tp_vlan_tci, tp_vlan_tpid, TP_STATUS_VLAN_VALID). It is put back here, so a frame in a Chunk is
the frame as it was on the wire and VLAN zones work as with a capture file.

Passive: the socket is bound for receive only and never sends. Layouts are those of
<linux/if_packet.h> (struct tpacket_block_desc, tpacket3_hdr, tpacket_req3, tpacket_stats_v3).
See docs/live-capture.md.
"""
from __future__ import annotations

import ctypes
import mmap
import select
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from collections.abc import Iterator, Sequence

import numpy as np

from plantguard.capture.formats import LINKTYPE_ETHERNET, LINKTYPE_RAW, Chunk
from plantguard.errors import InputError

# <linux/if_packet.h>, <linux/if_ether.h>, <asm-generic/socket.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1 << 0
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
ETH_P_8021Q = 0x8100
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1 (block_status,
# num_pkts, offset_to_first_pkt, blk_len, seq_num (u64), ts_first_pkt, ts_last_pkt)
BD_STATUS, BD_NUM_PKTS, BD_FIRST, BD_LEN = 8, 12, 16, 20
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status (u32),
# tp_mac, tp_net (u16), hv1 = tp_rxhash, tp_vlan_tci (u32), tp_vlan_tpid (u16)
H_NEXT, H_SEC, H_NSEC, H_SNAPLEN, H_LEN, H_STATUS, H_MAC, H_TCI, H_TPID = 0, 4, 8, 12, 16, 20, 24, 32, 36
TPACKET3_HDRLEN = 48 + 20        # header aligned to 16, then struct sockaddr_ll

_REQ3 = struct.Struct("7I")      # struct tpacket_req3
_STATS3 = struct.Struct("3I")    # struct tpacket_stats_v3
_MREQ = struct.Struct("iHH8s")   # struct packet_mreq


class LiveError(InputError):
    """A live capture that cannot be opened or read (one-line message)."""


@dataclass
class LiveStats:
    """Kernel counters of the socket since it was opened (PACKET_STATISTICS resets the kernel's
    counters on every read, so they are summed here). The kernel's tp_packets includes the
    dropped ones: `received` is what reached the ring."""
    packets: int = 0           # tp_packets: passed the filter (received + dropped)
    drops: int = 0             # tp_drops: the ring was full
    freeze_q: int = 0          # tp_freeze_q_cnt: times the ring froze (no free block)
    blocks: int = 0            # ring blocks read
    frames: int = 0            # frames yielded in Chunks
    vlan_restored: int = 0     # frames whose stripped 802.1Q tag was put back

    @property
    def received(self) -> int:
        return self.packets - self.drops


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


Instruction = tuple[int, int, int, int]   # classic BPF: code, jt, jf, k


def parse_bpf(text: str) -> list[Instruction]:
    """A classic BPF program in `tcpdump -ddd` form: the instruction count, then one
    'code jt jf k' line per instruction (commas also accepted, as in `4,40 0 0 12,...`)."""
    parts = [p.split() for p in text.replace(",", "\n").strip().splitlines() if p.strip()]
    try:
        count = int(parts[0][0])
        prog = [(int(a), int(b), int(c), int(d)) for a, b, c, d in parts[1:]]
    except (IndexError, ValueError):
        raise LiveError("BPF program: expected 'COUNT' then 'code jt jf k' lines (the output of tcpdump -ddd)") from None
    if count != len(prog) or not 0 < count <= 4096:
        raise LiveError(f"BPF program: header says {count} instructions, {len(prog)} given (at most 4096)")
    return prog


def compile_bpf(expr: str, interface: str | None = None) -> list[Instruction]:
    """Compile a filter expression with `tcpdump -ddd` (there is no compiler in the standard
    library). Without tcpdump only pre-compiled programs (parse_bpf) are accepted."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise LiveError("a BPF filter expression needs tcpdump to compile it (Debian package tcpdump); "
                        "or give a pre-compiled program (tcpdump -ddd output)")
    cmd = [tcpdump, "-ddd"] + (["-i", interface] if interface else ["-y", "EN10MB"]) + ["--", expr]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LiveError(f"cannot run tcpdump to compile the filter: {exc}") from None
    if out.returncode:
        msg = " ".join((out.stderr or "").split())[:200]
        raise LiveError(f"BPF filter {expr!r} does not compile: {msg}")
    return parse_bpf(out.stdout)


class LiveSource:
    """Packets of one interface from a TPACKET_V3 ring, as Chunks.

    bpf: a classic BPF program (list of (code, jt, jf, k), see parse_bpf/compile_bpf) the kernel
    runs before a packet enters the ring. The ring is block_size * block_count bytes; a block is
    handed over when full or timeout_ms after its first packet."""

    def __init__(self, interface: str, *, promisc: bool = True, bpf: Sequence[Instruction] | None = None,
                 block_size: int = 1 << 20, block_count: int = 32, timeout_ms: int = 50):
        if block_size % mmap.PAGESIZE or block_size < 1 << 16 or block_count < 2:
            raise LiveError("ring blocks must be a multiple of the page size, at least 64 KiB, and at least 2")
        self.interface = interface
        self.block_size = block_size
        self.block_count = block_count
        self.stats = LiveStats()
        self._next_block = 0
        self._frame = 1
        self._sock = self._map = None
        try:
            ifindex = socket.if_nametoindex(interface)
        except OSError:
            raise LiveError(f"no such network interface: {interface}") from None
        try:
            # Protocol 0 receives nothing until bind(), so no packet lands before the ring and filter.
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise LiveError(f"capturing on {interface} needs root or CAP_NET_RAW") from None
        except OSError as exc:
            raise LiveError(f"cannot open a packet socket: {exc.strerror or exc}") from None
        try:
            self._setup(ifindex, promisc, bpf, timeout_ms)
        except OSError as exc:
            self.close()
            raise LiveError(f"cannot capture on {interface}: {exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise

    def _setup(self, ifindex: int, promisc: bool, bpf, timeout_ms: int) -> None:
        s = self._sock
        s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        if bpf:
            attach_filter(s, bpf)
        frame_size = 2048          # only checked against the block size in TPACKET_V3
        s.setsockopt(SOL_PACKET, PACKET_RX_RING, _REQ3.pack(
            self.block_size, self.block_count, frame_size, self.block_size // frame_size * self.block_count,
            timeout_ms, 0, 0))
        self._map = mmap.mmap(s.fileno(), self.block_size * self.block_count, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        self._ring = np.frombuffer(self._map, dtype=np.uint8)
        s.bind((self.interface, ETH_P_ALL))
        hatype = s.getsockname()[3]
        if hatype in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            self.linktype = LINKTYPE_ETHERNET
        elif hatype == ARPHRD_NONE:
            self.linktype = LINKTYPE_RAW
        else:
            raise LiveError(f"{self.interface}: link type {hatype} is not Ethernet or raw IP")
        if promisc:
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, _MREQ.pack(ifindex, PACKET_MR_PROMISC, 0, b""))
        self._poll = select.poll()
        self._poll.register(s.fileno(), select.POLLIN | select.POLLERR)

    def close(self) -> None:
        if self._map is not None:
            self._ring = None
            try:
                self._map.close()
            except BufferError:     # a view is still held; the mapping goes with the socket
                pass
            self._map = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "LiveSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_stats(self) -> LiveStats:
        """Fold the kernel's counters since the last read into `stats` and return it."""
        if self._sock is not None:
            p, d, f = _STATS3.unpack(self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS3.size))
            self.stats.packets += p
            self.stats.drops += d
            self.stats.freeze_q += f
        return self.stats

    def chunks(self, max_records: int = 65536, poll_ms: int = 200, idle_s: float | None = None,
               until=None) -> Iterator[Chunk]:
        """Yield a Chunk of the retired blocks each time some are ready (at most about
        max_records records each). Stops when `until()` is true (checked every poll_ms) or
        after idle_s seconds without a packet; otherwise runs until closed."""
        idle_since = time.monotonic()
        while self._sock is not None:
            if until is not None and until():
                return
            parts = []
            n = 0
            while n < max_records:
                part = self._take_block()
                if part is None:
                    break
                if len(part[1]):
                    parts.append(part)
                    n += len(part[1])
            if parts:
                idle_since = time.monotonic()
                yield self._chunk(parts)
                continue
            if idle_s is not None and time.monotonic() - idle_since >= idle_s:
                return
            self._poll.poll(poll_ms)

    def _take_block(self):
        """The next retired block as (buffer, offsets, caplen, wirelen, ts), handed back to the
        kernel; None when the next block is still the kernel's."""
        base = self._next_block * self.block_size
        ring = self._ring
        status = ring[base + BD_STATUS:base + BD_STATUS + 4].view(np.uint32)
        if not int(status[0]) & TP_STATUS_USER:
            return None
        hdr = ring[base:base + 24].view(np.uint32)
        npk, first, blen = int(hdr[BD_NUM_PKTS // 4]), int(hdr[BD_FIRST // 4]), int(hdr[BD_LEN // 4])
        blen = min(max(blen, first), self.block_size)
        blk = ring[base:base + blen].copy()   # one copy of the whole block; then it is the kernel's again
        status[0] = TP_STATUS_KERNEL
        self._next_block = (self._next_block + 1) % self.block_count
        self.stats.blocks += 1
        part = _unpack_block(blk, npk, first)
        self.stats.vlan_restored += part[5]
        return part[:5]

    def _chunk(self, parts) -> Chunk:
        if len(parts) == 1:
            buf, offs, caps, wires, ts = parts[0]
        else:
            shift = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
            buf = np.concatenate([p[0] for p in parts])
            offs = np.concatenate([p[1] + s for p, s in zip(parts, shift)])
            caps, wires, ts = (np.concatenate([p[i] for p in parts]) for i in (2, 3, 4))
        n = len(offs)
        chunk = Chunk(memoryview(buf), offs, caps, wires, ts, np.full(n, self.linktype, np.int32), self._frame, buf)
        self._frame += n
        self.stats.frames += n
        return chunk


def _unpack_block(blk: np.ndarray, npk: int, first: int):
    """The packets of one copied block: follow tp_next_offset to each tpacket3_hdr (16-aligned,
    so its fields are read through a uint32 view), then put back stripped VLAN tags in place.
    Returns (buffer, offsets, caplen, wirelen, ts, vlan_restored)."""
    u32 = memoryview(blk).cast("I")
    size = len(blk)
    heads = np.empty(npk, np.int64)
    off = first
    n = 0
    while n < npk and 0 < off <= size - TPACKET3_HDRLEN and not off & 3:
        heads[n] = off
        n += 1
        step = u32[off >> 2]
        if step == 0:
            break
        off += step
    heads = heads[:n]
    w = blk.view(np.uint32)
    q = heads >> 2
    snap = w[q + H_SNAPLEN // 4].astype(np.int64)
    wire = w[q + H_LEN // 4].astype(np.int64)
    st = w[q + H_STATUS // 4]
    mac = heads + (w[q + H_MAC // 4] & 0xFFFF)
    ts = w[q + H_SEC // 4].astype(np.float64) + w[q + H_NSEC // 4].astype(np.float64) * 1e-9
    snap = np.minimum(snap, size - mac).clip(0)        # a block never claims past itself
    vlan = np.flatnonzero((st & TP_STATUS_VLAN_VALID) != 0)
    if len(vlan):
        vlan = vlan[(snap[vlan] >= 12) & (mac[vlan] - heads[vlan] >= TPACKET3_HDRLEN + 4)]
        m = mac[vlan]
        tci = w[q[vlan] + H_TCI // 4] & 0xFFFF
        tpid = np.where((st[vlan] & TP_STATUS_VLAN_TPID_VALID) != 0,
                        w[q[vlan] + H_TPID // 4] & 0xFFFF, ETH_P_8021Q)
        # MACs move 4 bytes back into the header room before tp_mac; the tag goes between
        # them and the EtherType. Fields were read above, so overwriting the header is safe.
        src = m[:, None] + np.arange(12)
        blk[src - 4] = blk[src]
        blk[m + 8], blk[m + 9] = tpid >> 8, tpid & 0xFF
        blk[m + 10], blk[m + 11] = tci >> 8, tci & 0xFF
        mac[vlan] -= 4
        snap[vlan] += 4
        wire[vlan] += 4
    return (blk, mac, snap.astype(np.int32), np.minimum(wire, 0x7FFFFFFF).astype(np.int32), ts, len(vlan))


def attach_filter(sock: socket.socket, prog: Sequence[Instruction]) -> None:
    """SO_ATTACH_FILTER with a classic BPF program (struct sock_fprog); the kernel copies it."""
    if not 0 < len(prog) <= 4096:
        raise LiveError("a BPF program has 1 to 4096 instructions")
    arr = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), ctypes.cast(arr, ctypes.POINTER(_SockFilter)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog)))
    except OSError as exc:
        raise LiveError(f"the kernel refused the BPF program: {exc.strerror or exc}") from None


def write_pcap(chunks: Iterator[Chunk], out) -> int:
    """Write Chunks as a classic pcap with nanosecond times (the link type of the first chunk).
    Returns the number of records."""
    n = 0
    for chunk in chunks:
        if n == 0:
            out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, int(chunk.linktype[0]) if len(chunk) else 1))
        ns = np.round(chunk.ts * 1e9).astype(np.int64)
        view = memoryview(chunk.buf)
        for i, (o, c, w) in enumerate(zip(chunk.offsets.tolist(), chunk.caplen.tolist(), chunk.wirelen.tolist())):
            out.write(struct.pack("<IIII", int(ns[i] // 1_000_000_000), int(ns[i] % 1_000_000_000), c, w))
            out.write(view[o:o + c])
        n += len(chunk)
    return n


def main(argv: list[str] | None = None) -> int:
    """Capture to a pcap until idle: `python -m plantguard.capture.live IFACE [--out F] ...`.
    Prints 'ready' when the ring is bound, then one JSON line of counters."""
    import argparse
    import json
    import sys
    ap = argparse.ArgumentParser(prog="python -m plantguard.capture.live")
    ap.add_argument("interface")
    ap.add_argument("--out", help="pcap to write (default: count only)")
    ap.add_argument("--idle", type=float, default=2.0, help="stop after this many seconds without a packet")
    ap.add_argument("--filter", help="BPF filter expression (compiled with tcpdump -ddd)")
    ap.add_argument("--bpf", help="file with a pre-compiled BPF program (tcpdump -ddd output)")
    ap.add_argument("--block-size", type=int, default=1 << 20)
    ap.add_argument("--blocks", type=int, default=32)
    a = ap.parse_args(argv)
    try:
        prog = None
        if a.bpf:
            with open(a.bpf) as fh:
                prog = parse_bpf(fh.read())
        elif a.filter:
            prog = compile_bpf(a.filter, a.interface)
        src = LiveSource(a.interface, bpf=prog, block_size=a.block_size, block_count=a.blocks)
    except (InputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    first = last = None
    frames = 0

    def timed(chunks):
        nonlocal first, last, frames
        for chunk in chunks:
            now = time.monotonic()
            first = first if first is not None else now
            last = now
            frames += len(chunk)
            yield chunk

    with src:
        print("ready", flush=True)
        chunks = timed(src.chunks(idle_s=a.idle))
        if a.out:
            with open(a.out, "wb") as fh:
                write_pcap(chunks, fh)
        else:
            for _ in chunks:
                pass
        st = src.read_stats()
    print(json.dumps({"frames": frames, "packets": st.packets, "drops": st.drops, "freeze_q": st.freeze_q,
                      "blocks": st.blocks, "vlan_restored": st.vlan_restored,
                      "seconds": (last - first) if first is not None else 0.0}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
