"""EtherCAT (IEC 61158 type 12): EtherType 0x88A4, and the same frames over UDP port 34980.

Frame: a 2-byte little-endian header (length 11 bits, type 4 bits; type 1 = datagrams), then a
chain of datagrams: command, index, a 32-bit address (position / configured station address +
register offset, or a logical address), length (11 bits) with the circulating and more-follows
bits, IRQ, the data, and the working counter (how many slaves processed it).

A slave has no MAC or IP of its own: the master's frame passes through every slave, which reads
or writes its part, and the first slave sets the locally administered bit of the source MAC of
the frame going back (so the master tells its returning frames from its sent ones). Everything
is therefore observed on the master (subject "src", the master's MAC: the returning frame's with
that bit cleared; over UDP the endpoint that answers); a slave is one entry of the master's
identity["modules"], keyed by `route` ("EtherCAT station 0x1001"), as a device behind a CIP
route is. Answers to position-addressed reads are not kept: the position comes back incremented
by every slave the frame passed, so it no longer says which slave answered.

Observations:
- role io-controller for the master, from every frame (cyclic frames included, so a capture of
  cyclic traffic only still names the master);
- operation: AL Control writes (0x0120: INIT / PREOP / BOOT / SAFEOP / OP) = control; SII EEPROM
  write commands (0x0502) = config; mailbox CoE SDO downloads = write; FoE write requests =
  firmware, FoE read requests = file. Taken from sent frames only (the returning copy carries the
  same datagram again);
- identity of slaves, from returning datagrams a slave answered (working counter > 0): AL Status
  (0x0130) = state; SII EEPROM words 0x0008 / 0x000A / 0x000C / 0x000E (vendor id, product code,
  revision, serial) when the datagram that returns the data also says which word it is (a read
  from 0x0504 on) or a write of the EEPROM address to the same slave precedes it in the frame;
  CoE SDO upload responses of object 0x1018 subindex 1..4; and the master's slave count from a
  broadcast read of register 0x0000 (its working counter).
The decoder keeps no state between frames; frame_routine() recognises cyclic process-data frames
with array operations (see docs/engine.md, "Layer-2 routine frames")."""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace

import numpy as np

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import cstr, printable

NAME = "ethercat"

MAX_DATAGRAMS = 64

COMMANDS = {0: "NOP", 1: "APRD", 2: "APWR", 3: "APRW", 4: "FPRD", 5: "FPWR", 6: "FPRW", 7: "BRD",
            8: "BWR", 9: "BRW", 10: "LRD", 11: "LWR", 12: "LRW", 13: "ARMW", 14: "FRMW"}
POSITION, CONFIGURED, BROADCAST, LOGICAL = "position", "configured", "broadcast", "logical"
ADDRESSING = {1: POSITION, 2: POSITION, 3: POSITION, 13: POSITION, 4: CONFIGURED, 5: CONFIGURED,
              6: CONFIGURED, 14: CONFIGURED, 7: BROADCAST, 8: BROADCAST, 9: BROADCAST,
              10: LOGICAL, 11: LOGICAL, 12: LOGICAL}
READS = frozenset({1, 3, 4, 6, 7, 9, 10, 12, 13, 14})
WRITES = frozenset({2, 3, 5, 6, 8, 9, 11, 12})

AL_CONTROL, AL_STATUS = 0x0120, 0x0130
AL_STATES = {1: "INIT", 2: "PREOP", 3: "BOOT", 4: "SAFEOP", 8: "OP"}
EEP_CONTROL, EEP_ADDRESS, EEP_DATA = 0x0502, 0x0504, 0x0508
EEP_READ, EEP_WRITE = 0x0100, 0x0200            # command bits of the EEPROM control word
SII_WORDS = {0x0008: "vendor_id", 0x000A: "product_code", 0x000C: "revision_number", 0x000E: "serial"}
COE_IDENTITY = {1: "vendor_id", 2: "product_code", 3: "revision_number", 4: "serial"}
MAILBOX_TYPES = {0: "ERR", 1: "AoE", 2: "EoE", 3: "CoE", 4: "FoE", 5: "SoE", 15: "VoE"}
MAILBOX_AREA = 0x1000                           # sync manager areas lie in process memory
DC_REGISTERS = range(0x0900, 0x0A00)            # distributed-clock registers (cyclic time sync)


@dataclass
class Datagram:
    cmd: int
    idx: int
    adp: int           # position (APxx: 0, -1, ... as 0, 0xFFFF, ...) or station address (FPxx)
    ado: int           # register offset
    length: int
    circulating: bool
    more: bool
    irq: int
    data: bytes
    wkc: int

    @property
    def name(self) -> str:
        return COMMANDS.get(self.cmd, f"command {self.cmd}")

    @property
    def logical(self) -> int:
        return self.adp | self.ado << 16

    @property
    def addressing(self) -> str | None:
        return ADDRESSING.get(self.cmd)

    def slave(self) -> str | None:
        """Which slave the datagram addresses, in words (None: all slaves or logical)."""
        if self.addressing == POSITION:
            return f"EtherCAT position {(-self.adp) & 0xFFFF}"
        if self.addressing == CONFIGURED:
            return f"EtherCAT station 0x{self.adp:04x}"
        return None

    def covers(self, register: int, size: int) -> bool:
        return self.addressing != LOGICAL and self.ado <= register and register + size <= self.ado + len(self.data)

    def word(self, register: int, size: int = 2) -> int:
        at = register - self.ado
        return int.from_bytes(self.data[at:at + size], "little")


@dataclass
class Frame:
    length: int
    type: int
    datagrams: list


def parse(b: bytes) -> Frame | None:
    """An EtherCAT frame (header and datagram chain); None when it is not one of datagrams."""
    if len(b) < 2:
        return None
    head = b[0] | b[1] << 8
    length, ftype = head & 0x7FF, head >> 12
    if ftype != 1:
        return None
    out = []
    off, end = 2, min(len(b), 2 + length)
    for _ in range(MAX_DATAGRAMS):
        if off + 12 > end:
            break
        cmd, idx, adp, ado, ln, irq = struct.unpack_from("<BBHHHH", b, off)
        dlen = ln & 0x7FF
        if off + 12 + dlen > end:
            break
        data = bytes(b[off + 10:off + 10 + dlen])
        wkc = b[off + 10 + dlen] | b[off + 11 + dlen] << 8
        out.append(Datagram(cmd, idx, adp, ado, dlen, bool(ln & 0x4000), bool(ln & 0x8000), irq, data, wkc))
        off += 12 + dlen
        if not ln & 0x8000:
            break
    return Frame(length, ftype, out) if out else None


def signature(payload: bytes) -> bool:
    f = parse(payload)
    return f is not None and all(d.cmd in COMMANDS for d in f.datagrams)


# --- mailbox -------------------------------------------------------------------------------

@dataclass
class Mailbox:
    length: int
    address: int
    priority: int
    type: int
    counter: int
    body: bytes


def parse_mailbox(d: Datagram) -> Mailbox | None:
    """The mailbox message in a datagram to or from a sync manager area, when it looks like one."""
    if d.addressing not in (POSITION, CONFIGURED) or d.ado < MAILBOX_AREA or len(d.data) < 6:
        return None
    length, address, chan, tc = struct.unpack_from("<HHBB", d.data, 0)
    mtype = tc & 0x0F
    if mtype not in MAILBOX_TYPES or mtype == 0 or length < 2 or 6 + length > len(d.data):
        return None
    return Mailbox(length, address, chan >> 6, mtype, (tc >> 4) & 0x07, d.data[6:6 + length])


def coe_sdo(mb: Mailbox) -> dict | None:
    """A CoE SDO request or response: service, command specifier, index, subindex, data."""
    if mb.type != 3 or len(mb.body) < 6:
        return None
    head = mb.body[0] | mb.body[1] << 8
    service = head >> 12
    if service not in (2, 3):
        return None
    cmd = mb.body[2]
    index, sub = struct.unpack_from("<HB", mb.body, 3)
    data = mb.body[6:10]
    return {"service": service, "specifier": cmd >> 5, "expedited": bool(cmd & 0x02), "size_ind": bool(cmd & 0x01),
            "unused": (cmd >> 2) & 0x03, "index": index, "subindex": sub, "data": data}


def foe(mb: Mailbox) -> dict | None:
    if mb.type != 4 or len(mb.body) < 2:
        return None
    op = mb.body[0]
    out = {"opcode": op}
    if op in (1, 2) and len(mb.body) >= 6:
        out["password"] = int.from_bytes(mb.body[2:6], "little")
        out["filename"] = printable(cstr(mb.body[6:]).encode("latin-1"))
    return out


# --- decode --------------------------------------------------------------------------------

def _returning(pkt: Packet) -> bool:
    """The frame has passed the slaves: on Ethernet the first slave set the locally administered
    bit of the source MAC; over UDP it is the answer to the master."""
    if pkt.l4:
        return not pkt.from_client
    return bool(pkt.src_mac) and int(pkt.src_mac[:2], 16) & 0x02 != 0


def _master_packet(pkt: Packet, returning: bool) -> Packet:
    """The packet with the master as its source MAC (the returning frame's, bit cleared)."""
    if pkt.l4 or not returning or not pkt.src_mac:
        return pkt
    first = int(pkt.src_mac[:2], 16) & ~0x02
    return replace(pkt, src_mac=f"{first:02x}{pkt.src_mac[2:]}", emitted=pkt.emitted)


def decode(pkt: Packet) -> list[Observation]:
    frame = parse(pkt.payload)
    if frame is None:
        return []
    returning = _returning(pkt)
    p = _master_packet(pkt, returning)
    master = "dst" if pkt.l4 and returning else "src"
    out = [p.observe("role", NAME, subject=master, role="io-controller",
                     reason="EtherCAT master: sends the frames its slaves process")]
    eeprom_at: dict[str, int] = {}          # slave -> EEPROM word address written in this frame
    for d in frame.datagrams:
        if returning:
            out.extend(_answered(p, d, eeprom_at))
        else:
            out.extend(_sent(p, d))
        if d.cmd in WRITES and d.covers(EEP_CONTROL, 6) and d.slave():
            eeprom_at[d.slave()] = d.word(EEP_ADDRESS, 4)
    return out


def _sent(p: Packet, d: Datagram) -> list[Observation]:
    """Requests: state changes, EEPROM writes, mailbox writes (the master's own datagrams)."""
    target = d.slave() or "all slaves"
    if d.cmd not in WRITES or d.addressing == LOGICAL:
        return []
    if d.covers(AL_CONTROL, 2):
        ctrl = d.word(AL_CONTROL)
        state = AL_STATES.get(ctrl & 0x0F, f"state {ctrl & 0x0F}")
        ack = " (error acknowledge)" if ctrl & 0x10 else ""
        return [p.observe("operation", NAME, category="control", code="al-control", name=f"AL Control {state}",
                          detail=f"{d.name} {target}: request {state}{ack}")]
    if d.covers(EEP_CONTROL, 2) and d.word(EEP_CONTROL) & EEP_WRITE:
        where = f" word 0x{d.word(EEP_ADDRESS, 4):04x}" if d.covers(EEP_ADDRESS, 4) else ""
        return [p.observe("operation", NAME, category="config", code="sii-write", name="SII EEPROM write",
                          detail=f"{d.name} {target}: EEPROM write{where}")]
    mb = parse_mailbox(d)
    if mb is None:
        return []
    sdo = coe_sdo(mb)
    if sdo and sdo["service"] == 2 and sdo["specifier"] == 1:
        return [p.observe("operation", NAME, category="write", code="coe-sdo-download", name="CoE SDO download",
                          detail=f"{target}: object 0x{sdo['index']:04x}:{sdo['subindex']}")]
    f = foe(mb)
    if f and f["opcode"] in (1, 2):
        write = f["opcode"] == 2
        return [p.observe("operation", NAME, category="firmware" if write else "file",
                          code="foe-write" if write else "foe-read",
                          name="FoE write request" if write else "FoE read request",
                          detail=f"{target}: file {f.get('filename', '')!r}")]
    return []


def _answered(p: Packet, d: Datagram, eeprom_at: dict) -> list[Observation]:
    """What slaves returned: their state, SII identity words, CoE identity objects. They belong
    to the sender of the returning frame: the master (its MAC restored) on Ethernet, the
    EtherCAT endpoint that answered over UDP."""
    if d.wkc == 0 or d.cmd not in READS or d.addressing == POSITION:
        return []          # a position comes back incremented by every slave the frame passed
    slave = d.slave()
    if slave is None:
        if d.addressing == BROADCAST and d.ado == 0 and d.cmd == 7:
            return [p.observe("identity", NAME, subject="src", slave_count=d.wkc)]
        return []
    data: dict = {}
    if d.covers(AL_STATUS, 2):
        status = d.word(AL_STATUS)
        data["state"] = AL_STATES.get(status & 0x0F, f"state {status & 0x0F}") + (" (error)" if status & 0x10 else "")
    data.update(_sii_words(d, eeprom_at.get(slave)))
    mb = parse_mailbox(d)
    sdo = coe_sdo(mb) if mb else None
    if sdo and sdo["service"] == 3 and sdo["specifier"] == 2 and sdo["expedited"] and sdo["index"] == 0x1018 \
            and sdo["subindex"] in COE_IDENTITY:
        data.update(_identity_value(COE_IDENTITY[sdo["subindex"]], int.from_bytes(sdo["data"], "little")))
    if not data:
        return []
    return [p.observe("identity", NAME, subject="src", route=slave, **data)]


def _sii_words(d: Datagram, written_at: int | None) -> dict:
    """Identity words in EEPROM data: the word address from the datagram itself, else from a
    write of the address to the same slave earlier in the frame."""
    if d.covers(EEP_ADDRESS, 8):
        word, start = d.word(EEP_ADDRESS, 4), EEP_DATA
    elif written_at is not None and d.covers(EEP_DATA, 4) and d.ado == EEP_DATA:
        word, start = written_at, EEP_DATA
    else:
        return {}
    out: dict = {}
    at = start - d.ado
    for i in range(0, len(d.data) - at - 3, 4):
        key = SII_WORDS.get(word + i // 2)
        if key:
            out.update(_identity_value(key, int.from_bytes(d.data[at + i:at + i + 4], "little")))
    return out


def _identity_value(key: str, value: int) -> dict:
    return {key: str(value) if key == "serial" else value}


# --- routine frames --------------------------------------------------------------------------

def _quiet_datagram(cmd: np.ndarray, ado: np.ndarray) -> np.ndarray:
    """Datagrams the decoder says nothing about in either direction: NOP, logical process data,
    distributed-clock time sync and the broadcast AL Status read (every slave's state ORed)."""
    return ((cmd == 0) | (cmd == 10) | (cmd == 11) | (cmd == 12)
            | (((cmd == 13) | (cmd == 14) | (cmd == 7) | (cmd == 1) | (cmd == 4)) & (ado >= 0x0900) & (ado < 0x0A00))
            | ((cmd == 7) & (ado == AL_STATUS)))


def quiet_frames(arr: np.ndarray, off: np.ndarray, plen: np.ndarray) -> np.ndarray:
    """Frames of datagrams only (parse() would accept them) whose every datagram is quiet: a
    walk along the chain, one array step per datagram."""
    n = len(off)
    if not n:
        return np.zeros(0, bool)
    last = len(arr) - 1

    def u16(at):
        a = np.clip(at, 0, last)
        return arr[a].astype(np.int64) | arr[np.clip(at + 1, 0, last)].astype(np.int64) << 8

    head = u16(off)
    ok = (plen >= 14) & (head >> 12 == 1)
    end = off + np.minimum(plen, 2 + (head & 0x7FF))
    pos = off + 2
    active = ok.copy()
    for _ in range(MAX_DATAGRAMS):
        if not active.any():
            break
        cmd = arr[np.clip(pos, 0, last)].astype(np.int64)
        ado = u16(pos + 4)
        ln = u16(pos + 6)
        dlen = ln & 0x7FF
        fits = pos + 12 + dlen <= end
        good = fits & _quiet_datagram(cmd, ado)
        ok &= ~active | good
        pos = np.where(active, pos + 12 + dlen, pos)
        active &= good & (ln & 0x8000 != 0)
    ok &= ~active                     # more than MAX_DATAGRAMS: leave it to the decoder
    return ok


def frame_routine(arr: np.ndarray, off: np.ndarray, plen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, key) for layer-2 frames at `off` (their Ethernet payload): cyclic frames, whose
    output is the master's role alone. The engine keys them further by MACs and VLAN."""
    return quiet_frames(arr, off, plen), np.zeros(len(off), np.uint64)


def udp_routine(p, plen, from_client, l4, sport, dport):
    """The same frames over UDP: the payload's first UDP_WIDTH bytes hold the whole chain."""
    n, w = p.shape
    flat = np.ascontiguousarray(p).reshape(-1)
    mask = quiet_frames(flat, np.arange(n, dtype=np.int64) * w, np.minimum(plen, w))
    return mask, from_client.astype(np.uint64)


UDP_WIDTH = 512

SPEC = ProtocolSpec(
    name=NAME, title="EtherCAT", layer="industrial",
    decode=decode, signature=signature,
    ethertypes=(0x88A4,),
    udp_ports=(34980,),
    routine=(Routine(udp_routine, UDP_WIDTH),),
    frame_routine=frame_routine,
    traits=frozenset({"industrial", "unauthenticated-control"}),
    server_role="io-device",
    observes=("identity", "operation", "role"),
)
