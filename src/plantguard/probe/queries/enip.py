"""EtherNet/IP: the encapsulation ListIdentity command, unicast over TCP (it needs no session)."""
from __future__ import annotations

import struct

from plantguard.probe.query import Exchange, Query, Target

LIST_IDENTITY = 0x0063
ENCAP = struct.Struct("<HHII8sI")     # command, length, session, status, sender context, options


def list_identity() -> bytes:
    return ENCAP.pack(LIST_IDENTITY, 0, 0, 0, b"plantgrd", 0)


def response_length(buf: bytes) -> int | None:
    return ENCAP.size + struct.unpack_from("<H", buf, 2)[0] if len(buf) >= ENCAP.size else None


def identity(t: Target) -> Exchange:
    yield list_identity()


QUERIES = (
    Query(protocol="enip", name="list-identity", title="ListIdentity (encapsulation command 0x63)",
          transport="tcp", port=44818, exchange=identity, response_length=response_length,
          reads="vendor, device type, product code and name, revision, serial, status"),
)
