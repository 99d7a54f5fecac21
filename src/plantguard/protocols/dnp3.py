"""DNP3 (IEEE 1815) over TCP or UDP: link frames, transport reassembly, application functions.

Layers, bottom up: link frames (0x05 0x64, length, control, destination, source, header CRC,
then user data in 16-byte blocks each followed by a CRC), one transport byte (FIN/FIR/sequence)
per link frame carrying user data, and application fragments (control, function code, and for
responses two IIN bytes) reassembled from FIR to FIN.

Observations: operation per application request (category by function code) and per response
(category "other", IIN bits named in the detail); error when a response's IIN reports a
refused request; roles dnp3-master / dnp3-outstation; identity of each side with its
link address (dnp3_address); service for the outstation side of the flow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import already_seen
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import StreamBuffer, once
from plantguard.util.arrays import bytes_hash, col, hash_keys

NAME = "dnp3"

START = b"\x05\x64"
MAX_FRAMES_PER_SEGMENT = 512
MAX_FRAGMENT = 65536        # an application fragment larger than this is dropped
MAX_TRANSPORT_KEYS = 64     # (source, destination) pairs reassembled at once per direction
BUFFER_CAP = 1 << 18

LINK_PRIMARY = {0: "RESET_LINK_STATES", 1: "RESET_USER_PROCESS", 2: "TEST_LINK_STATES",
                3: "CONFIRMED_USER_DATA", 4: "UNCONFIRMED_USER_DATA", 9: "REQUEST_LINK_STATUS"}
LINK_SECONDARY = {0: "ACK", 1: "NACK", 11: "LINK_STATUS", 14: "LINK_NOT_FUNCTIONING",
                  15: "NOT_SUPPORTED"}

# Application function code -> (name, category)
FUNCTIONS = {
    0: ("CONFIRM", "other"), 1: ("READ", "read"), 2: ("WRITE", "write"), 3: ("SELECT", "write"),
    4: ("OPERATE", "write"), 5: ("DIRECT_OPERATE", "write"), 6: ("DIRECT_OPERATE_NR", "write"),
    7: ("IMMED_FREEZE", "other"), 8: ("IMMED_FREEZE_NR", "other"), 9: ("FREEZE_CLEAR", "write"),
    10: ("FREEZE_CLEAR_NR", "write"), 11: ("FREEZE_AT_TIME", "other"), 12: ("FREEZE_AT_TIME_NR", "other"),
    13: ("COLD_RESTART", "control"), 14: ("WARM_RESTART", "control"),
    15: ("INITIALIZE_DATA", "control"), 16: ("INITIALIZE_APPL", "control"),
    17: ("START_APPL", "control"), 18: ("STOP_APPL", "control"), 19: ("SAVE_CONFIG", "config"),
    20: ("ENABLE_UNSOLICITED", "config"), 21: ("DISABLE_UNSOLICITED", "config"),
    22: ("ASSIGN_CLASS", "config"), 23: ("DELAY_MEASURE", "other"),
    24: ("RECORD_CURRENT_TIME", "other"), 25: ("OPEN_FILE", "file"), 26: ("CLOSE_FILE", "file"),
    27: ("DELETE_FILE", "file"), 28: ("GET_FILE_INFO", "file"), 29: ("AUTHENTICATE_FILE", "file"),
    30: ("ABORT_FILE", "file"), 31: ("ACTIVATE_CONFIG", "config"), 32: ("AUTHENTICATE_REQ", "auth"),
    33: ("AUTH_REQ_NO_ACK", "auth"), 129: ("RESPONSE", "other"),
    130: ("UNSOLICITED_RESPONSE", "other"), 131: ("AUTHENTICATE_RESP", "auth"),
}
RESPONSES = frozenset({129, 130, 131})

# IIN bits as (first byte << 8 | second byte) -> name
IIN_BITS = {
    0x0100: "broadcast", 0x0200: "class 1 events", 0x0400: "class 2 events",
    0x0800: "class 3 events", 0x1000: "need time", 0x2000: "local control",
    0x4000: "device trouble", 0x8000: "device restart",
    0x0001: "function code not supported", 0x0002: "object unknown", 0x0004: "parameter error",
    0x0008: "event buffer overflow", 0x0010: "already executing", 0x0020: "config corrupt",
}
IIN_REFUSED = 0x0001 | 0x0002 | 0x0004 | 0x0010   # the outstation did not do what was asked

GROUPS = {1: "binary input", 2: "binary input event", 3: "double-bit input", 10: "binary output",
          12: "control relay output block", 20: "counter", 21: "frozen counter", 22: "counter event",
          30: "analog input", 32: "analog input event", 34: "analog deadband",
          40: "analog output status", 41: "analog output", 50: "time and date", 51: "CTO",
          52: "time delay", 60: "class data", 70: "file control", 80: "internal indications",
          110: "octet string", 112: "virtual terminal output", 120: "authentication"}


@dataclass(slots=True)
class LinkFrame:
    length: int
    control: int
    dst: int
    src: int
    user_data: bytes

    @property
    def function(self) -> int:
        return self.control & 0x0F

    @property
    def primary(self) -> bool:
        return bool(self.control & 0x40)

    @property
    def from_master(self) -> bool:   # the DIR bit
        return bool(self.control & 0x80)

    @property
    def function_name(self) -> str:
        table = LINK_PRIMARY if self.primary else LINK_SECONDARY
        return table.get(self.function, f"UNKNOWN_{self.function}")


@dataclass(slots=True)
class AppFragment:
    src: int          # link addresses of the link frame that finished the fragment
    dst: int
    control: int
    function: int
    iin: int | None   # (IIN1 << 8) | IIN2 for responses
    objects: str      # the first object header, e.g. "g12v1"

    @property
    def name(self) -> str:
        return FUNCTIONS.get(self.function, (f"UNKNOWN_{self.function}", "other"))[0]

    @property
    def category(self) -> str:
        return FUNCTIONS.get(self.function, ("", "other"))[1]

    @property
    def is_response(self) -> bool:
        return self.function in RESPONSES


def frame_size(length: int) -> int:
    """Bytes on the wire of a link frame whose LENGTH field is `length` (>= 5)."""
    n = length - 5
    return 10 + n + 2 * ((n + 15) // 16)


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
    return ~crc & 0xFFFF


def header_ok(b) -> bool:
    """The 10-byte link header at the start of b has a valid CRC."""
    return len(b) >= 10 and crc16(bytes(b[:8])) == b[8] | (b[9] << 8)


def signature(payload: bytes) -> bool:
    return (len(payload) >= 10 and payload[:2] == START and payload[2] >= 5
            and header_ok(payload))


class Direction:
    """Link-frame splitting and transport reassembly for one direction of a conversation."""
    __slots__ = ("buf", "segments")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.segments: dict[tuple[int, int], bytearray] = {}

    def feed(self, data: bytes) -> list[LinkFrame | AppFragment]:
        """Append bytes; return the complete link frames and application fragments, in order."""
        self.buf += data
        out: list[LinkFrame | AppFragment] = []
        for _ in range(MAX_FRAMES_PER_SEGMENT):
            frame = self._next_frame()
            if frame is None:
                break
            out.append(frame)
            if frame.primary and frame.function in (3, 4) and frame.user_data:
                frag = self._transport(frame)
                if frag is not None:
                    out.append(frag)
        return out

    def _next_frame(self) -> LinkFrame | None:
        b = self.buf
        while True:
            start = b.find(START)
            if start < 0:
                del b[:max(0, len(b) - 1)]   # keep a trailing 0x05 that may start a frame
                return None
            if start:
                del b[:start]
            if len(b) < 10:
                return None
            if b[2] >= 5:
                break
            del b[:2]                        # impossible length: look for the next start
        size = frame_size(b[2])
        if len(b) < size:
            return None
        raw = bytes(b[:size])
        del b[:size]
        user = bytearray()
        off = 10
        while off < size:
            block = raw[off:min(off + 16, size - 2)]
            user += block
            off += len(block) + 2
        return LinkFrame(raw[2], raw[3], raw[4] | (raw[5] << 8), raw[6] | (raw[7] << 8), bytes(user))

    def _transport(self, frame: LinkFrame) -> AppFragment | None:
        th = frame.user_data[0]
        key = (frame.src, frame.dst)
        if th & 0x40:                                # FIR: a new fragment starts
            if key not in self.segments and len(self.segments) >= MAX_TRANSPORT_KEYS:
                self.segments.pop(next(iter(self.segments)))
            self.segments[key] = bytearray()
        seg = self.segments.get(key)
        if seg is None:
            return None                              # middle of a fragment we never saw start
        seg += frame.user_data[1:]
        if len(seg) > MAX_FRAGMENT:
            del self.segments[key]
            return None
        if not th & 0x80:
            return None
        del self.segments[key]
        return parse_application(bytes(seg), frame.src, frame.dst)


def parse_application(apdu: bytes, src: int, dst: int) -> AppFragment | None:
    if len(apdu) < 2:
        return None
    fc = apdu[1]
    iin = None
    off = 2
    if fc in RESPONSES:
        if len(apdu) < 4:
            return None
        iin = (apdu[2] << 8) | apdu[3]
        off = 4
    objects = f"g{apdu[off]}v{apdu[off + 1]}" if len(apdu) >= off + 2 else ""
    return AppFragment(src, dst, apdu[0], fc, iin, objects)


def iin_names(iin: int) -> list[str]:
    return [name for bit, name in sorted(IIN_BITS.items(), key=lambda kv: -kv[0]) if iin & bit]


def describe(frag: AppFragment) -> str:
    parts = [frag.name]
    if frag.objects:
        group = int(frag.objects[1:frag.objects.index("v")])
        label = GROUPS.get(group)
        if group == 60:
            variation = int(frag.objects[frag.objects.index("v") + 1:])
            label = f"class {variation - 1} data" if 1 <= variation <= 4 else label
        parts.append(f"{frag.objects} ({label})" if label else frag.objects)
    if frag.iin is not None:
        names = iin_names(frag.iin)
        parts.append(f"IIN 0x{frag.iin:04x}" + (": " + ", ".join(names) if names else ""))
    parts.append(f"link {frag.src}->{frag.dst}")
    return " ".join(parts)


# --- observations --------------------------------------------------------------------------

def decode(pkt: Packet) -> list[Observation]:
    st = pkt.state
    key = "c2s" if pkt.from_client else "s2c"
    d = st.get(key)
    if d is None:
        d = st[key] = Direction()
    payload = pkt.payload
    if pkt.l4 == "tcp":
        sb = st.get(key + "_seq")
        if sb is None:
            sb = st[key + "_seq"] = StreamBuffer(BUFFER_CAP)
        if sb.jumped(pkt.seq):
            d.buf.clear()                 # lost bytes: resynchronise on the next frame start
            d.segments.clear()
        seen = already_seen(sb.next_seq, pkt.seq)
        before = sb.next_seq
        sb.feed(pkt.seq, pkt.payload)
        if sb.next_seq == before and before is not None:
            return []                     # a retransmission
        sb.data.clear()                   # only the sequence tracking is used here
        if seen:
            payload = payload[seen:]      # an overlapping retransmission: its new tail only
    if pkt.l4 != "tcp" or len(d.buf) + len(payload) > BUFFER_CAP:
        d.buf.clear()                     # UDP: a datagram holds whole frames; TCP: bounded buffer
    out: list[Observation] = []
    for item in d.feed(payload):
        if isinstance(item, LinkFrame):
            out.extend(_link_observations(pkt, item))
        else:
            out.extend(_app_observations(pkt, item))
    return out



def _link_observations(pkt: Packet, frame: LinkFrame) -> list[Observation]:
    out = []
    if once(pkt, ("addr", pkt.src, frame.src)):
        out.append(pkt.observe("identity", NAME, subject="src", dnp3_address=frame.src))
    if once(pkt, ("service",)):
        server = "dst" if pkt.from_client else "src"
        out.append(pkt.observe("service", NAME, subject=server, name=NAME))
    carries_app = frame.primary and frame.function in (3, 4) and frame.user_data
    role = "dnp3-master" if frame.from_master else "dnp3-outstation"
    # link-only frames give a role from the DIR bit; user data gives it from the application
    if not carries_app and once(pkt, ("role", pkt.src, role)):
        out.append(pkt.observe("role", NAME, subject="src", role=role,
                               reason=f"DNP3 link frames with DIR={int(frame.from_master)}"))
    return out


def _app_observations(pkt: Packet, frag: AppFragment) -> list[Observation]:
    out = []
    if frag.function == 0:
        return out                        # application confirms carry nothing of interest
    role = "dnp3-outstation" if frag.is_response else "dnp3-master"
    if once(pkt, ("role", pkt.src, role)):
        why = "answers DNP3 requests" if role == "dnp3-outstation" else "sends DNP3 requests"
        out.append(pkt.observe("role", NAME, subject="src", role=role, reason=why))
    out.append(pkt.observe("operation", NAME, category=frag.category, code=frag.function,
                           name=frag.name, detail=describe(frag)))
    if frag.iin is not None and frag.iin & IIN_REFUSED:
        names = [n for bit, n in IIN_BITS.items() if frag.iin & bit & IIN_REFUSED]
        out.append(pkt.observe("error", NAME, code=frag.iin, name="IIN: " + ", ".join(names)))
    return out


# Routine recognition (capture/routine.py calls these on whole chunks): the key must cover
# every field decode() reports for such a packet.
def dnp3_poll_routine(p, plen, from_client, l4, sport, dport):
    """One whole link frame carrying a single-fragment read (1), response (129) or confirm (0).
    The key covers every byte but the CRCs, the FCB bit and the transport/application
    sequence numbers."""
    ok = (plen >= 15) & (p[:, 0] == 0x05) & (p[:, 1] == 0x64) & (p[:, 2] >= 5)
    user = p[:, 2].astype(np.int64) - 5
    ok &= plen == 10 + user + 2 * ((user + 15) // 16)
    ok &= ((p[:, 3] & 0x4F) == 0x43) | ((p[:, 3] & 0x4F) == 0x44)   # primary user data
    ok &= (p[:, 10] & 0xC0) == 0xC0                           # transport FIR and FIN
    fc = p[:, 12]
    ok &= np.isin(fc, (0, 1, 129))
    pos = np.arange(p.shape[1])[None, :]
    in_data = pos >= 10
    crc = (pos == 8) | (pos == 9) | (in_data & (((pos - 10) % 18) >= 16))
    keep = (pos < plen[:, None]) & ~crc
    m = p.copy()
    m[:, 3] &= 0xDF                    # FCB
    m[:, 10] &= 0xC0                   # transport sequence
    m[:, 11] &= 0xF0                   # application sequence
    key = hash_keys((col(from_client), col(plen), bytes_hash(m, keep)))
    return ok, key


SPEC = ProtocolSpec(
    name=NAME, title="DNP3 (TCP/UDP)", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(20000,),
    udp_ports=(20000,),
    # the link header start, length and header CRC are strict enough
    any_port=True,
    routine=(Routine(dnp3_poll_routine, 292),),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="rtu",
    observes=("error", "identity", "operation", "role", "service"),
)
