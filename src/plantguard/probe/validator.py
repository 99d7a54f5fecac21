"""The send-side validator: every frame a query yields is decoded, before it is sent, by the
passive decoder of the query's protocol, exactly as a capture of it would be (one decoder state
per connection, the TCP byte stream's sequence numbers kept), and is allowed only when every
operation the decoder reads in it is in the read-only catalogue. Unreadable frames, frames of
another protocol, broadcast or multicast destinations and anything the catalogue does not name
are refused; a refused frame ends its query and is never sent."""
from __future__ import annotations

import ipaddress

from plantguard.model import Packet
from plantguard.probe import catalogue
from plantguard.protocols.registry import spec_of

MAX_FRAME = 1500


class Refused(Exception):
    """A frame the validator will not let leave; the message says why in one line."""


def unicast_ip(ip: str) -> bool:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (a.is_multicast or a.is_unspecified or str(a) == "255.255.255.255")


def unicast_mac(mac: str | None) -> bool:
    try:
        return mac is not None and not (int(mac.split(":")[0], 16) & 1)
    except ValueError:
        return False


class ConnectionValidator:
    """One conversation's frames, in order (a TCP connection, a UDP exchange, an L2 exchange)."""

    def __init__(self, protocol: str, l4: str, dst: str, dport: int, dst_mac: str | None = None,
                 ethertype: int = 0):
        self.protocol, self.l4, self.dst, self.dport = protocol, l4, dst, dport
        self.dst_mac, self.ethertype = dst_mac, ethertype
        self.spec = spec_of(protocol)
        self.state: dict = {}
        self.seq = 1
        self.frames = 0
        if self.spec is None:
            raise Refused(f"{protocol} is not a protocol plantguard decodes")
        if l4 and not unicast_ip(dst):
            raise Refused(f"{dst} is not a unicast address")
        if not l4 and not unicast_mac(dst_mac):
            raise Refused(f"{dst_mac} is not a unicast MAC address")

    def restart(self) -> None:
        """A new connection of the same conversation: the decoder starts afresh."""
        self.state, self.seq, self.frames = {}, 1, 0

    def check(self, payload: bytes) -> list[str]:
        """The operations `payload` carries (names), or Refused."""
        if not isinstance(payload, (bytes, bytearray)) or not payload:
            raise Refused("an empty frame")
        if len(payload) > MAX_FRAME:
            raise Refused(f"a {len(payload)}-byte frame (at most {MAX_FRAME})")
        payload = bytes(payload)
        if self.l4 and self.frames == 0 and self.spec.signature and not self.spec.signature(payload):
            raise Refused(f"the frame does not look like {self.spec.title}")
        self.frames += 1
        pkt = Packet(capture="probe", frame=self.frames, ts=0.0, payload=payload, src="192.0.2.1",
                     dst=self.dst if self.l4 else None, src_mac="02:00:00:00:00:01", dst_mac=self.dst_mac,
                     ethertype=self.ethertype, l4=self.l4, sport=49152 if self.l4 else 0,
                     dport=self.dport, seq=self.seq, from_client=True, state=self.state, tcp_flags=0x18)
        self.seq += len(payload)
        try:
            observations = self.spec.decode(pkt)
        except Exception as exc:      # a decoder that cannot read it: not provably read-only
            raise Refused(f"{self.spec.title} cannot decode the frame ({type(exc).__name__})") from None
        ops = [o.data for o in observations if o.kind == "operation"]
        if not ops:
            silent = catalogue.SILENT.get(self.protocol)
            if silent is not None and silent(payload):
                return ["connection set-up"]
            raise Refused(f"{self.spec.title} reads no operation in the frame")
        form = catalogue.FORM.get(self.protocol)
        problem = form(payload) if form is not None else None
        if problem:
            raise Refused(f"{self.spec.title}: {problem}")
        names = []
        for data in ops:
            entry = catalogue.allowed(self.protocol, data)
            if entry is None:
                raise Refused(f"{self.spec.title} {data.get('name') or data.get('code')} "
                              f"({data.get('category')}) is not a read-only operation of the catalogue")
            names.append(entry.name)
        return names
