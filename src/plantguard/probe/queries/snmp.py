"""SNMP: a v2c GetRequest of the system group, and SNMPv3 engine-id discovery (an
unauthenticated GetRequest with no varbinds and the reportable flag: the agent's Report carries
its msgAuthoritativeEngineID, which names its vendor, without any credential).

The v2c query sends a community string, so it is itself a credential test: whether the agent
answers tells whether that community is accepted. The community is read from the environment
(PLANTGUARD_PROBE_COMMUNITY, default "public"), never from the command line, so it does not
end up in shell histories or process lists."""
from __future__ import annotations

import os

from plantguard.probe.query import Exchange, Query, Target

COMMUNITY_ENV = "PLANTGUARD_PROBE_COMMUNITY"
SYSTEM_GROUP = ("1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0",   # sysDescr, ObjectID, UpTime
                "1.3.6.1.2.1.1.4.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0")   # sysContact, Name, Location
V2C, V3 = 1, 3
GET = 0xA0
USM = 3
REPORTABLE = 0x04
MAX_SIZE = 1472            # what fits one Ethernet frame: the agent should answer in one datagram
REQUEST_ID = 0x5047        # any value: the socket is connected, only the agent's answers are read


# --- BER encoding (definite lengths; the reading side is protocols/_ber.py) -------------------

def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def integer(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def get_pdu(request_id: int, oids: tuple[str, ...]) -> bytes:
    varbinds = sequence(*(sequence(oid(o), tlv(0x05, b"")) for o in oids))
    return tlv(GET, integer(request_id) + integer(0) + integer(0) + varbinds)


# --- the requests -------------------------------------------------------------------------------

def community() -> bytes:
    return os.environ.get(COMMUNITY_ENV, "public").encode("utf-8")


def system_get(community_string: bytes, request_id: int = REQUEST_ID) -> bytes:
    return sequence(integer(V2C), octets(community_string), get_pdu(request_id, SYSTEM_GROUP))


def engine_discovery(msg_id: int = REQUEST_ID) -> bytes:
    """RFC 3414 4: discovery with an empty engine id and user, noAuthNoPriv, reportable."""
    header = sequence(integer(msg_id), integer(MAX_SIZE), octets(bytes([REPORTABLE])), integer(USM))
    usm = octets(sequence(octets(b""), integer(0), integer(0), octets(b""), octets(b""), octets(b"")))
    scoped = sequence(octets(b""), octets(b""), get_pdu(msg_id, ()))
    return sequence(integer(V3), header, usm, scoped)


def system(t: Target) -> Exchange:
    yield system_get(community())


def engine_id(t: Target) -> Exchange:
    yield engine_discovery()


QUERIES = (
    Query(protocol="snmp", name="system",
          title=f"v2c GetRequest of the system group, community from ${COMMUNITY_ENV} (default \"public\"): "
                "sending a community is itself a credential test",
          transport="udp", port=161, exchange=system,
          reads="description (sysDescr), vendor (sysObjectID), name, location, contact"),
    Query(protocol="snmp", name="engine-id",
          title="SNMPv3 engine-id discovery (unauthenticated, no varbinds, reportable)",
          transport="udp", port=161, exchange=engine_id,
          reads="SNMP engine id and the enterprise it names"),
)
