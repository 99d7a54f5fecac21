"""A probe query, declared once in its protocol's module under probe/queries/.

`exchange(target)` is a generator: it yields each request payload and receives the response
(bytes, or None when there was none or on a dry run, where a query must go on with assumed
values so every frame it would send can be shown). The session never sends what it yields
before the validator allows it, so a query cannot send a write however it is written."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generator, Optional

from plantguard.protocols.registry import spec_of

TRANSPORTS = ("tcp", "udp", "tls", "l2")



class NewConnection:
    """Yielded by a TCP query instead of a frame: close this connection (our FIN), then open a
    new one to the same port for the frames that follow (an S7 connection request to another
    slot). The old one is closed first, so a device never has two of ours open; the query is
    sent None back."""


NEW_CONNECTION = NewConnection()

Exchange = Generator["bytes | NewConnection", Optional[bytes], None]


@dataclass(frozen=True)
class Target:
    """One device to ask: its address, and what passive traffic already said about it."""
    ip: str
    mac: str | None = None
    zone: str | None = None
    name: str | None = None
    hints: dict = field(default_factory=dict)   # e.g. {"modbus_units": [1], "bacnet_device": 1234}


@dataclass(frozen=True)
class Query:
    protocol: str            # a plantguard protocol name: its decoder validates every frame sent
    name: str                # short, unique per protocol ("identity", "system", "engine-id")
    title: str               # what it asks, in words, for the dry run and the results
    transport: str           # tcp | udp | tls (TCP wrapped in TLS) | l2 (raw Ethernet frames)
    port: int                # server port (0 for l2)
    exchange: Callable[[Target], Exchange]
    # tcp/tls: how many bytes of `buf` make the first complete response (None: need more bytes)
    response_length: Callable[[bytes], int | None] | None = None
    # tcp/tls: frames the server answers by closing, not with a response (OPC UA CloseSecureChannel)
    no_reply: Callable[[bytes], bool] | None = None
    ethertype: int = 0       # l2 only
    needs: tuple[str, ...] = ()   # Target fields it cannot go without ("mac" for l2)
    reads: str = ""          # the identity fields it can give

    def __post_init__(self):
        if spec_of(self.protocol) is None:
            raise ValueError(f"probe query {self.name!r}: {self.protocol!r} is not a decoded protocol")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"probe query {self.id}: transport must be one of {', '.join(TRANSPORTS)}")
        if self.transport in ("tcp", "tls") and self.response_length is None:
            raise ValueError(f"probe query {self.id}: a TCP query needs response_length")
        if self.transport == "l2" and not self.ethertype:
            raise ValueError(f"probe query {self.id}: an l2 query needs its EtherType")

    @property
    def id(self) -> str:
        return f"{self.protocol}.{self.name}"
