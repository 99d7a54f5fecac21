"""PROFINET DCP: one Identify All request (frame id 0xFEFE, service 5, type 0), sent unicast to
the device's MAC rather than to the DCP multicast address, so only the asked device answers. The
response (0xFEFF) carries NameOfStation, the vendor string, vendor and device id, device role
and IP parameters; the passive decoder reads them from the evidence."""
from __future__ import annotations

import secrets
import struct

from plantguard.probe.query import Exchange, Query, Target

ETHERTYPE = 0x8892
IDENTIFY_REQUEST = 0xFEFE
SERVICE_IDENTIFY, TYPE_REQUEST = 5, 0
RESPONSE_DELAY = 1            # factor × 10 ms: the device may answer at once
ALL_SELECTOR = struct.pack(">BBH", 0xFF, 0xFF, 0)     # option All, suboption All, no data


def identify_all(xid: int) -> bytes:
    return struct.pack(">HBBIHH", IDENTIFY_REQUEST, SERVICE_IDENTIFY, TYPE_REQUEST, xid & 0xFFFFFFFF,
                       RESPONSE_DELAY, len(ALL_SELECTOR)) + ALL_SELECTOR


def identify(t: Target) -> Exchange:
    # a fresh transaction id: a late answer to an earlier probe is not taken for this one's
    yield identify_all(secrets.randbits(32))


QUERIES = (
    Query(protocol="profinet", name="identify", title="DCP Identify All, unicast to the device's MAC",
          transport="l2", port=0, exchange=identify, ethertype=ETHERTYPE, needs=("mac",),
          reads="NameOfStation, vendor string, vendor and device id, device role, IP parameters"),
)
