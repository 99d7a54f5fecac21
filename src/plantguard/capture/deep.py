"""The deep tier: hands the packets worth it to their protocol module, keeping per-flow state
(direction, owning protocol, the module's own state) in a bounded table."""
from __future__ import annotations

from collections import OrderedDict

from plantguard.capture.layers import Layers
from plantguard.model import Observation, Packet
from plantguard.protocols import registry

MAX_CLASSIFY_TRIES = 8  # payload packets tried before a flow is left unclassified
DEFAULT_MAX_STATES = 200_000  # per-flow decoder states kept (least recently used go first)


class Partial(list):
    """What a module emitted (Packet.observe) for one packet before it raised: kept, and the
    error still counted."""
    __slots__ = ()


class FlowState:
    __slots__ = ("client", "client_port", "module", "state", "tries")

    def __init__(self, client: str, client_port: int):
        self.client = client
        self.client_port = client_port
        self.module = None
        self.state: dict = {}
        self.tries = 0


class DeepTier:
    def __init__(self, max_flows: int = DEFAULT_MAX_STATES):
        self.flows: OrderedDict[tuple, FlowState] = OrderedDict()
        self.max_flows = max_flows
        self.errors = 0
        self.partial = 0     # errors after which the packet's earlier observations were kept
        self.evicted = 0
        # per layer-2 module, the state all its frames share in this run (layer-2 frames make
        # no flows; a module that keeps any must make its frame_routine prove that replaying a
        # frame leaves what it says later unchanged: protocols/goose.py)
        self.l2_states: dict[str, dict] = {}
        tcp, udp, eth, _ = registry.port_tables()
        self._eth = eth
        self._llc = {}
        for m in registry.protocol_modules():
            for key in m.SPEC.llc_snap:
                self._llc[key] = m

    @property
    def handles_llc(self) -> bool:
        """Whether any protocol module decodes 802.2 LLC/SNAP frames (else the engine need not
        send them here)."""
        return bool(self._llc)

    def flow_state(self, lay: Layers) -> FlowState:
        key = flow_key(lay)
        fs = self.flows.get(key)
        if fs is None:
            fs = FlowState(*orient(lay))
            self.flows[key] = fs
            if len(self.flows) > self.max_flows:
                self.flows.popitem(last=False)
                self.evicted += 1
        else:
            self.flows.move_to_end(key)
        return fs

    def handle(self, capture: str, frame: int, ts: float, lay: Layers) -> list[Observation]:
        if lay.l4:
            return self._handle_l4(capture, frame, ts, lay)
        if lay.src is None and lay.ethertype:
            return self._handle_l2(capture, frame, ts, lay)
        return []

    def _handle_l4(self, capture, frame, ts, lay) -> list[Observation]:
        fs = self.flow_state(lay)
        payload = lay.payload
        if fs.module is None:
            if not payload or fs.tries >= MAX_CLASSIFY_TRIES:
                return []
            fs.tries += 1
            fs.module = registry.classify(lay.l4, lay.sport, lay.dport, payload)
            if fs.module is None:
                return []
        if not payload and lay.l4 == "tcp":
            return []
        from_client = lay.src == fs.client and lay.sport == fs.client_port
        return self.decode_l4(fs.module, fs.state, from_client, capture, frame, ts, lay)

    def decode_l4(self, module, state: dict, from_client: bool, capture: str, frame: int,
                  ts: float, lay: Layers, *, count_errors: bool = True) -> list[Observation]:
        """Run a flow's protocol module on one TCP/UDP packet (the flow is already classified)."""
        return self.run(module, l4_packet(state, from_client, capture, frame, ts, lay),
                        count_errors=count_errors) or []

    def prime(self, module, pkt: Packet) -> None:
        """Feed the module a packet whose outcome a replay counted, so that its flow state moves
        past it: the module's SPEC.prime when it declares one (no output made), else a decode
        whose output is dropped. A raise is not an error: the replay accounted for the packet."""
        fn = module.SPEC.prime
        if fn is None:
            self.run(module, pkt, count_errors=False)
            return
        try:
            fn(pkt)
        except Exception:  # noqa: BLE001, S110 - as run() with count_errors=False
            pass

    def _handle_l2(self, capture, frame, ts, lay) -> list[Observation]:
        data = bytes(lay.l3)
        if lay.llc:
            if len(data) >= 8 and data[:3] == b"\xaa\xaa\x03":
                mod = self._llc.get((data[3:6], int.from_bytes(data[6:8], "big")))
                data = data[8:]
            else:
                mod = None
            mods = (mod,) if mod else ()
        else:
            mods = self._eth.get(lay.ethertype, ())
        out: list[Observation] = []
        for mod in mods:
            pkt = Packet(capture, frame, ts, data, lay.src_mac, lay.dst_mac, lay.ethertype, lay.vlan,
                         state=self.l2_states.setdefault(mod.SPEC.name, {}))
            out.extend(self.run(mod, pkt) or ())
        return out

    def run(self, module, pkt: Packet, *, count_errors: bool = True) -> list[Observation] | None:
        """The module's observations for one packet, or None when the module raised (garbage in
        a protocol field) before emitting any: that is counted in `errors` unless count_errors
        is False (the engine re-feeding a packet whose outcome was already counted), and the
        run goes on. A module that raised after emitting observations (Packet.observe keeps
        them in pkt.emitted; e.g. the second of several BACnet APDUs is garbage) gives a
        Partial list of those, counted in `partial` too."""
        try:
            return list(module.decode(pkt) or ())
        except Exception:
            if count_errors:
                self.errors += 1
            if not pkt.emitted:
                return None
            if count_errors:
                self.partial += 1
            return Partial(pkt.emitted)


def l4_packet(state: dict, from_client: bool, capture: str, frame: int, ts: float, lay: Layers) -> Packet:
    """The Packet a module decodes for one TCP/UDP frame of a classified flow."""
    return Packet(capture, frame, ts, lay.payload, lay.src_mac, lay.dst_mac, lay.ethertype, lay.vlan,
                  lay.src, lay.dst, lay.l4, lay.sport, lay.dport, lay.tcp_flags, lay.seq, from_client, state)


def flow_key(lay: Layers) -> tuple:
    """Direction-free key of a packet's conversation: (l4, vlan, lower endpoint, higher endpoint)."""
    a, b = (lay.src, lay.sport), (lay.dst, lay.dport)
    return (lay.l4, lay.vlan) + ((a, b) if a <= b else (b, a))


def orient(lay: Layers) -> tuple[str, int]:
    """(client address, client port) for a new flow: the SYN sender, else the side not on a
    well-known server port, else the first sender."""
    if lay.l4 == "tcp" and lay.tcp_flags & 0x12 == 0x12:   # SYN-ACK comes from the server
        return lay.dst, lay.dport
    if lay.l4 == "tcp" and lay.tcp_flags & 0x02:
        return lay.src, lay.sport
    s_known = registry.is_known_server_port(lay.l4, lay.sport)
    d_known = registry.is_known_server_port(lay.l4, lay.dport)
    if s_known and not d_known:
        return lay.dst, lay.dport
    if d_known and not s_known:
        return lay.src, lay.sport
    if not s_known and not d_known and lay.sport < 1024 <= lay.dport:
        return lay.dst, lay.dport
    return lay.src, lay.sport
