"""The read-only catalogue: the only operations a probe frame may carry, per protocol, as
plantguard's passive decoders name them. Anything else — a write, a program transfer, run/stop,
DCP Set or Blink, BACnet WriteProperty, ReinitializeDevice or DeviceCommunicationControl, CIP
Set/Reset/Start/Stop, an SNMP set — is refused by the validator, and so is a frame the decoder
cannot read, or reads as no operation unless it is a connection set-up listed here.

An entry is (operation code, and where the code alone does not prove read-only-ness, a test on
the decoded detail). Codes are the decoders' own (`operation` observations' `code`)."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from plantguard.protocols.s7comm.cotp import COTP_CR, COTP_DT, TPKT, parse_cotp
from plantguard.protocols.s7comm.s7 import USERDATA, parse_s7


@dataclass(frozen=True)
class Allowed:
    code: int | str
    name: str                                   # as the decoder names it
    detail: Callable[[str], bool] | None = None  # further test on the decoded detail


def _s7_silent(payload: bytes) -> bool:
    """A COTP connection request, or the request for the next fragment of a Read SZL reply (the
    S7 decoder reports no operation for either)."""
    cotp = parse_cotp(payload[TPKT.size:]) if len(payload) > TPKT.size else None
    if cotp is None:
        return False
    if cotp.code == COTP_CR:
        return True
    s7 = parse_s7(cotp.payload) if cotp.code == COTP_DT and cotp.payload else None
    return (s7 is not None and s7.rosctr == USERDATA and s7.type_group == 0x44 and s7.subfunction == 0x01
            and bool(s7.durn) and len(s7.data) <= 4)


def _starts(prefix: str) -> Callable[[str], bool]:
    return lambda detail: detail.startswith(prefix)


def _service(name: str) -> Callable[[str], bool]:
    return lambda detail: detail.split(" ", 1)[0] == name


def _dcp_identify_well_formed(payload: bytes) -> str | None:
    """Malformed DCP has crashed whole product lines (CVE-2017-2680/2681, CVE-2017-12235): an
    Identify leaves only with its length exact and its filter blocks All or NameOfStation."""
    if len(payload) < 16:
        return "a DCP frame shorter than one block"
    length = struct.unpack_from(">H", payload, 10)[0]
    if 12 + length != len(payload):
        return f"DCP data length {length} does not match the frame ({len(payload) - 12} bytes)"
    off = 12
    while off < len(payload):
        if off + 4 > len(payload):
            return "a truncated DCP block"
        opt, sub, blen = payload[off], payload[off + 1], struct.unpack_from(">H", payload, off + 2)[0]
        if (opt, sub) not in ((0xFF, 0xFF), (2, 2)) or off + 4 + blen > len(payload):
            return f"DCP Identify filter block {opt}/{sub} (only All or NameOfStation)"
        off += 4 + blen + (blen & 1)
    return None


def _opcua_hello(payload: bytes) -> bool:
    """A UA TCP Hello (buffer sizes and the endpoint URL; the OPC UA decoder reports no operation)."""
    return payload[:4] == b"HELF"


def _device_id(detail: str) -> bool:
    """MEI type 14 only: FC 43 carries other MEI types (13, CANopen general reference, can write)."""
    return detail.startswith("MEI type=14 ")


CATALOGUE: dict[str, tuple[Allowed, ...]] = {
    "modbus": (Allowed(43, "Read Device Identification", _device_id),),
    "enip": (Allowed(0x63, "ListIdentity"), Allowed(0x64, "ListInterfaces"), Allowed(0x04, "ListServices")),
    # the code alone is also an S7comm-plus function's, and BACnet's confirmed and unconfirmed
    # services share codes (confirmed 8 is AddListElement, unconfirmed 14 You-Are): the detail,
    # which starts with the decoded service, tells them apart
    "s7comm": (Allowed(240, "Setup Communication", _starts("PDU length ")),
               Allowed(0x0401, "Read SZL", _starts("CPU Functions; SZL "))),
    "bacnet": (Allowed(8, "who_is", _service("who_is")), Allowed(12, "read_property", _service("read_property")),
               Allowed(14, "read_property_multiple", _service("read_property_multiple"))),
    "snmp": (Allowed(0, "get"), Allowed(1, "getnext")),
    "profinet": (Allowed("dcp-identify", "DCP Identify"),),
    "opcua": (Allowed(446, "OpenSecureChannel"), Allowed(428, "GetEndpoints"), Allowed(422, "FindServers"),
              Allowed(452, "CloseSecureChannel")),
    "http": (Allowed("HEAD", "HEAD"),),
}

# Frames the decoder reports no operation for that are still allowed: connection set-up, and the
# follow-up of a reply already allowed (S7: the next fragment of a Read SZL reply).
SILENT: dict[str, Callable[[bytes], bool]] = {
    "s7comm": _s7_silent,
    "opcua": _opcua_hello,
}


# Frames whose form is checked beyond what the decoder reads: the problem, or None.
FORM: dict[str, Callable[[bytes], str | None]] = {
    "profinet": _dcp_identify_well_formed,
}


def allowed(protocol: str, data: dict) -> Allowed | None:
    """The catalogue entry an `operation` observation's data matches, or None."""
    for entry in CATALOGUE.get(protocol, ()):
        # code and name both: a code alone is ambiguous (BACnet's 8 is Who-Is unconfirmed but
        # AddListElement confirmed)
        if (data.get("code") == entry.code and data.get("name") == entry.name
                and (entry.detail is None or entry.detail(str(data.get("detail") or "")))):
            return entry
    return None
