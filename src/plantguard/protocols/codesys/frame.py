"""CODESYS V3 frames, layer by layer, as the public descriptions lay them out:

- TCP block driver (TCP 11740-11743): a 4-byte magic, bytes 00 01 17 E8 (0xE8170100 read
  little-endian), and a little-endian u32 length counting the whole block including these 8
  bytes (Microsoft's CODESYS V3 research tooling `BlockDriverLayerTcp`; nmap's codesys script
  constants TCP_MAGIC = 0xe8170100).
- Datagram layer (bare on UDP 1740-1743, after the block driver on TCP): magic 0xC5; hop info
  (hop count in bits 3-7, header length in 16-bit words in bits 0-2); packet info (priority
  bits 6-7, signal bit 5, address type bit 4, data block length bits 0-3); service id; message
  id; address lengths in 16-bit words (sender bits 4-7, receiver bits 0-3); from header length
  x 2 on the receiver then the sender address, then padding to a multiple of 4 (nmap library
  `codesys3.lua` NameServiceRequest / NameServiceResponse; Microsoft's `DatagramLayer`).
- Name service payload (datagram services 3 = name server request, 4 = name service client
  reply): package type u16 (0xC201 resolve name, 0xC202 resolve address, 0xC203 resolve
  gateway, 0xC280 identification), version u16 (0x0103 / 0x0400), request id u32 (both sources).
- Channel layer (datagram service 0x40): a type byte (0x01 application block, 0x02 block ack,
  0x03 keep-alive, 0xC2 get info, 0xC3 open channel, 0x83 open channel reply, 0xC4 close
  channel); an application block is type, flags (bit 0: first block of a message), channel id
  u16, block id u32, ack id u32 and, in the first block only, the remaining message size u32
  and its CRC-32 u32 (Microsoft's `ApplicationBlockFirst` / `ApplicationBlock`).
- Layer-7 service header (the first application block's data): header tag u16 (0xCD55 the
  CODESYS protocol, 0x7557 its encrypted form; CmpSrvItf.m4 HEADERTAG_3S / HEADERTAG_CRYPT),
  header size u16 counting from the service group on, service group u16 (0x80 set on
  replies: SG_REPLY_PREFIX), service u16, session id u32, service length u32 (CODESYS library
  documentation, PlcServiceHeader), then binary tags.
- Binary tags: id and size each a little-endian base-128 number (7 bits a byte, bit 7 says
  more follow), then the data; ids from 0x80 on hold sub-tags (Microsoft's `Tag`).

All integers little-endian unless noted. Every reader here is bounded by the bytes given."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from plantguard.protocols._pdustream import BAD, NEED_MORE
from plantguard.protocols.base import printable

TCP_MAGIC = b"\x00\x01\x17\xe8"
TCP_HEADER = 8
MAX_TCP = 0x10000                  # a block driver block is at most this long here (bounds reassembly)
DG_MAGIC = 0xC5
DG_MIN = 6                         # magic, hop info, packet info, service, message id, address lengths

# datagram layer services
SVC_ADDRESS_REQ, SVC_ADDRESS_REPLY, SVC_NS_SERVER, SVC_NS_CLIENT, SVC_CHANNEL = 1, 2, 3, 4, 0x40
DG_SERVICES = {SVC_ADDRESS_REQ: "Address notification request", SVC_ADDRESS_REPLY: "Address notification reply",
               SVC_NS_SERVER: "Name service request", SVC_NS_CLIENT: "Name service reply",
               SVC_CHANNEL: "Channel manager"}
NS_PACKAGES = {0xC201: "Resolve name", 0xC202: "Resolve address", 0xC203: "Resolve gateway",
               0xC280: "Identification"}
NS_IDENTIFICATION = 0xC280
NS_VERSIONS = frozenset({0x0103, 0x0400})

CHANNEL_TYPES = {0x01: "Application block", 0x02: "Application block ack", 0x03: "Keep alive",
                 0xC2: "Get info", 0xC3: "Open channel", 0x83: "Open channel reply", 0xC4: "Close channel"}
CH_BLOCK = 0x01
BLOCK_FIRST = 0x01                 # flags bit 0: the block that starts a message
BLOCK_FIRST_SIZE = 20              # type, flags, channel, block id, ack id, remaining size, CRC
SRV_TAG_PLAIN, SRV_TAG_CRYPT = 0xCD55, 0x7557
SRV_FIXED = 16                     # header tag .. service length (the header size field may add more)
REPLY_BIT = 0x80
TAG_ERROR = 0xFF7F                 # CmpSrvItf.m4: global reply tag carrying an error code
MAX_TAGS = 64


@dataclass(slots=True)
class Datagram:
    hop_count: int
    header_words: int
    priority: int
    signal: int
    address_type: int
    service: int
    message_id: int
    receiver: bytes
    sender: bytes
    payload: bytes


def parse_datagram(b: bytes) -> Datagram | None:
    """The datagram layer at b[0:]; None unless magic, header length and addresses fit."""
    if len(b) < DG_MIN or b[0] != DG_MAGIC:
        return None
    hop, info, service, msg, lens = b[1], b[2], b[3], b[4], b[5]
    words = hop & 7
    rlen, slen = (lens & 0x0F) * 2, (lens >> 4) * 2
    start = words * 2
    if words < 3:                   # the six fixed bytes are the least a header holds
        return None
    end = start + rlen + slen
    payload_at = end + (-end % 4)
    if payload_at > len(b):
        return None
    return Datagram(hop >> 3, words, info >> 6, (info >> 5) & 1, (info >> 4) & 1, service, msg,
                    bytes(b[start:start + rlen]), bytes(b[start + rlen:end]), bytes(b[payload_at:]))


def plausible_datagram(b: bytes) -> bool:
    """A datagram header as runtimes send it (header of 3 or 4 words, a known service) with a
    payload of that service's shape: a name service package of a known type and version, a
    channel layer message of a known type."""
    if len(b) > MAX_TCP:
        return False
    d = parse_datagram(b)
    if d is None or d.header_words not in (3, 4) or d.service not in DG_SERVICES:
        return False
    p = d.payload
    if d.service in (SVC_NS_SERVER, SVC_NS_CLIENT):
        if len(p) < 8:
            return False
        return ns_package(p) is not None
    if d.service == SVC_CHANNEL:
        return len(p) >= 4 and p[0] in CHANNEL_TYPES
    return True


def ns_package(p: bytes) -> int | None:
    """The package type of a name service payload, None when it is none of the known ones. A
    runtime writes the header in its own byte order (the reply's byte order flag says which;
    Microsoft's nmap script reads the header by that flag), so either order is accepted."""
    if len(p) < 8:
        return None
    for e in "<>":
        package, version = struct.unpack_from(e + "HH", p, 0)
        if package in NS_PACKAGES and (version in NS_VERSIONS or package != NS_IDENTIFICATION):
            return package
    return None


def tcp_frame_len(buf: bytes, off: int) -> int:
    """Bytes of the block driver block at `off` (NEED_MORE / BAD for _pdustream.split)."""
    if len(buf) - off < TCP_HEADER:
        return NEED_MORE
    if bytes(buf[off:off + 4]) != TCP_MAGIC:
        return BAD
    (length,) = struct.unpack_from("<I", buf, off + 4)
    if not TCP_HEADER + DG_MIN <= length <= MAX_TCP:
        return BAD
    return length


def plausible_tcp(payload: bytes) -> bool:
    """Whole block driver blocks filling the payload, each holding a plausible datagram."""
    off, n, seen = 0, len(payload), 0
    while off < n and seen < 8:
        size = tcp_frame_len(payload, off)
        if size < 0 or off + size > n or not plausible_datagram(payload[off + TCP_HEADER:off + size]):
            return False
        off, seen = off + size, seen + 1
    return seen > 0 and off == n


@dataclass(slots=True)
class Service:
    """One layer-7 service header and the tag bytes after it."""
    protocol: int
    group: int                     # without the reply bit
    reply: bool
    service: int
    session: int
    length: int
    body: bytes


def parse_block(p: bytes) -> tuple[int, int, bytes] | None:
    """(channel id, flags, data) of a first application block; None for any other channel
    message (later blocks continue a message whose header came in the first)."""
    if len(p) < BLOCK_FIRST_SIZE or p[0] != CH_BLOCK or not p[1] & BLOCK_FIRST:
        return None
    (channel,) = struct.unpack_from("<H", p, 2)
    return channel, p[1], bytes(p[BLOCK_FIRST_SIZE:])


def parse_service(b: bytes) -> Service | None:
    if len(b) < SRV_FIXED:
        return None
    tag, size, group, service, session, length = struct.unpack_from("<HHHHII", b, 0)
    if tag not in (SRV_TAG_PLAIN, SRV_TAG_CRYPT) or not 12 <= size <= 256 or size % 2:
        return None
    return Service(tag, group & 0x7F, bool(group & REPLY_BIT), service, session, length, bytes(b[4 + size:]))


def _number(b: bytes, off: int) -> tuple[int, int]:
    """A base-128 tag number at `off`: (value, next offset); raises IndexError past the end."""
    value, shift = 0, 0
    while True:
        byte = b[off]
        off += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80 or shift > 28:
            return value, off
        shift += 7


def top_tags(b: bytes, limit: int = MAX_TAGS) -> list[tuple[int, bytes]]:
    """The top-level (id, data) tags of a service body, stopping at the first one that does
    not fit; at most `limit`."""
    out, off = [], 0
    while off < len(b) and len(out) < limit:
        try:
            tid, off = _number(b, off)
            size, off = _number(b, off)
        except IndexError:
            break
        if off + size > len(b):
            break
        out.append((tid, bytes(b[off:off + size])))
        off += size
    return out


def error_code(body: bytes) -> int | None:
    """The code of a reply's global error tag (TAG_ERROR), None when there is none."""
    for tid, data in top_tags(body):
        if tid == TAG_ERROR and len(data) in (2, 4):
            return int.from_bytes(data, "little")
    return None


# CmpDeviceItf "Online service tags": the device login request carries TAG_DEV_CREDENTIALS
# (0x81) holding TAG_DEV_USER (0x10) and TAG_DEV_PASSWORD (0x11, encrypted per
# TAG_DEV_CRYPT_TYPE 0x22); its reply TAG_DEV_REPLY_LOGIN (0x82) holds the result (0x20, u16)
DEVICE_LOGIN = (0x01, 0x02)
TAG_DEV_CREDENTIALS, TAG_DEV_USER = 0x81, 0x10
TAG_DEV_REPLY_LOGIN, TAG_DEV_REPLY_LOGIN_RESULT = 0x82, 0x20


def login_user(body: bytes) -> str | None:
    """The user name of a device login request ('' when the credentials tag has none), None
    when the request has no credentials tag."""
    for tid, data in top_tags(body):
        if tid == TAG_DEV_CREDENTIALS:
            for sub, value in top_tags(data):
                if sub == TAG_DEV_USER:
                    return printable(value.split(b"\x00")[0], 128)
            return ""
    return None


def login_result(body: bytes) -> int | None:
    """The non-zero result code of a device login reply, None when it succeeded or says none."""
    for tid, data in top_tags(body):
        if tid == TAG_DEV_REPLY_LOGIN:
            for sub, value in top_tags(data):
                if sub == TAG_DEV_REPLY_LOGIN_RESULT and len(value) >= 2:
                    code = int.from_bytes(value[:2], "little")
                    return code or None
    return None
