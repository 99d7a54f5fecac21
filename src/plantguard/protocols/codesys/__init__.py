"""CODESYS runtimes (V3: UDP 1740-1743 and the TCP block driver on 11740-11743; V2: TCP 1200 and
2455, identification only): which runtimes
answer discovery and what they say they are, and who logs in to, downloads to, starts, stops
or resets which controller.

Observations: service (once per flow, the runtime's side); identity (node name, device name,
vendor, firmware version, target id, serial number) from name service Identification replies;
operation per layer-7 service request in the first block of a channel message (category from
the service group and service, see services.py); error per reply carrying the global error
tag. Encrypted layer-7 traffic (header tag 0x7557) is a service only: its services cannot be
read. A device login gives a credential with the user name (when its credentials tag holds
one) and never a password: V3 sends it encrypted (TAG_DEV_CRYPT_TYPE), so none is reported. CODESYS V2 (TCP 1200 / 2455): the identification request and reply only (v2.py);
the gateway protocol (TCP 1217) is not decoded.

One module per part: frame (block driver, datagram, channel, service header, tags), services
(group and service tables), identity (the name service Identification reply), routine
(Monitoring 2 Read polling; which TCP packets must be decoded, not replayed)."""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import Hold, ProtocolSpec, Routine
from plantguard.protocols.base import once
from plantguard.protocols.codesys.frame import (
    DEVICE_LOGIN,
    DG_SERVICES,
    MAX_TCP,
    NS_IDENTIFICATION,
    SRV_TAG_PLAIN,
    SVC_CHANNEL,
    SVC_NS_CLIENT,
    TCP_HEADER,
    Datagram,
    error_code,
    login_result,
    login_user,
    ns_package,
    parse_block,
    parse_datagram,
    parse_service,
    plausible_datagram,
    plausible_tcp,
    tcp_frame_len,
)
from plantguard.protocols.codesys.identity import identity_from_ns_reply
from plantguard.protocols.codesys.routine import (
    READ_WIDTH,
    WIDTH,
    hold_rows,
    holds,
    monitoring_read_routine,
)
from plantguard.protocols.codesys.services import GROUPS, describe
from plantguard.protocols.codesys.v2 import (
    IDENTIFY_QUERIES,
    V2_PORTS,
    identity_from_v2_reply,
    plausible_v2,
)

NAME = "codesys"
DISCOVERY_PORTS = tuple(range(1740, 1744))
BLOCK_DRIVER_PORTS = tuple(range(11740, 11744))
MAX_PDUS_PER_SEGMENT = 64

__all__ = ["NAME", "SPEC", "decode", "describe", "identity_from_ns_reply", "signature", "tcp_signature"]


def signature(payload: bytes) -> bool:
    """On the CODESYS ports: block driver blocks (TCP), one bare datagram (UDP), or the V2
    identification request or reply (TCP 1200 / 2455)."""
    return plausible_tcp(payload) or plausible_datagram(payload) or plausible_v2(payload)


def tcp_signature(payload: bytes) -> bool:
    """On any other port only whole block driver blocks: a 4-byte magic, a length equal to the
    block and a plausible datagram inside leave little to chance; a bare datagram is one magic
    byte and small numbers."""
    return plausible_tcp(payload)


def decode(pkt: Packet) -> list[Observation]:
    if pkt.l4 != "tcp":
        d = parse_datagram(pkt.payload)
        return _observe(pkt, d) if d is not None else []
    if pkt.payload[:1] == b"\xbb" and (pkt.sport in V2_PORTS or pkt.dport in V2_PORTS):
        return _v2(pkt)
    out: list[Observation] = []
    for pdu in tcp_pdus(pkt, tcp_frame_len, MAX_TCP, MAX_PDUS_PER_SEGMENT):
        d = parse_datagram(pdu[TCP_HEADER:])
        if d is not None:
            out.extend(_observe(pkt, d))
    return out


def prime(pkt: Packet) -> None:
    """The flow moved past a replayed packet exactly as decode() moves it (the TCP stream and the
    once-per-flow service): the packets replayed here are few and short, so decoding them again
    and dropping the output costs little and cannot drift from decode()."""
    decode(pkt)


def _service(pkt: Packet, subject: str) -> list[Observation]:
    return [pkt.observe("service", NAME, subject=subject, name=NAME)] if once(pkt, "service") else []


def _observe(pkt: Packet, d: Datagram) -> list[Observation]:
    if d.service not in DG_SERVICES:
        return []
    if d.service == SVC_NS_CLIENT:
        return _ns_reply(pkt, d.payload)
    if d.service != SVC_CHANNEL:
        return []       # name service requests go to broadcast; address notifications say nothing more
    block = parse_block(d.payload)
    srv = parse_service(block[2]) if block is not None else None
    if srv is None:
        return _service(pkt, "dst" if pkt.from_client else "src") if block is not None else []
    out = _service(pkt, "src" if srv.reply else "dst")
    if srv.protocol != SRV_TAG_PLAIN:
        return out      # encrypted layer 7: the services are not readable
    if srv.reply:
        code = error_code(srv.body)
        if not code and (srv.group, srv.service) == DEVICE_LOGIN:
            code = login_result(srv.body)
        if code:
            name, _category = describe(srv.group, srv.service)
            out.append(pkt.observe("error", NAME, subject="src", code=code, name=f"Error 0x{code:04X}",
                                   function=srv.group << 8 | srv.service, function_name=name))
        return out
    if (srv.group, srv.service) == DEVICE_LOGIN:
        out.extend(_credential(pkt, srv.body))
    name, category = describe(srv.group, srv.service)
    group = GROUPS.get(srv.group, f"0x{srv.group:02X}")
    out.append(pkt.observe("operation", NAME, subject="dst", category=category,
                           code=srv.group << 8 | srv.service, name=name,
                           detail=f"group={group} service=0x{srv.service:02X} session=0x{srv.session:08X} "
                                  f"channel={block[0]}"))
    return out


def _credential(pkt: Packet, body: bytes) -> list[Observation]:
    """A device login: the user name when the credentials tag carries one in clear; the
    password is never read (it crosses encrypted, see login_user)."""
    user = login_user(body)
    if user is None:
        return []
    return [pkt.observe("credential", NAME, subject="dst", user=user or None, password=None,
                        secret_type="password", cleartext=False)]


def _v2(pkt: Packet) -> list[Observation]:
    """The V2 identification exchange: the request is a diagnostic operation, the reply names
    the runtime's operating system and product type."""
    if pkt.payload in IDENTIFY_QUERIES:
        out = _service(pkt, "dst")
        out.append(pkt.observe("operation", NAME, subject="dst", category="diagnostic", code=0xBBBB,
                               name="V2 identification",
                               detail=f"byte order {IDENTIFY_QUERIES[pkt.payload]}"))
        return out
    ident = identity_from_v2_reply(pkt.payload)
    if not ident:
        return []
    out = _service(pkt, "src")
    out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _ns_reply(pkt: Packet, p: bytes) -> list[Observation]:
    if ns_package(p) != NS_IDENTIFICATION:
        return []
    out = _service(pkt, "src")
    ident = identity_from_ns_reply(p)
    if ident:
        out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


SPEC = ProtocolSpec(
    name=NAME,
    title="CODESYS runtime",
    layer="industrial",
    decode=decode,
    signature=signature,
    prime=prime,
    routine=(Routine(monitoring_read_routine, READ_WIDTH),),
    hold=Hold(hold_rows, WIDTH, holds),
    tcp_ports=BLOCK_DRIVER_PORTS + V2_PORTS,
    udp_ports=DISCOVERY_PORTS,
    any_port=True,
    any_port_signature=tcp_signature,
    traits=frozenset({"industrial", "controller-server"}),
    server_role="plc",
    observes=("credential", "error", "identity", "operation", "service"),
)
