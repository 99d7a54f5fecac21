"""CODESYS V2 runtimes (TCP 1200 and 2455): the identification exchange only.

Facts from Digital Bond's Redpoint `codesys-v2-discover.nse`: the tool sends `BB BB 01 00 00 00
01` (little-endian runtimes) or `BB BB 01 00 00 01 01` (big-endian ones); a runtime's reply starts
with 0xBB and holds NUL-terminated text at offsets 64 (operating system name), 96 (operating
system version) and 128 (product type). A published run shows "OS Name: Linux 3.16.0" and
"Product Type: AIC-PLC-01". V2 login and program download services are not decoded: their
layout could not be verified from a public source."""
from __future__ import annotations

from plantguard.protocols.base import cstr, printable

V2_PORTS = (1200, 2455)
IDENTIFY_QUERIES = {b"\xbb\xbb\x01\x00\x00\x00\x01": "little-endian", b"\xbb\xbb\x01\x00\x00\x01\x01": "big-endian"}
OS_NAME, OS_VERSION, PRODUCT = 64, 96, 128
FIELD = 32
MIN_REPLY = PRODUCT + 1


def plausible_v2(payload: bytes) -> bool:
    """On the V2 ports: the identification request, or a reply (0xBB, long enough, printable
    text in its three fields)."""
    if payload in IDENTIFY_QUERIES:
        return True
    return bool(identity_from_v2_reply(payload))


def _text(b: bytes, off: int) -> str:
    raw = cstr(b[off:off + FIELD], "latin-1")
    return printable(raw.encode("utf-8"), FIELD)


def identity_from_v2_reply(b: bytes) -> dict:
    """Operating system and product type from an identification reply; {} when it is none."""
    if len(b) < MIN_REPLY or b[0] != 0xBB or len(b) > 4096:
        return {}
    os_name, os_version, product = _text(b, OS_NAME), _text(b, OS_VERSION), _text(b, PRODUCT)
    if not product or not product[0].isalnum():
        return {}
    ident = {"product": product}
    if os_name:
        ident["os"] = f"{os_name} {os_version}".strip()
    return ident
