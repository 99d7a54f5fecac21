"""Frame and capture builders for tests: Ethernet/IPv4/IPv6/TCP/UDP frames, one TCP
conversation, classic pcap (µs/ns, either byte order) and pcapng (several interfaces with their
own link type and timestamp resolution, EPB/SPB, either byte order), BER for SNMP, and a reader
for classic pcap. Written here so tests never depend on a capture library."""
from __future__ import annotations

import socket
import struct

CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


# --- capture files -----------------------------------------------------------------------------

def pcap_bytes(frames, linktype: int = 1, nano: bool = False, big: bool = False,
               snaplen: int = 262144) -> bytes:
    """frames: iterable of (ts_seconds, frame_bytes) or (ts, frame_bytes, orig_len)."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    unit = 1_000_000_000 if nano else 1_000_000
    for item in frames:
        ts, data = item[0], item[1]
        orig = item[2] if len(item) > 2 else len(data)
        sec = int(ts)
        frac = int(round((ts - sec) * unit))
        out.append(struct.pack(e + "IIII", sec, frac, len(data), orig))
        out.append(data)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def pcapng_block(e: str, btype: int, body: bytes) -> bytes:
    """One pcapng block of type `btype` (byte order `e`: "<" or ">"), body padded to 32 bits."""
    body = _pad4(body)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def pcapng_bytes(interfaces, packets, big: bool = False, simple: bool = False) -> bytes:
    """interfaces: list of (linktype, tsresol_byte or None). packets: list of
    (interface_index, ts_seconds, frame_bytes). simple=True writes interface-0 packets as SPB."""
    e = ">" if big else "<"
    shb = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    out = [pcapng_block(e, 0x0A0D0D0A, shb)]
    res = []
    for lt, tsresol in interfaces:
        opts = b""
        if tsresol is not None:
            opts += struct.pack(e + "HH", 9, 1) + _pad4(bytes([tsresol]))
        opts += struct.pack(e + "HH", 0, 0)
        out.append(pcapng_block(e, 1, struct.pack(e + "HHI", lt, 0, 262144) + opts))
        if tsresol is None:
            res.append(1e-6)
        elif tsresol & 0x80:
            res.append(2.0 ** -(tsresol & 0x7F))
        else:
            res.append(10.0 ** -tsresol)
    for ifid, ts, data in packets:
        if simple and ifid == 0:
            out.append(pcapng_block(e, 3, struct.pack(e + "I", len(data)) + data))
            continue
        t = int(round(ts / res[ifid]))
        out.append(pcapng_block(e, 6, struct.pack(e + "IIIII", ifid, t >> 32, t & 0xFFFFFFFF,
                                                  len(data), len(data)) + data))
    return b"".join(out)


def read_pcap(path) -> list[tuple[float, bytes]]:
    """(timestamp, frame) of each record of a classic pcap file (Ethernet link type)."""
    data = open(path, "rb").read()
    magic = data[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    unit = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    assert struct.unpack(e + "I", data[20:24])[0] == 1, "Ethernet captures only"
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        out.append((sec + frac * unit, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


# --- frames ------------------------------------------------------------------------------------

def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


def eth(src: str, dst: str, ethertype: int, payload: bytes, vlans=()) -> bytes:
    tags = b"".join(struct.pack("!HH", 0x8100, v) for v in vlans)
    return mac(dst) + mac(src) + tags + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, flags_frag: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, flags_frag, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr + payload


def ipv6(src: str, dst: str, nxt: int, payload: bytes) -> bytes:
    return (struct.pack("!IHBB", 0x60000000, len(payload), nxt, 64)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload)


def tcp(sport: int, dport: int, payload: bytes = b"", flags: int = 0x18, seq: int = 1) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp_frame(src, dst, sport, dport, payload=b"", flags=0x18, seq=1, vlans=(),
              smac=CLIENT_MAC, dmac=SERVER_MAC) -> bytes:
    return eth(smac, dmac, 0x0800, ipv4(src, dst, 6, tcp(sport, dport, payload, flags, seq)), vlans)


def udp_frame(src, dst, sport, dport, payload=b"", vlans=(),
              smac=CLIENT_MAC, dmac=SERVER_MAC) -> bytes:
    return eth(smac, dmac, 0x0800, ipv4(src, dst, 17, udp(sport, dport, payload)), vlans)


def tcp_conversation(client: str, server: str, port: int, exchanges, sport: int = 40000, *,
                     client_mac: str = CLIENT_MAC, server_mac: str = SERVER_MAC,
                     t0: float = 1.7e9, step: float = 0.01) -> list[tuple[float, bytes]]:
    """(ts, frame) of one TCP conversation: the three-way handshake, then each (from_client,
    payload) of `exchanges` in turn, with consistent sequence numbers, `step` seconds apart."""
    seq = {True: 1000, False: 5000}
    ends = {True: (client, server, client_mac, server_mac, sport, port),
            False: (server, client, server_mac, client_mac, port, sport)}
    segments = [(True, b"", 0x02, seq[True] - 1), (False, b"", 0x12, seq[False] - 1), (True, b"", 0x10, seq[True])]
    for from_client, data in exchanges:
        segments.append((from_client, data, 0x18, seq[from_client]))
        seq[from_client] += len(data)
    out = []
    for k, (from_client, data, flags, sq) in enumerate(segments):
        src, dst, ma, mb, sp, dp = ends[from_client]
        out.append((t0 + k * step, tcp_frame(src, dst, sp, dp, data, flags=flags, seq=sq, smac=ma, dmac=mb)))
    return out


def tcp_conversation_pcap(client: str, server: str, port: int, exchanges, sport: int = 40000, **kw) -> bytes:
    """A pcap of one TCP conversation (see tcp_conversation)."""
    return pcap_bytes(tcp_conversation(client, server, port, exchanges, sport, **kw))


# --- BER (SNMP) --------------------------------------------------------------------------------

def ber(tag: int, body: bytes) -> bytes:
    """A BER TLV, definite length (short form below 128 bytes, long form above)."""
    n = len(body)
    if n < 128:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def ber_oid(text: str) -> bytes:
    """A BER OBJECT IDENTIFIER TLV for dotted text ("1.3.6.1.2.1.1.5.0")."""
    arcs = [int(x) for x in text.split(".")]
    out = bytes([arcs[0] * 40 + arcs[1]])
    for a in arcs[2:]:
        enc = [a & 0x7F]
        a >>= 7
        while a:
            enc.insert(0, 0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(enc)
    return ber(0x06, out)
