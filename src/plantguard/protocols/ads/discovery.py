"""TwinCAT's UDP service on port 48899 ("ADS discovery"): a search that every TwinCAT router
answers with its AMS NetId, host name, TwinCAT version and operating system, and the "add route"
request an engineering tool sends to be let in, with a Windows user name and password in clear.

Layout (little-endian): magic 0x71146603, invoke id, service id (bit 31 set in replies), the
sender's AMS NetId (6 bytes) and AMS port, a tag count, then that many tags (tag u16, length u16,
value). tshark 4.0 does not dissect this; the layout and tag numbers are read from the bytes of
the shared captures (a request with no tags, a reply with tags 5, 4, 3; an add-route request
with tags 12, 7, 13, 2, 5; its reply with tag 1) and agree with Beckhoff's documented fields."""
from __future__ import annotations

import struct

from plantguard.protocols._header import header
from plantguard.protocols.ads.frame import net_id
from plantguard.protocols.base import cstr, printable

DISCOVERY_PORT = 48899
MAGIC = 0x71146603
HEAD = header("AdsDiscovery", "<", ("magic", "I"), ("invoke", "I"), ("service", "I"), ("net_id", "6s"),
              ("port", "H"), ("tags", "I"))
TAG = header("AdsDiscoveryTag", "<", ("tag", "H"), ("length", "H"))
REPLY = 0x80000000
SEARCH, ADD_ROUTE = 1, 6
SERVICES = {SEARCH: "ADS Discovery", ADD_ROUTE: "ADS Add Route"}

# tag numbers
STATUS, PASSWORD, TC_VERSION, OS_VERSION, HOST, NET_ID, ROUTE_NAME, USER = 1, 2, 3, 4, 5, 7, 12, 13
MAX_TAGS = 32
# OSVERSIONINFO dwPlatformId
PLATFORMS = {0: "Windows 3.x (Win32s)", 1: "Windows 9x", 2: "Windows NT", 3: "Windows CE"}


def plausible(payload: bytes) -> bool:
    """The magic, a service id of the protocol's (bit 31 aside) and a tag count that fits."""
    if len(payload) < HEAD.size:
        return False
    h = HEAD.unpack_from(payload, 0)
    return h.magic == MAGIC and 0 < (h.service & ~REPLY) < 0x100 and h.tags <= MAX_TAGS


def parse(payload: bytes):
    """(header, {tag: value bytes}) of one datagram; tags cut short are left out."""
    h = HEAD.unpack_from(payload, 0)
    tags: dict[int, bytes] = {}
    off = HEAD.size
    for _ in range(min(h.tags, MAX_TAGS)):
        if off + TAG.size > len(payload):
            break
        tag, length = TAG.unpack_from(payload, off)
        off += TAG.size
        if off + length > len(payload):
            break
        tags.setdefault(tag, bytes(payload[off:off + length]))
        off += length
    return h, tags


def text(value: bytes | None) -> str | None:
    """A NUL-terminated string tag as text (None when empty)."""
    if not value:
        return None
    s = printable(cstr(value).encode("latin-1"))
    return s or None


def tc_version(value: bytes | None) -> str | None:
    """Tag 3: major, minor (one byte each), build (u16): "2.11.2228"."""
    if not value or len(value) < 4:
        return None
    major, minor, build = struct.unpack_from("<BBH", value, 0)
    return f"{major}.{minor}.{build}"


def os_version(value: bytes | None) -> str | None:
    """Tag 4: an OSVERSIONINFO (size, major, minor, build, platform id, service pack string in
    UTF-16): "Windows CE 6.0"."""
    if not value or len(value) < 20:
        return None
    _size, major, minor, build, platform = struct.unpack_from("<5I", value, 0)
    name = PLATFORMS.get(platform, f"Windows (platform {platform})")
    out = f"{name} {major}.{minor}" + (f" build {build}" if build else "")
    csd = value[20:276]
    if csd:
        sp = csd.decode("utf-16-le", "replace").split("\x00", 1)[0]
        sp = printable(sp.encode("utf-8"))
        if sp:
            out += f" {sp}"
    return out


def identity(h, tags: dict[int, bytes]) -> dict:
    """What a search reply says of the TwinCAT system that sent it."""
    ident = {"vendor": "Beckhoff", "ams_net_id": net_id(h.net_id)}
    host = text(tags.get(HOST))
    if host:
        ident["name"] = host
    version = tc_version(tags.get(TC_VERSION))
    if version:
        ident.update(product="TwinCAT", firmware=version, software=f"TwinCAT {version}")
    osv = os_version(tags.get(OS_VERSION))
    if osv:
        ident["os"] = osv
    return ident


def route_detail(h, tags: dict[int, bytes]) -> str:
    parts = []
    name = text(tags.get(ROUTE_NAME))
    if name:
        parts.append(f"route {name}")
    nid = tags.get(NET_ID)
    if nid and len(nid) == 6:
        parts.append(f"AMS NetId {net_id(nid)}")
    host = text(tags.get(HOST))
    if host:
        parts.append(f"address {host}")
    return " ".join(parts) or f"from AMS NetId {net_id(h.net_id)}"


def status(tags: dict[int, bytes]) -> int | None:
    value = tags.get(STATUS)
    if value is None or len(value) < 4:
        return None
    return struct.unpack_from("<I", value, 0)[0]
