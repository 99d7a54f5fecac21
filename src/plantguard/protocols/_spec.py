"""ProtocolSpec: everything the rest of plantguard needs to know about one protocol, declared
once in the protocol's own module as `


SPEC = ProtocolSpec(...)` and checked when it is built.

Ports, EtherTypes and the signature decide which packets reach the decoder; traits and
server_role tell inventory and the checks what the protocol means (derived lists, never copies);
routine rules let the engine recognise the polling bulk with array operations and replay what the
decoder said, so they sit beside the decoder whose output they must agree with."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from difflib import get_close_matches
from typing import Callable

from plantguard.model import OBSERVATION_KINDS

# What a protocol can mean to the policy stages (inventory roles, checks).
TRAITS = {
    "industrial": "an industrial (OT) protocol: speaking it makes a host part of the plant side",
    "unauthenticated-control": "carries control commands and has no authentication of its own",
    "controller-server": "whoever serves it is a controller (PLC/RTU) for peer counting",
}
# Roles a protocol may give to the hosts that serve it (a subset of inventory's roles).
SERVER_ROLES = ("plc", "rtu", "io-device", "gateway", "broker", "ied")
LAYERS = ("industrial", "it")
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,31}$")


class ProtocolSpecError(ValueError):
    """A protocol module declares itself wrongly; the message is one line naming the module."""


@dataclass(frozen=True)
class Routine:
    """A routine-packet recogniser: fn(p, plen, from_client, l4, sport, dport) -> (mask, key)
    over `width` leading payload bytes per row. The key must hash every field the decoder's
    output depends on for a recognised packet (a miss costs speed, a wrong key correctness).
    `transport` (6 TCP, 17 UDP, 0 either): the only rows fn is offered, when it can match no other."""
    fn: Callable
    width: int
    transport: int = 0


@dataclass(frozen=True)
class Hold:
    """When a flow's packets must be decoded, not replayed, because the decoder's output for them
    depends on state it keeps (a request waiting for its reply): rows(p, plen, from_client, l4,
    sport, dport) -> mask over `width` leading payload bytes marks the packets that may start
    such state (from one on, the rest of its flow's chunk is decoded); state(flow_state) -> bool
    says whether a flow's state has some when a chunk starts."""
    rows: Callable
    width: int
    state: Callable


@dataclass(frozen=True, kw_only=True)
class ProtocolSpec:
    name: str                          # application name used in flows, observations and site files
    title: str                         # what users call it ("Modbus/TCP")
    layer: str                         # "industrial" | "it": where the README lists it
    decode: Callable                   # decode(pkt) -> list[Observation]; may raise on garbage
    signature: Callable | None = None  # signature(payload) -> bool; payload looks like this protocol
    prime: Callable | None = None      # prime(pkt): state moved past a replayed packet as decode would, no output
    tcp_ports: tuple[int, ...] = ()    # well-known server ports
    udp_ports: tuple[int, ...] = ()
    ethertypes: tuple[int, ...] = ()   # layer-2 protocols
    llc_snap: tuple[tuple[bytes, int], ...] = ()   # (OUI, protocol id) in 802.2 SNAP frames
    any_port: bool = False             # the signature is strict enough to claim any port
    any_port_signature: Callable | None = None  # with any_port: a stricter signature for other ports
    replay: bool = True                # False: output depends on the whole conversation; no routine replay
    routine: tuple[Routine, ...] = ()  # recognisers tried in order (a generic short-payload one follows)
    hold: Hold | None = None           # when state the decoder keeps forbids replaying a flow's packets
    # frame_routine(buf, off, plen) -> (mask, key): the routine frames of its EtherTypes (payload at
    # buf[off:off + plen]) with a key of what the decoder's output depends on besides MACs and VLAN;
    # with a `macs` parameter it also gets macs=(src MAC column, dst MAC column)
    frame_routine: Callable | None = None
    traits: frozenset[str] = field(default_factory=frozenset)
    server_role: str | None = None     # role of the hosts that serve it, when the protocol says it
    observes: tuple[str, ...] = ()     # Observation kinds the decoder emits

    def __post_init__(self):
        problems = list(_problems(self))
        if problems:
            raise ProtocolSpecError(f"protocol {self.name!r}: " + "; ".join(problems))

    @property
    def l4_ports(self) -> set[tuple[str, int]]:
        return {("tcp", p) for p in self.tcp_ports} | {("udp", p) for p in self.udp_ports}


def _problems(s: ProtocolSpec):
    for rule in (_identity_problems, _where_problems, _policy_problems, _routine_problems):
        yield from rule(s)


def _identity_problems(s: ProtocolSpec):
    if not isinstance(s.name, str) or not _NAME.match(s.name):
        yield "name must be 2-32 lowercase letters, digits or '-'"
    if not s.title:
        yield "title is empty"
    if s.layer not in LAYERS:
        yield f"layer must be one of {', '.join(LAYERS)}"
    if not callable(s.decode):
        yield "decode is not callable"


def _where_problems(s: ProtocolSpec):
    """Which packets reach the decoder: ports, EtherTypes, SNAP ids, a signature."""
    for key, lo, hi in (("tcp_ports", 1, 65535), ("udp_ports", 1, 65535), ("ethertypes", 0x0600, 0xFFFF)):
        values = getattr(s, key)
        if not isinstance(values, tuple) or not all(isinstance(v, int) and lo <= v <= hi for v in values):
            yield f"{key} must be a tuple of integers in {lo}..{hi}"
        elif len(set(values)) != len(values):
            yield f"{key} lists a value twice"
    if not all(isinstance(o, bytes) and len(o) == 3 and isinstance(pid, int) for o, pid in s.llc_snap):
        yield "llc_snap entries must be (3-byte OUI, protocol id)"
    if (s.tcp_ports or s.udp_ports or s.any_port) and not callable(s.signature):
        yield "a protocol on TCP/UDP needs a callable signature"
    if s.any_port_signature is not None and not (s.any_port and callable(s.any_port_signature)):
        yield "any_port_signature needs any_port and must be callable"
    if not (s.tcp_ports or s.udp_ports or s.ethertypes or s.llc_snap or s.any_port):
        yield "no ports, EtherTypes, SNAP ids or any_port: it would never see a packet"


def _policy_problems(s: ProtocolSpec):
    """What the protocol means to inventory and checks, and what it says."""
    unknown = set(s.traits) - set(TRAITS)
    if not isinstance(s.traits, frozenset) or unknown:
        yield f"traits must be a frozenset of {', '.join(sorted(TRAITS))} (got {sorted(unknown)})"
    if s.server_role is not None and s.server_role not in SERVER_ROLES:
        yield f"server_role must be one of {', '.join(SERVER_ROLES)}"
    if set(s.observes) - set(OBSERVATION_KINDS):
        yield f"observes names unknown kinds {sorted(set(s.observes) - set(OBSERVATION_KINDS))}"


def _routine_problems(s: ProtocolSpec):
    if not all(isinstance(r, Routine) and callable(r.fn) and 1 <= r.width <= 4096 and r.transport in (0, 6, 17)
               for r in s.routine):
        yield "routine must be a tuple of Routine(fn, width 1..4096, transport 0, 6 or 17)"
    if s.prime is not None and not callable(s.prime):
        yield "prime is not callable"
    if s.hold is not None and not (isinstance(s.hold, Hold) and callable(s.hold.rows)
                                   and callable(s.hold.state) and 1 <= s.hold.width <= 4096):
        yield "hold must be a Hold(rows, width 1..4096, state)"
    if s.routine and not s.replay:
        yield "routine recognisers on a protocol that forbids replay"
    if s.frame_routine is not None and (not callable(s.frame_routine) or not s.ethertypes or not s.replay):
        yield "frame_routine must be callable, on a protocol with EtherTypes that allows replay"


def unknown_key_error(module: str, err: TypeError) -> ProtocolSpecError | None:
    """A one-line error for ProtocolSpec(... typo=...) (Python says "unexpected keyword")."""
    m = re.search(r"unexpected keyword argument '(\w+)'", str(err))
    if not m:
        return None
    known = [f.name for f in fields(ProtocolSpec)]
    hint = get_close_matches(m.group(1), known, n=1)
    return ProtocolSpecError(f"{module}: ProtocolSpec has no key {m.group(1)!r}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
