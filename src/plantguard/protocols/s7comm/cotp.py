"""ISO-on-TCP (RFC 1006) under S7comm: the TPKT header that frames the TCP stream, the COTP
TPDUs inside (connection request / confirm with their TSAPs, data with the end-of-TSDU flag),
which TSAPs look like S7 ones, and the service observation (once per flow and protocol, with
the TSAPs of the connection request when it was seen).

The bottom of the s7comm package: it imports nothing from the other layers."""
from __future__ import annotations

from dataclasses import dataclass, field

from plantguard.model import Observation, Packet
from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE
from plantguard.protocols.base import once

NAME = "s7comm"

S7_PORT = 102
MAX_TPKT = 0xFFFF
MAX_PDUS_PER_SEGMENT = 128
MAX_COTP_REASSEMBLY = 1 << 16   # one S7 PDU split over COTP DT fragments

TPKT = header("Tpkt", ">", ("version", "B"), ("reserved", "B"), ("length", "H"))   # length: whole TPKT
TPKT_VERSION = 3
# COTP: `length` (LI) counts the header bytes after itself. A DT TPDU's third byte holds the
# end-of-TSDU flag; CR / CC carry references and class, then variable parameters (the TSAPs).
COTP_DT_HEADER = header("CotpDt", ">", ("length", "B"), ("pdu_type", "B"), ("tpdu_nr", "B"))
COTP_CR_HEADER = header("CotpCr", ">", ("length", "B"), ("pdu_type", "B"), ("dst_ref", "H"), ("src_ref", "H"),
                        ("class_option", "B"))
EOT = 0x80                      # in tpdu_nr: last DT of the TSDU
_LI, _TYPE, _NR = COTP_DT_HEADER.offset   # byte offsets (parse_cotp runs per TPDU)
_DT_LI, _CR_LI = COTP_DT_HEADER.size - 1, COTP_CR_HEADER.size - 1   # the LI of the fixed parts
_CR_PARAMS = COTP_CR_HEADER.size
MIN_TPKT = TPKT.size + COTP_DT_HEADER.size
TSAP_CALLING, TSAP_CALLED = 0xC1, 0xC2

COTP_TYPES = {0x0E: "CR Connection Request", 0x0D: "CC Connection Confirm", 0x08: "DR Disconnect Request",
              0x0C: "DC Disconnect Confirm", 0x0F: "DT Data", 0x01: "ED Expedited Data",
              0x06: "AK Data Acknowledgement", 0x02: "EA Expedited Data Acknowledgement",
              0x05: "RJ Reject", 0x07: "ER TPDU Error"}
COTP_CR, COTP_CC, COTP_DT = 0x0E, 0x0D, 0x0F


@dataclass(slots=True)
class Cotp:
    code: int                  # PDU type (high nibble of the type byte)
    tsaps: dict = field(default_factory=dict)  # "calling" / "called" for CR and CC
    eot: bool = True
    payload: bytes = b""       # DT user data


def frame_len(buf: bytes, off: int) -> int:
    if len(buf) - off < TPKT.size:
        return NEED_MORE
    version, reserved, length = TPKT.struct.unpack_from(buf, off)
    if version != TPKT_VERSION or reserved != 0:
        return BAD
    return length if length >= MIN_TPKT else BAD


def is_request(pkt: Packet) -> bool:
    """Towards port 102 (the port decides over the engine's guess when only one side has it)."""
    if (pkt.dport == S7_PORT) != (pkt.sport == S7_PORT):
        return pkt.dport == S7_PORT
    return pkt.from_client


def parse_cotp(b: bytes) -> Cotp | None:
    """A COTP TPDU (TPKT header already removed)."""
    if len(b) < 2:
        return None
    li = b[_LI]
    if li < 1 or li + 1 > len(b):
        return None
    code = b[_TYPE] >> 4
    if code not in COTP_TYPES:
        return None
    if code == COTP_DT:
        if li < _DT_LI:
            return None
        return Cotp(code, eot=bool(b[_NR] & EOT), payload=bytes(b[li + 1:]))
    cotp = Cotp(code)
    if code in (COTP_CR, COTP_CC) and li >= _CR_LI:
        off, end = _CR_PARAMS, li + 1
        while off + 2 <= end:
            pcode, plen = b[off], b[off + 1]
            value = bytes(b[off + 2:off + 2 + plen])
            if pcode == TSAP_CALLING:
                cotp.tsaps["calling"] = value
            elif pcode == TSAP_CALLED:
                cotp.tsaps["called"] = value
            off += 2 + plen
    return cotp


def s7_tsap(t: bytes) -> bool:
    """A TSAP as S7 stations use them: connection type + rack/slot, or 'SIMATIC-...'."""
    return (len(t) == 2 and t[0] in (0x01, 0x02, 0x03, 0x10)) or t.startswith(b"SIMATIC")


def tsap_text(t: bytes) -> str:
    if t and all(0x20 <= c < 0x7F for c in t):
        return t.decode("ascii")
    if len(t) == 2 and t[0] in (0x01, 0x02, 0x03):
        kind = {1: "PG", 2: "OP", 3: "S7 basic"}[t[0]]
        return f"0x{t.hex()} ({kind}, rack {t[1] >> 5}, slot {t[1] & 0x1F})"
    return "0x" + t.hex()


def service(pkt: Packet, request: bool, name: str, **extra) -> list[Observation]:
    """The service observation for protocol `name` (s7comm or s7comm-plus), once per flow."""
    if not once(pkt, name):
        return []
    data = {"name": name, **extra}
    for k, v in pkt.state.get("tsaps", {}).items():
        data[f"{k}_tsap"] = v
    return [pkt.observe("service", NAME, subject="dst" if request else "src", **data)]
