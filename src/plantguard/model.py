"""The records that flow between stages: a decoded packet (Packet) and what a protocol
module saw in it (Observation). Protocol modules only build these; inventory and checks
only read them.

Observation kinds and their data keys are declared, typed, in observation_kinds.py (rendered in
docs/observations.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plantguard.observation_kinds import KINDS

# Every Observation kind (their data keys: observation_kinds.py).
OBSERVATION_KINDS = tuple(KINDS)

# What an industrial operation does, from the defender's point of view.
OP_CATEGORIES = (
    "read",        # read data / status
    "write",       # write data points, set attributes, operate outputs
    "program",     # program / block / logic download, upload, delete
    "firmware",    # firmware update
    "control",     # run / stop / mode change / restart / reinitialise
    "config",      # configuration change (IP, communication control, time set)
    "diagnostic",  # diagnostics, identification, device info
    "file",        # file transfer operations
    "auth",        # authentication exchange
    "other",
)

# Categories that change a controller and so need an authorised station.
WRITE_CATEGORIES = frozenset({"write", "config"})
PROGRAM_CATEGORIES = frozenset({"program", "firmware", "control"})


@dataclass(slots=True)
class Observation:
    kind: str
    proto: str
    capture: str
    frame: int
    ts: float
    src: str | None
    dst: str | None
    src_mac: str | None = None
    dst_mac: str | None = None
    l4: str = ""          # "tcp", "udp" or "" for layer-2 protocols
    sport: int = 0
    dport: int = 0
    vlan: int | None = None
    subject: str = "src"  # which endpoint an identity/service/role/hostname describes
    data: dict[str, Any] = field(default_factory=dict)
    # Repeats of the same observation are folded into the first one (memory stays bounded):
    count: int = 1
    last_frame: int | None = None
    last_ts: float | None = None

    @property
    def subject_ip(self) -> str | None:
        return self.src if self.subject == "src" else self.dst

    @property
    def subject_mac(self) -> str | None:
        return self.src_mac if self.subject == "src" else self.dst_mac

    @property
    def subject_port(self) -> int:
        return self.sport if self.subject == "src" else self.dport


@dataclass(slots=True)
class Packet:
    """One packet handed to a protocol module (the deep tier). `payload` is the L4 payload
    for TCP/UDP, or the Ethernet payload (after VLAN tags) for layer-2 protocols."""
    capture: str
    frame: int              # 1-based, as Wireshark numbers frames in that capture
    ts: float
    payload: bytes
    src_mac: str | None = None
    dst_mac: str | None = None
    ethertype: int = 0
    vlan: int | None = None
    src: str | None = None  # IP address text, None for layer-2 protocols
    dst: str | None = None
    l4: str = ""            # "tcp" | "udp" | ""
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    seq: int = 0
    from_client: bool = True  # direction within the flow: client -> server
    state: dict = field(default_factory=dict)  # per-flow, per-protocol state kept by the engine
    # every observation made for this packet, in order: what the deep tier keeps when the
    # module raises after emitting some (deep.DeepTier.run)
    emitted: list = field(default_factory=list)

    def observe(self, kind: str, proto: str, subject: str = "src", **data: Any) -> Observation:
        o = Observation(kind, proto, self.capture, self.frame, self.ts, self.src, self.dst,
                        self.src_mac, self.dst_mac, self.l4, self.sport, self.dport, self.vlan,
                        subject, data)
        self.emitted.append(o)
        return o


@dataclass(slots=True)
class Flow:
    """A bidirectional conversation (5-tuple + VLAN), oriented client -> server."""
    l4: str                  # "tcp" | "udp" | other IP protocol name/number as text
    client: str
    server: str
    client_port: int
    port: int                # server port
    vlan: int | None = None
    client_mac: str | None = None
    server_mac: str | None = None
    app: str | None = None   # protocol module NAME that owns the flow
    packets: int = 0
    bytes: int = 0
    packets_to_server: int = 0
    bytes_to_server: int = 0
    first: float = 0.0
    last: float = 0.0
    capture: str = ""
    first_frame: int = 0
    operations: dict[str, int] = field(default_factory=dict)  # category -> count
    tunnel: str | None = None  # outermost tunnel of its first tunnelled packet (layers.TUNNEL_KEYS); None: none

    def key(self) -> tuple:
        # No tunnel: one conversation seen inside a tunnel and outside it (a mirror on both
        # sides of a GRE router) is one flow, with the mark; the engine keys flows the same way.
        return (self.l4, self.client, self.server, self.port, self.vlan)


@dataclass
class CaptureStats:
    """What reading one capture gave. `warnings` holds at most a few texts per kind of problem
    (capture.formats.WARNING_EXAMPLES, plus one summary line per kind that had more);
    `warning_counts` counts every one, by kind (kinds: docs/robustness.md)."""
    path: str
    packets: int = 0
    bytes: int = 0
    first: float | None = None
    last: float | None = None
    warnings: list[str] = field(default_factory=list)
    warning_counts: dict[str, int] = field(default_factory=dict)
    linktypes: list[int] = field(default_factory=list)   # link types read (names the captures of a
                                                         # not-decoded link type; not in as_dict)

    def as_dict(self) -> dict[str, Any]:
        from plantguard.util.timefmt import iso
        return {"path": self.path, "packets": self.packets, "bytes": self.bytes, "first": iso(self.first),
                "last": iso(self.last), "warnings": self.warnings, "warning_counts": self.warning_counts}


@dataclass
class AnalysisResult:
    """Everything the packet stage produced; the only input of inventory/ and checks/."""
    captures: list[CaptureStats] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # skipped/fragments/decode errors/evicted
    notes: list[str] = field(default_factory=list)           # e.g. "flow table capped at N; ..."
    limits: dict[str, int] = field(default_factory=dict)     # the run's budget limits (budget.Budget)
