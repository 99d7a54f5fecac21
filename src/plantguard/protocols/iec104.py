"""IEC 60870-5-104 (telecontrol over TCP 2404): APCI frames and the ASDUs they carry.

Frames: 0x68, length, four control octets: I (numbered, carries an ASDU), S (acknowledge only)
or U (STARTDT / STOPDT / TESTFR, act or con). An ASDU: type id, variable structure qualifier,
cause of transmission (with negative and test flags) and originator address, common address,
then information objects (3-octet addresses).

Observations: service for the controlled station (the server side); identity of that station
with its common address(es); operation for every command-direction ASDU (commands, interrogations,
clock synchronisation, reset, parameters, file transfer); error for negative confirmations and
the unknown type / cause / address / object replies.
"""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import StreamBuffer, once

NAME = "iec104"

START = 0x68
MAX_APDUS_PER_SEGMENT = 512
BUFFER_CAP = 1 << 16

U_FUNCTIONS = {0x04: "STARTDT act", 0x08: "STARTDT con", 0x10: "STOPDT act", 0x20: "STOPDT con",
               0x40: "TESTFR act", 0x80: "TESTFR con"}

TYPE_NAMES = {
    1: "M_SP_NA_1", 2: "M_SP_TA_1", 3: "M_DP_NA_1", 4: "M_DP_TA_1", 5: "M_ST_NA_1", 6: "M_ST_TA_1",
    7: "M_BO_NA_1", 8: "M_BO_TA_1", 9: "M_ME_NA_1", 10: "M_ME_TA_1", 11: "M_ME_NB_1",
    12: "M_ME_TB_1", 13: "M_ME_NC_1", 14: "M_ME_TC_1", 15: "M_IT_NA_1", 16: "M_IT_TA_1",
    17: "M_EP_TA_1", 18: "M_EP_TB_1", 19: "M_EP_TC_1", 20: "M_PS_NA_1", 21: "M_ME_ND_1",
    30: "M_SP_TB_1", 31: "M_DP_TB_1", 32: "M_ST_TB_1", 33: "M_BO_TB_1", 34: "M_ME_TD_1",
    35: "M_ME_TE_1", 36: "M_ME_TF_1", 37: "M_IT_TB_1", 38: "M_EP_TD_1", 39: "M_EP_TE_1",
    40: "M_EP_TF_1", 41: "S_IT_TC_1", 45: "C_SC_NA_1", 46: "C_DC_NA_1", 47: "C_RC_NA_1",
    48: "C_SE_NA_1", 49: "C_SE_NB_1", 50: "C_SE_NC_1", 51: "C_BO_NA_1", 58: "C_SC_TA_1",
    59: "C_DC_TA_1", 60: "C_RC_TA_1", 61: "C_SE_TA_1", 62: "C_SE_TB_1", 63: "C_SE_TC_1",
    64: "C_BO_TA_1", 70: "M_EI_NA_1", 81: "S_CH_NA_1", 82: "S_RP_NA_1", 83: "S_AR_NA_1",
    84: "S_KR_NA_1", 85: "S_KS_NA_1", 86: "S_KC_NA_1", 87: "S_ER_NA_1", 90: "S_US_NA_1",
    91: "S_UQ_NA_1", 92: "S_UR_NA_1", 93: "S_UK_NA_1", 94: "S_UA_NA_1", 95: "S_UC_NA_1",
    100: "C_IC_NA_1", 101: "C_CI_NA_1", 102: "C_RD_NA_1", 103: "C_CS_NA_1", 104: "C_TS_NA_1",
    105: "C_RP_NA_1", 106: "C_CD_NA_1", 107: "C_TS_TA_1", 110: "P_ME_NA_1", 111: "P_ME_NB_1",
    112: "P_ME_NC_1", 113: "P_AC_NA_1", 120: "F_FR_NA_1", 121: "F_SR_NA_1", 122: "F_SC_NA_1",
    123: "F_LS_NA_1", 124: "F_AF_NA_1", 125: "F_SG_NA_1", 126: "F_DR_TA_1", 127: "F_SC_NB_1",
}

# What a command-direction type id does: (category, short description)
COMMANDS = {
    45: ("write", "single command"), 46: ("write", "double command"),
    47: ("write", "regulating step command"), 48: ("write", "set point, normalised"),
    49: ("write", "set point, scaled"), 50: ("write", "set point, short float"),
    51: ("write", "bitstring command"), 58: ("write", "single command with time tag"),
    59: ("write", "double command with time tag"), 60: ("write", "regulating step command with time tag"),
    61: ("write", "set point, normalised, with time tag"), 62: ("write", "set point, scaled, with time tag"),
    63: ("write", "set point, short float, with time tag"), 64: ("write", "bitstring command with time tag"),
    100: ("read", "general interrogation"), 101: ("read", "counter interrogation"),
    102: ("read", "read command"), 103: ("config", "clock synchronisation"),
    104: ("diagnostic", "test command"), 105: ("control", "reset process"),
    106: ("other", "delay acquisition"), 107: ("diagnostic", "test command with time tag"),
    110: ("config", "parameter, normalised"), 111: ("config", "parameter, scaled"),
    112: ("config", "parameter, short float"), 113: ("config", "parameter activation"),
}
FILE_TYPES = {120: "file ready", 121: "section ready", 122: "call / select file or section",
              123: "last section or segment", 124: "ack file or section", 125: "segment",
              126: "directory", 127: "query log"}
CONTROL_CAUSES = frozenset({5, 6, 8})   # request, activation, deactivation
COT_NAMES = {1: "per/cyc", 2: "back", 3: "spont", 4: "init", 5: "req", 6: "act", 7: "actcon",
             8: "deact", 9: "deactcon", 10: "actterm", 11: "retrem", 12: "retloc", 13: "file",
             20: "inrogen", 37: "reqcogen", 44: "unknown type id", 45: "unknown cause",
             46: "unknown common address", 47: "unknown information object address"}
COT_NAMES.update({20 + i: f"inro{i}" for i in range(1, 17)})
COT_NAMES.update({37 + i: f"reqco{i}" for i in range(1, 5)})


@dataclass(slots=True)
class Asdu:
    type_id: int
    sq: bool
    count: int
    cause: int
    negative: bool
    test: bool
    originator: int
    common_address: int
    first_ioa: int | None

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type_id, f"type {self.type_id}")

    @property
    def cause_name(self) -> str:
        return COT_NAMES.get(self.cause, f"cause {self.cause}")


@dataclass(slots=True)
class Apdu:
    format: str               # "I", "S" or "U"
    u_function: str | None    # "STARTDT act", ... for U frames
    send_seq: int | None
    recv_seq: int | None
    asdu: Asdu | None


def signature(payload: bytes) -> bool:
    """A whole APCI frame (or several) at the start of the payload."""
    if len(payload) < 6 or payload[0] != START or not 4 <= payload[1] <= 253:
        return False
    if len(payload) < 2 + payload[1]:
        return False
    c0 = payload[2]
    if c0 & 0x03 == 0x03:
        return payload[1] == 4 and c0 >> 2 in (1, 2, 4, 8, 16, 32)
    if c0 & 0x03 == 0x01:
        return payload[1] == 4
    return payload[1] >= 10


def parse_apdu(frame: bytes) -> Apdu:
    """One APDU (0x68, length, control field, optional ASDU)."""
    c = frame[2:6]
    if c[0] & 0x01 == 0:
        asdu = parse_asdu(frame[6:]) if len(frame) > 6 else None
        return Apdu("I", None, (c[0] | (c[1] << 8)) >> 1, (c[2] | (c[3] << 8)) >> 1, asdu)
    if c[0] & 0x03 == 0x01:
        return Apdu("S", None, None, (c[2] | (c[3] << 8)) >> 1, None)
    return Apdu("U", U_FUNCTIONS.get(c[0] & 0xFC, f"U 0x{c[0]:02x}"), None, None, None)


def parse_asdu(b: bytes) -> Asdu | None:
    if len(b) < 6:
        return None
    ioa = b[6] | (b[7] << 8) | (b[8] << 16) if len(b) >= 9 else None
    return Asdu(b[0], bool(b[1] & 0x80), b[1] & 0x7F, b[2] & 0x3F, bool(b[2] & 0x40),
                bool(b[2] & 0x80), b[3], b[4] | (b[5] << 8), ioa)


def split_apdus(buf: bytearray) -> list[Apdu]:
    """Take the complete APDUs off the front of a stream buffer, skipping bytes that cannot
    start one (resynchronising on the next 0x68)."""
    out = []
    for _ in range(MAX_APDUS_PER_SEGMENT):
        start = buf.find(START)
        if start < 0:
            buf.clear()
            break
        if start:
            del buf[:start]
        if len(buf) < 2:
            break
        length = buf[1]
        if length < 4:
            del buf[:1]
            continue
        if len(buf) < 2 + length:
            break
        frame = bytes(buf[:2 + length])
        del buf[:2 + length]
        out.append(parse_apdu(frame))
    return out


def decode(pkt: Packet) -> list[Observation]:
    st = pkt.state
    key = "c2s" if pkt.from_client else "s2c"
    sb = st.get(key)
    if sb is None:
        sb = st[key] = StreamBuffer(BUFFER_CAP)
    if sb.jumped(pkt.seq):
        sb.data.clear()                     # lost bytes: resynchronise on the next start octet
    if sb.overflow:
        sb.data.clear()
        sb.overflow = False
    sb.feed(pkt.seq, pkt.payload)
    out: list[Observation] = []
    for apdu in split_apdus(sb.data):
        out.extend(_observations(pkt, apdu))
    return out



def _observations(pkt: Packet, apdu: Apdu) -> list[Observation]:
    out = []
    server = "dst" if pkt.from_client else "src"
    if once(pkt, "service"):
        out.append(pkt.observe("service", NAME, subject=server, name=NAME))
    a = apdu.asdu
    if a is None:
        return out
    if once(pkt, ("ca", a.common_address)):
        out.append(pkt.observe("identity", NAME, subject=server, common_address=a.common_address))
    where = f"CA {a.common_address}" + (f" IOA {a.first_ioa}" if a.first_ioa is not None else "")
    if a.type_id in COMMANDS and a.cause in CONTROL_CAUSES and not a.negative:
        category, what = COMMANDS[a.type_id]
        out.append(pkt.observe("operation", NAME, category=category, code=a.type_id, name=a.type_name,
                               detail=f"{a.type_name} {what}, COT {a.cause_name}, {where}"))
    elif a.type_id in FILE_TYPES:
        out.append(pkt.observe("operation", NAME, category="file", code=a.type_id, name=a.type_name,
                               detail=f"{a.type_name} {FILE_TYPES[a.type_id]}, COT {a.cause_name}, {where}"))
    if a.negative or 44 <= a.cause <= 47:
        out.append(pkt.observe("error", NAME, code=a.cause,
                               name=f"{a.type_name} negative {a.cause_name}"))
    return out


SPEC = ProtocolSpec(
    name=NAME, title="IEC 60870-5-104", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(2404,),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="rtu",
    observes=("error", "identity", "operation", "service"),
)
