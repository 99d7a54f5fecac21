"""syslog+udp://HOST:PORT?format=cef|ecs|rfc5424[&max=BYTES] — RFC 5426: one RFC 5424 message per
datagram, cut to `max` bytes (default 2048, which RFC 5426 says receivers SHOULD accept; at most
65507) at a UTF-8 character boundary. UDP has no acknowledgement: a datagram the socket took counts
as delivered, so this sink loses what the network loses (use syslog+tls:// for no loss)."""
from __future__ import annotations

import socket

from plantguard.errors import InputError
from plantguard.siem.events import Event
from plantguard.siem.sink_syslog import host_port, syslog_message
from plantguard.siem.spec import (
    DeliveryError,
    Format,
    Sink,
    SinkKind,
    SinkURL,
    failure_reason,
)

DEFAULT_MAX = 2048
LIMIT = 65507            # the largest UDP payload over IPv4


class UdpSyslogSink(Sink):
    def __init__(self, name: str, host: str, port: int, fmt: Format, max_bytes: int):
        self.name, self.host, self.port, self.format, self.max_bytes = name, host, port, fmt, max_bytes
        self.truncated = 0          # messages cut to max_bytes

    def encode(self, event: Event) -> bytes:
        data = syslog_message(event, self.format).encode("utf-8")
        if len(data) <= self.max_bytes:
            return data
        self.truncated += 1
        return data[:self.max_bytes].decode("utf-8", "ignore").encode("utf-8")

    def send(self, records: list[bytes]) -> None:
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            with socket.socket(family[0], socket.SOCK_DGRAM) as sock:
                for r in records:
                    sock.sendto(r, family[4])
        except OSError as e:
            raise DeliveryError(f"{self.name}: {failure_reason(e)}") from None


def open_udp(url: SinkURL, fmt: Format) -> UdpSyslogSink:
    host, port = host_port(url)
    raw = url.options.get("max", str(DEFAULT_MAX))
    if not raw.isdigit() or not 480 <= int(raw) <= LIMIT:
        raise InputError(f"{url.safe()}: max= must be a byte count from 480 to {LIMIT}, not {raw!r}")
    return UdpSyslogSink(url.safe(), host, port, fmt, int(raw))


SINK = SinkKind("syslog-udp", ("syslog+udp",), ("rfc5424", "cef", "ecs"), open_udp, options=("format", "max"),
                description="RFC 5426 syslog, one message per UDP datagram, size-capped")
