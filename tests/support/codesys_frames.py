"""CODESYS V3 frames built from the public layouts (see protocols/codesys/frame.py for the
sources): the TCP block driver, the datagram layer, name service requests and Identification
replies, channel layer first blocks, the layer-7 service header and binary tags. Written for
the tests independently of the decoder: every field is laid out here by hand."""
from __future__ import annotations

import struct
import zlib

from support.packets import tcp_conversation, udp_frame

PLC, TOOL = "10.0.7.20", "10.0.7.5"
# the published example of nmap's codesys-plc-info script (a WAGO PFC200)
WAGO = {"vendor": "WAGO", "device": "WAGO 750-8206 PFC200 2ETH RS CAN DPS", "node": "PFC200-438F4C",
        "target_id": 0x10061204, "target_type": 0x1000, "version": (5, 15, 4, 0)}
LINUX = {"vendor": "3S - Smart Software Solutions GmbH", "device": "CODESYS Control for Linux SL",
         "node": "plc-line-3", "target_id": 0x00000010, "target_type": 0x1006, "version": (3, 5, 14, 0),
         "serial": "SN-0042"}


def datagram(service: int, payload: bytes, receiver: bytes = b"", sender: bytes = b"\x00\x0a",
             words: int = 3, hop: int = 13, priority: int = 1, message: int = 0, broadcast_id: int = 0x1234) -> bytes:
    """Datagram layer: magic, hop info, packet info, service, message id, address lengths, (a
    broadcast id when the header is 4 words), receiver and sender addresses, padding to 4."""
    head = bytes([0xC5, (hop << 3) | words, priority << 6, service, message,
                  (len(sender) // 2) << 4 | (len(receiver) // 2)])
    if words == 4:
        head += struct.pack(">H", broadcast_id)
    head += receiver + sender
    return head + bytes(-len(head) % 4) + payload


def tcp_address(ip: str, port: int) -> bytes:
    """A TCP block driver address: port (big-endian) and IPv4 address, 3 words."""
    return struct.pack(">H", port) + bytes(int(x) for x in ip.split("."))


def block(dg: bytes) -> bytes:
    """TCP block driver header: magic 00 01 17 E8, little-endian length of the whole block."""
    return b"\x00\x01\x17\xe8" + struct.pack("<I", 8 + len(dg)) + dg


def ns_request(package: int = 0xC202, version: int = 0x0400, request: int = 0x04206969) -> bytes:
    return struct.pack("<HHI", package, version, request)


def ns_identification(ident: dict, request: int = 0x04206969, parent: bytes = b"", intel: bool = True) -> bytes:
    """A name service Identification payload (package type 0xC280, version 4.0)."""
    e = "<" if intel else ">"
    enc = "utf-16-le" if intel else "utf-16-be"
    node, dev, vendor = (ident[k].encode(enc) for k in ("node", "device", "vendor"))
    serial = ident.get("serial", "").encode("ascii")
    a, b, c, d = ident["version"]
    fixed = struct.pack(e + "HHI", 0xC280, 0x0400, request)
    fixed += struct.pack(e + "HBBHHHH", 8, 1 if intel else 0, 0, len(parent), len(node) // 2, len(dev) // 2,
                         len(vendor) // 2)
    fixed += struct.pack(e + "IIII", ident["target_type"], ident["target_id"], a << 24 | b << 16 | c << 8 | d, 0)
    fixed += bytes([len(serial), 0, 2]) + bytes(9)
    assert len(fixed) == 48
    return (fixed + parent + node + b"\0\0" + dev + b"\0\0" + vendor + b"\0\0" + serial + b"\0")


def tag(tid: int, data: bytes) -> bytes:
    """A binary tag: id and size as little-endian base-128 numbers, then the data."""
    def num(v: int) -> bytes:
        out = bytearray()
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                return bytes(out)
    return num(tid) + num(len(data)) + data


def service(group: int, svc: int, body: bytes = b"", session: int = 0x11223344, reply: bool = False,
            header_tag: int = 0xCD55, extended: bool = True) -> bytes:
    """Layer-7 service header (header size 16 with customer id and reserved, or 12 without)."""
    size = 16 if extended else 12
    head = struct.pack("<HHHHII", header_tag, size, group | (0x80 if reply else 0), svc, session, len(body))
    return head + (bytes(4) if extended else b"") + body


def first_block(data: bytes, channel: int = 7, blk: int = 1, ack: int = 0, request: bool = True) -> bytes:
    """Channel layer: the first application block of a message (flags bit 0 set)."""
    flags = 0x01 | (0x80 if request else 0)
    return struct.pack("<BBHIIII", 0x01, flags, channel, blk, ack, len(data), zlib.crc32(data)) + data


def channel_tcp(srv: bytes, from_client: bool, **kw) -> bytes:
    src, dst = (tcp_address(TOOL, 40000), tcp_address(PLC, 11740))
    if not from_client:
        src, dst = dst, src
    return block(datagram(0x40, first_block(srv, request=from_client, **kw), receiver=dst, sender=src))


def discovery_frames(ident: dict = LINUX, t0: float = 1.7e9) -> list[tuple[float, bytes]]:
    """A name service broadcast from the tool and the runtime's Identification reply (UDP 1740)."""
    req = datagram(3, ns_request(), words=4, hop=14)
    rep = datagram(4, ns_identification(ident), receiver=b"\x00\x05", sender=b"\x00\x14")
    return [(t0, udp_frame(TOOL, "255.255.255.255", 1740, 1740, req, dmac="ff:ff:ff:ff:ff:ff")),
            (t0 + 0.01, udp_frame(PLC, TOOL, 1740, 1740, rep, smac="02:00:00:00:00:02",
                                  dmac="02:00:00:00:00:01"))]


def session_exchanges() -> list[tuple[bool, bytes]]:
    """An engineering session: device login, application login, download, start, a variable
    read, a refused stop (global error tag), an encrypted service, reset."""
    err = tag(0xFF7F, struct.pack("<H", 0x0012))
    creds = tag(0x22, b"\x01\x00\x00\x00") + tag(0x81, tag(0x10, b"engineer\x00") + tag(0x11, bytes(range(16))))
    ex = [(True, channel_tcp(service(1, 0x02, creds), True)),
          (False, channel_tcp(service(1, 0x02, tag(0x82, tag(0x20, b"\0\0")), reply=True), False)),
          (True, channel_tcp(service(2, 0x01, tag(0x81, tag(0x10, b"Application\0"))), True)),
          (False, channel_tcp(service(2, 0x01, tag(0x01, b"\0\0"), reply=True), False)),
          (True, channel_tcp(service(2, 0x05, tag(0x01, b"\xAA" * 64)), True)),
          (True, channel_tcp(service(2, 0x10, tag(0x11, b"\x01\0\0\0")), True)),
          (True, channel_tcp(service(0x1B, 0x01, tag(0x01, b"\x01\0\0\0")), True)),
          (True, channel_tcp(service(2, 0x11, tag(0x11, b"\x01\0\0\0")), True)),
          (False, channel_tcp(service(2, 0x11, err, reply=True), False)),
          (True, channel_tcp(service(2, 0x12, tag(0x10, b"\0\0\0\0"), header_tag=0x7557), True)),
          (True, channel_tcp(service(2, 0x12, tag(0x10, b"\0\0\0\0"), extended=False), True))]
    return ex


def session_frames(t0: float = 1.7e9 + 1) -> list[tuple[float, bytes]]:
    return tcp_conversation(TOOL, PLC, 11740, session_exchanges(), t0=t0)


def v2_reply(os_name: str = "Linux", os_version: str = "3.16.0", product: str = "AIC-PLC-01") -> bytes:
    """A CODESYS V2 identification reply: 0xBB first, NUL-terminated text at 64, 96 and 128."""
    b = bytearray(b"\xbb\xbb" + bytes(158))
    for off, text in ((64, os_name), (96, os_version), (128, product)):
        raw = text.encode("latin-1")[:31]
        b[off:off + len(raw)] = raw
    return bytes(b)


V2_QUERY = b"\xbb\xbb\x01\x00\x00\x00\x01"
