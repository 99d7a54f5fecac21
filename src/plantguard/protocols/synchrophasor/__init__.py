"""IEEE C37.118 synchrophasor streams (TCP 4712, UDP 4713, any port by a strict signature): who
turns which PMU's or PDC's data transmission off and on, who reads its configuration, how it is
configured and when that changes, and what its data frames say is wrong.

Observations: service (once per flow); operation per command frame (turn transmission off/on:
control; send HDR/CFG-1/CFG-2/CFG-3: read; extended frame: other); identity per distinct
configuration (station names, IDCODEs, number of PMUs, nominal frequency, data rate, CFGCNT) and
the header frame's text; a config operation when a PMU's CFGCNT changes between two configuration
frames of one stream (a reconfiguration, on the change timeline); errors for a check word that
does not match and, once per flow, PMU block and condition, for the STAT word's error bits (data
error, sync lost, trigger, configuration change pending, data modified) of data frames, which
arrive 30 to 60 a second. C37.118 has no authentication of its own.

A PMU or PDC serves the stream: server_role "ied" (added to _spec.SERVER_ROLES for it). A PMU is
a substation intelligent electronic device (often a protective relay's synchrophasor function),
not an RTU: the shared captures' labelled roles (tests/data/expected_roles.yaml) and the
c37118-pmu fingerprint call all nine PMUs "ied", and "rtu" there made them all wrong. Which side
is the PMU comes from the frame type, not the ports (UDP streams often send from 4712 to 4713).

One module per part: frame (header, CRC, configuration and data frame layouts), commands (command
codes, STAT conditions), routine (array recogniser for data frames and the Hold rows)."""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import Hold, ProtocolSpec, Routine
from plantguard.protocols.base import once, printable
from plantguard.protocols.synchrophasor.commands import (
    COMMANDS,
    command,
    stat_conditions,
)
from plantguard.protocols.synchrophasor.frame import (
    COMMAND,
    CONFIG_TYPES,
    DATA,
    FRAME_TYPES,
    FROM_PMU,
    HEADER_FRAME,
    MAX_FRAME,
    Config,
    Frame,
    block_sizes,
    crc_ok,
    data_blocks,
    frame_len,
    head_ok,
    parse_config,
    parse_frame,
)
from plantguard.protocols.synchrophasor.routine import (
    WIDTH,
    data_frame_routine,
    may_configure,
)

NAME = "synchrophasor"
C37_TCP_PORT = 4712
C37_UDP_PORT = 4713
MAX_FRAMES_PER_SEGMENT = 64
MAX_STREAMS = 16              # configurations kept per flow (one per stream IDCODE)
MAX_CFGCNTS = 256             # (stream, PMU) change counts kept per flow
VERSION_NAMES = {1: "IEEE C37.118-2005", 2: "IEEE C37.118.2-2011", 3: "IEEE C37.118.2-2011 (version 3)"}

__all__ = ["COMMANDS", "FRAME_TYPES", "NAME", "SPEC", "decode", "signature", "strict_signature"]


def signature(payload: bytes) -> bool:
    """On 4712/4713: a frame header of the standard's at the start (a wrong check word is still
    this protocol, counted as an error)."""
    return head_ok(payload) and len(payload) >= 4


def strict_signature(payload: bytes) -> bool:
    """On any other port: a whole first frame with a good CRC-CCITT check word, and every frame
    after it in the payload starting with a valid header."""
    if not head_ok(payload):
        return False
    size = (payload[2] << 8) | payload[3]
    if size > len(payload) or not crc_ok(payload[:size]):
        return False
    off = size
    while off < len(payload):
        if not head_ok(payload, off):
            return False
        off += (payload[off + 2] << 8) | payload[off + 3]
    return True


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    for b in tcp_pdus(pkt, frame_len, MAX_FRAME, MAX_FRAMES_PER_SEGMENT):
        f = parse_frame(b)
        if f is not None and len(b) == f.framesize:
            out.extend(_observe(pkt, f))
    return out


def _observe(pkt: Packet, f: Frame) -> list[Observation]:
    """Observations of one whole frame; its type says which side is the PMU/PDC."""
    pmu = "src" if f.frame_type in FROM_PMU else "dst"
    out = []
    if once(pkt, "service"):
        out.append(pkt.observe("service", NAME, subject=pmu, name=NAME,
                               protocol_version=VERSION_NAMES.get(f.version, f"version {f.version}")))
    if not f.crc_good:
        out.append(pkt.observe("error", NAME, subject="src", code="bad-crc",
                               name="check word (CRC-CCITT) does not match the frame", function=f.frame_type,
                               function_name=f.type_name))
        return out
    if f.frame_type == DATA:
        out.extend(_data(pkt, f))
    elif f.frame_type == COMMAND:
        out.extend(_command(pkt, f))
    elif f.frame_type in CONFIG_TYPES:
        out.extend(_config(pkt, f))
    elif f.frame_type == HEADER_FRAME:
        text = printable(f.body)
        if text and once(pkt, ("hdr", f.idcode, hash(text))):
            out.append(pkt.observe("identity", NAME, subject="src", idcode=f.idcode, description=text))
    return out


def _command(pkt: Packet, f: Frame) -> list[Observation]:
    if len(f.body) < 2:
        return []
    code = (f.body[0] << 8) | f.body[1]
    name, category = command(code)
    detail = f"IDCODE {f.idcode}"
    if len(f.body) > 2:
        detail += f", {len(f.body) - 2} bytes of extended frame data"
    return [pkt.observe("operation", NAME, subject="dst", category=category, code=code, name=name, detail=detail)]


def _data(pkt: Packet, f: Frame) -> list[Observation]:
    """Errors the STAT words report, once per flow, stream, PMU block and condition."""
    out = []
    sizes = (pkt.state.get("blocks") or {}).get(f.idcode)
    for i, stat in data_blocks(f.body, sizes):
        if not stat:
            continue
        for code, name in stat_conditions(stat):
            if once(pkt, ("stat", f.idcode, i, code)):
                out.append(pkt.observe("error", NAME, subject="src", code=code,
                                       name=f"{name} (STAT 0x{stat:04X}, IDCODE {f.idcode}, PMU block {i + 1})",
                                       function=f.frame_type, function_name=f.type_name))
    return out


def _config(pkt: Packet, f: Frame) -> list[Observation]:
    cfg = parse_config(f.frame_type, f.body)
    if cfg is None or not cfg.complete:
        return []
    streams = pkt.state.setdefault("blocks", {})      # the PMU block sizes, not the names
    if f.idcode in streams or len(streams) < MAX_STREAMS:
        streams[f.idcode] = block_sizes(cfg)
    out = _reconfigured(pkt, f, cfg)
    ident = identity(f.idcode, cfg)
    if once(pkt, ("cfg", f.idcode, hash(repr(sorted(ident.items(), key=lambda kv: kv[0]))))):
        out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _reconfigured(pkt: Packet, f: Frame, cfg: Config) -> list[Observation]:
    """A config operation for each PMU whose CFGCNT differs from the stream's previous
    configuration frame on this flow: the PMU (the frame's sender) was reconfigured; the
    operation is recorded on it, from the other side, as s7comm records PLC-sent download jobs."""
    counts = pkt.state.setdefault("cfgcnt", {})
    out = []
    for p in cfg.pmus:
        k = (f.idcode, p.idcode)
        before = counts.get(k)
        if before is None:
            if len(counts) < MAX_CFGCNTS:
                counts[k] = p.cfgcnt
            continue
        if before == p.cfgcnt:
            continue
        counts[k] = p.cfgcnt
        data = {"category": "config", "code": f.frame_type, "name": "Reconfiguration (CFGCNT changed)",
                "detail": f"IDCODE {p.idcode} station {p.station!r}: CFGCNT {before} -> {p.cfgcnt}"}
        out.append(Observation("operation", NAME, pkt.capture, pkt.frame, pkt.ts, pkt.dst, pkt.src, pkt.dst_mac,
                               pkt.src_mac, pkt.l4, pkt.dport, pkt.sport, pkt.vlan, "dst", data))
    return out


def identity(idcode: int, cfg: Config) -> dict:
    """The PMU/PDC a configuration describes: one PMU block is a PMU (its station name is the
    device's), several are a PDC's or a multi-PMU device's stream."""
    first = cfg.pmus[0] if cfg.pmus else None
    ident = {"idcode": idcode, "pmu_count": cfg.num_pmu, "data_rate": cfg.data_rate,
             "device_type": "PMU" if cfg.num_pmu == 1 else "PDC",
             "pmus": [{"station": p.station, "idcode": p.idcode, "nominal_frequency": p.fnom, "cfgcnt": p.cfgcnt,
                       "phasors": p.phnmr, "analogs": p.annmr, "digitals": p.dgnmr} for p in cfg.pmus[:64]]}
    if first is not None:
        ident["nominal_frequency"] = first.fnom
        ident["cfgcnt"] = first.cfgcnt
        if cfg.num_pmu == 1 and first.station:
            ident["name"] = first.station
    return ident


SPEC = ProtocolSpec(
    name=NAME, title="IEEE C37.118 synchrophasor", layer="industrial",
    decode=decode, signature=signature, any_port_signature=strict_signature,
    tcp_ports=(C37_TCP_PORT,), udp_ports=(C37_UDP_PORT,),
    # on other ports only frames whose CRC-CCITT check word matches
    any_port=True,
    routine=(Routine(data_frame_routine, WIDTH),),
    # data frames of multi-PMU streams are parsed with the configuration: decoded, not replayed
    hold=Hold(may_configure, 16, lambda st: bool(st) and any(len(s) > 1 for s in (st.get("blocks") or {}).values())),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="ied",
    observes=("error", "identity", "operation", "service"),
)
