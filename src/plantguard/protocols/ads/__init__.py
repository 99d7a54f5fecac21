"""Beckhoff ADS over AMS/TCP (TCP 48898) and TwinCAT's UDP discovery / add-route service (UDP
48899): who reads, writes, starts or stops which TwinCAT controller, and what it is.

Observations: service (once per flow); operation per ADS request (category by command id, and
for ReadWrite and WriteControl by index group and requested state, see commands.py; the target
AMS port, index group and offset in the detail); error per response whose AMS error code or ADS
result is not 0; identity from ReadDeviceInfo replies (ADS device name and version), from the
system service's target description (model, TwinCAT version) and from discovery replies (AMS
NetId, host name, TwinCAT version, OS); add-route requests are config operations and carry a
user name and password in clear (a credential); the host that searches or adds routes gets the
role hint twincat-engineering. ADS itself has no authentication.

One module per part: frame (AMS/TCP and AMS headers, plausibility), commands (code tables),
discovery (UDP 48899), routine (array recogniser for cyclic polling)."""
from __future__ import annotations

import re
import struct

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.ads import discovery
from plantguard.protocols.ads.commands import (
    ADD_NOTIFICATION,
    ADS_STATES,
    COMMANDS,
    DELETE_NOTIFICATION,
    NAMED_GROUPS,
    NOTIFICATION,
    READ,
    READ_DEVICE_INFO,
    READ_WRITE,
    REGISTRY,
    SYSTEM_SERVICE_PORT,
    TRANS_MODES,
    WRITE,
    WRITE_CONTROL,
    command_name,
    control_category,
    error_name,
    group_name,
    readwrite_category,
    write_category,
)
from plantguard.protocols.ads.frame import (
    ADS_PORT,
    MAX_PDU,
    Frame,
    frame_len,
    parse,
    plausible,
)
from plantguard.protocols.ads.routine import ads_routine
from plantguard.protocols.base import cstr, once, printable

NAME = "ads"
MAX_PDUS_PER_SEGMENT = 64
TARGET_DESC = b"<TcTargetDesc>"
# commands whose response data starts with the ADS result (Device Notification has none)
WITH_RESULT = frozenset({1, 2, 3, 4, 5, 6, 7, 9})
# who searches for TwinCAT systems or adds routes to them is TwinCAT engineering (XAE / System
# Manager "Choose Target"): a role hint the fingerprints turn into engineering-workstation
ENGINEERING_HINT = "twincat-engineering"
ENGINEERING_REASONS = {1: "searches for TwinCAT systems (ADS discovery, udp/48899)",
                       6: "adds an ADS route to a TwinCAT system (udp/48899)"}

__all__ = ["COMMANDS", "NAME", "SPEC", "Frame", "decode", "describe", "signature", "strict_signature"]


def signature(payload: bytes) -> bool:
    """On the ADS ports: AMS/TCP frames (the first header is enough), or a discovery datagram."""
    return plausible(payload) or discovery.plausible(payload)


def strict_signature(payload: bytes) -> bool:
    """On any other port only whole AMS/TCP frames filling the payload: reserved 0, a length of
    the AMS header plus its data length, a command id 1..9 and the ADS command flag."""
    return plausible(payload, strict=True)


def decode(pkt: Packet) -> list[Observation]:
    if pkt.l4 == "udp":
        if discovery.plausible(pkt.payload):
            return _discovery(pkt)
        return []
    out: list[Observation] = []
    for pdu in tcp_pdus(pkt, frame_len, MAX_PDU, MAX_PDUS_PER_SEGMENT):
        frame = parse(pdu)
        if frame is not None:
            out.extend(_observe(pkt, frame))
    return out


def prime(pkt: Packet) -> None:
    """The flow moved past a replayed packet as decode() moves it: the stream and the service."""
    if pkt.l4 == "tcp":
        pdus = tcp_pdus(pkt, frame_len, MAX_PDU, MAX_PDUS_PER_SEGMENT)
    else:
        pdus = [pkt.payload] if discovery.plausible(pkt.payload) else []
    if pdus:
        once(pkt, "service")


def _service(pkt: Packet) -> list[Observation]:
    if not once(pkt, "service"):
        return []
    return [pkt.observe("service", NAME, subject="dst" if pkt.from_client else "src", name=NAME)]


def _observe(pkt: Packet, f: Frame) -> list[Observation]:
    out = _service(pkt)
    if not f.response:
        if f.command == NOTIFICATION:
            return out          # samples the server pushes to a subscriber: no request of the sender
        name, category, detail = describe(f.command, f.target_port, f.data)
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=f.command,
                               name=name, detail=detail))
        return out
    code = f.error
    if not code and f.command in WITH_RESULT and len(f.data) >= 4:
        code = struct.unpack_from("<I", f.data, 0)[0]
    if code:
        out.append(pkt.observe("error", NAME, subject="src", code=code, name=error_name(code),
                               function=f.command, function_name=command_name(f.command)))
        return out
    ident = _identity(f)
    if ident:
        out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _identity(f: Frame) -> dict:
    """ReadDeviceInfo reply: the ADS device's name and version (the system service's, AMS port
    10000, is TwinCAT's own); a Read reply carrying the system service's target description
    (<TcTargetDesc> XML: the target type and TwinCAT version)."""
    d = f.data
    if f.command == READ_DEVICE_INFO and len(d) >= 24:
        major, minor, build = struct.unpack_from("<BBH", d, 4)
        device = printable(cstr(d[8:24]).encode("latin-1"))
        version = f"{major}.{minor}.{build}"
        ident = {"vendor": "Beckhoff", "ams_net_id": f.source_net}
        if f.source_port == SYSTEM_SERVICE_PORT:
            ident.update(product="TwinCAT", firmware=version, software=f"{device or 'TwinCAT'} {version}")
        else:
            ident["software"] = f"{device or 'ADS device'} {version} (AMS port {f.source_port})"
        return ident
    if f.command == READ and len(d) >= 8 + len(TARGET_DESC) and d[8:8 + len(TARGET_DESC)] == TARGET_DESC:
        return _target_description(f, d[8:])
    return {}


_XML_TAG = {k: re.compile(rf"<{k}>([^<]{{1,64}})</{k}>") for k in ("TargetType", "Version", "Revision", "Build")}


def _target_description(f: Frame, xml: bytes) -> dict:
    text = xml[:4096].decode("latin-1", "replace")
    got = {k: m.group(1).strip() for k, p in _XML_TAG.items() if (m := p.search(text))}
    ident = {"vendor": "Beckhoff", "ams_net_id": f.source_net}
    if got.get("TargetType"):
        ident["model"] = printable(got["TargetType"].encode("latin-1"))
    if all(got.get(k, "").isdigit() for k in ("Version", "Revision", "Build")):
        version = f"{got['Version']}.{got['Revision']}.{got['Build']}"
        ident.update(product="TwinCAT", firmware=version, software=f"TwinCAT {version}")
    return ident if len(ident) > 2 else {}


def describe(command: int, port: int, data: bytes) -> tuple[str, str, str]:
    """(name, category, detail) of an ADS request to AMS port `port`."""
    entry = COMMANDS.get(command)
    if entry is None:
        return command_name(command), "other", f"port {port}, unassigned command id {command}"
    name, category = entry
    n = len(data)
    detail = f"port {port}"
    if command in (READ, WRITE, READ_WRITE, ADD_NOTIFICATION) and n >= 12:
        group, offset, length = struct.unpack_from("<III", data, 0)
        gname = group_name(port, group)
        detail += f" index group 0x{group:X}" + (f" ({gname})" if gname else "") + f" offset 0x{offset:X}"
        if command == READ_WRITE and n >= 16:
            write_len = struct.unpack_from("<I", data, 12)[0]
            category = readwrite_category(port, group)
            detail += f" read {length} write {write_len}"
            detail += _written_name(port, group, data[16:16 + min(write_len, 512)])
        elif command == WRITE:
            category = write_category(port, group)
            detail += f" length {length}"
        elif command == ADD_NOTIFICATION and n >= 24:
            mode, _delay, cycle = struct.unpack_from("<III", data, 12)
            detail += f" length {length} mode {TRANS_MODES.get(mode, mode)} cycle {cycle}"
        else:
            detail += f" length {length}"
    elif command == WRITE_CONTROL and n >= 4:
        state, device_state = struct.unpack_from("<HH", data, 0)
        sname = ADS_STATES.get(state, f"state {state}")
        category = control_category(state)
        name = f"{name} {sname}"
        detail += f" ADS state {sname} ({state}) device state {device_state}"
    elif command == DELETE_NOTIFICATION and n >= 4:
        detail += f" handle {struct.unpack_from('<I', data, 0)[0]}"
    return name, category, detail   # ReadDeviceInfo and ReadState carry no data: the port says all


def _written_name(port: int, group: int, written: bytes) -> str:
    """The name a ReadWrite writes to be resolved: a symbol name, a registry key and value."""
    if port == SYSTEM_SERVICE_PORT and group == REGISTRY:
        key, _, rest = written.partition(b"\x00")
        value = rest.split(b"\x00", 1)[0]
        k, v = printable(key, 200), printable(value, 64)
        return f" key HKLM\\{k}" + (f" value {v}" if v else "") if k else ""
    if port != SYSTEM_SERVICE_PORT and group in NAMED_GROUPS:
        sym = printable(written.split(b"\x00", 1)[0], 128)
        return f" symbol {sym}" if sym else ""
    return ""


def _discovery(pkt: Packet) -> list[Observation]:
    h, tags = discovery.parse(pkt.payload)
    reply = bool(h.service & discovery.REPLY)
    service = h.service & ~discovery.REPLY
    out = []
    if once(pkt, "service"):
        out.append(pkt.observe("service", NAME, subject="src" if reply else "dst", name=NAME))
    name = discovery.SERVICES.get(service, f"ADS UDP service {service}")
    if not reply:
        if once(pkt, ("role", service)):
            out.append(pkt.observe("role", NAME, subject="src", role=ENGINEERING_HINT,
                                   reason=ENGINEERING_REASONS.get(service, f"sends TwinCAT UDP service {service}")))
        if service == discovery.ADD_ROUTE:
            out.append(pkt.observe("operation", NAME, subject="dst", category="config", code=f"udp/{service}",
                                   name=name, detail=discovery.route_detail(h, tags)))
            user, password = discovery.text(tags.get(discovery.USER)), _secret(tags.get(discovery.PASSWORD))
            if user is not None or password is not None:
                out.append(pkt.observe("credential", NAME, subject="dst", user=user, password=password,
                                       secret_type="password", cleartext=True, result=None))
        else:
            out.append(pkt.observe("operation", NAME, subject="dst", category="diagnostic",
                                   code=f"udp/{service}", name=name,
                                   detail=f"from AMS NetId {discovery.net_id(h.net_id)}"))
        return out
    status = discovery.status(tags)
    if status:
        out.append(pkt.observe("error", NAME, subject="src", code=status, name=error_name(status),
                               service=service, service_name=name))
    if service == discovery.SEARCH:
        out.append(pkt.observe("identity", NAME, subject="src", **discovery.identity(h, tags)))
    return out


def _secret(value: bytes | None) -> str | None:
    """The password as typed: up to its NUL, not stripped."""
    if value is None:
        return None
    s = value.split(b"\x00", 1)[0].decode("latin-1", "replace")
    return s or None


SPEC = ProtocolSpec(
    name=NAME, title="Beckhoff ADS/AMS", layer="industrial",
    decode=decode, signature=signature, any_port_signature=strict_signature, prime=prime,
    tcp_ports=(ADS_PORT,), udp_ports=(discovery.DISCOVERY_PORT,),
    # AMS/TCP on any port (reserved 0, length = header + data length, command, flags)
    any_port=True,
    routine=(Routine(ads_routine, 128),),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("credential", "error", "identity", "operation", "role", "service"),
)
