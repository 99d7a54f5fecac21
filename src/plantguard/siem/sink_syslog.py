"""syslog+tcp://HOST:PORT and syslog+tls://HOST:PORT?format=cef|ecs|rfc5424[&ca=&cert=&key=] —
RFC 5424 messages over a stream with RFC 5425 octet-counted framing (`LEN SP MSG`; RFC 6587
calls the same framing octet counting for plain TCP). TLS is the standard library's, with the
server certificate and host name verified by default (ca= a CA file instead of the system's
store; cert= and key= a client certificate).

Syslog has no acknowledgement of its own (RELP adds one), so a batch counts as acknowledged when
the collector read all of it and was still serving afterwards: each batch goes over its own
connection, closed from this end (TLS close_notify, then TCP FIN) with the collector's close
awaited; then a second, empty connection must be served the same way. A collector that stops
mid-batch may still close the first connection in order (it read the bytes, then dropped them on
its way out: measured with rsyslog), but it no longer serves the second, so the batch stays in the
outbox and is sent again (the receiver drops repeats by event id). Only a collector that restarts
within the moment between the two connections can lose a batch."""
from __future__ import annotations

import socket
import ssl
from pathlib import Path

from plantguard.errors import InputError
from plantguard.siem import rfc5424
from plantguard.siem.events import Event
from plantguard.siem.spec import (
    DeliveryError,
    Format,
    Sink,
    SinkKind,
    SinkURL,
    failure_reason,
)

TIMEOUT = 10.0          # seconds for connect, each send and the collector's close
MAX_REPLY = 1 << 16     # bytes read from a collector while awaiting its close


class StreamSyslogSink(Sink):
    def __init__(self, name: str, host: str, port: int, fmt: Format, context: ssl.SSLContext | None,
                 timeout: float = TIMEOUT):
        self.name, self.host, self.port, self.format = name, host, port, fmt
        self.context, self.timeout = context, timeout

    def encode(self, event: Event) -> bytes:
        return syslog_message(event, self.format).encode("utf-8")

    def send(self, records: list[bytes]) -> None:
        frames = b"".join(b"%d %s" % (len(r), r) for r in records)
        try:
            self._session(frames)
            self._session(b"")              # still serving: the batch was not read on its way out
        except (OSError, ValueError, DeliveryError) as e:
            raise DeliveryError(f"{self.name}: {failure_reason(e)}") from None

    def _session(self, data: bytes) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            if self.context:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            sock.sendall(data)
            _close_and_await(sock)
        finally:
            sock.close()


def syslog_message(event: Event, fmt: Format) -> str:
    """The RFC 5424 message for an event: the rfc5424 format is one; CEF or ECS go in its MSG."""
    return fmt.render(event) if fmt.name == "rfc5424" else rfc5424.message(event, fmt.render(event))


def _close_and_await(sock: socket.socket) -> None:
    """Close our side and wait for the collector's orderly close (it reads to our end first)."""
    if isinstance(sock, ssl.SSLSocket):
        try:
            sock = sock.unwrap()
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return                  # the collector closed after reading our close_notify
    sock.shutdown(socket.SHUT_WR)
    for _ in range(MAX_REPLY // 4096):   # a collector has nothing to say; one that talks on is cut off
        if not sock.recv(4096):
            return
    raise DeliveryError("the collector sent data instead of closing")


def tls_context(url: SinkURL) -> ssl.SSLContext:
    o = url.options
    for opt in ("ca", "cert", "key"):
        if o.get(opt) and not Path(o[opt]).is_file():
            raise InputError(f"{url.safe()}: {opt}= file {o[opt]} does not exist")
    if o.get("key") and not o.get("cert"):
        raise InputError(f"{url.safe()}: key= needs cert=")
    try:
        ctx = ssl.create_default_context(cafile=o.get("ca") or None)
        if o.get("cert"):
            ctx.load_cert_chain(o["cert"], o.get("key") or None)
    except (ssl.SSLError, OSError) as e:
        raise InputError(f"{url.safe()}: cannot load TLS files: {failure_reason(e)}") from None
    return ctx


def host_port(url: SinkURL) -> tuple[str, int]:
    host, port = url.parts.hostname, url.parts.port
    if not host or port is None:
        raise InputError(f"{url.safe()}: give HOST:PORT (e.g. {url.scheme}://siem.example:6514)")
    return host, port


def open_stream(url: SinkURL, fmt: Format) -> StreamSyslogSink:
    host, port = host_port(url)
    if url.scheme == "syslog+tcp":
        given = [k for k in ("ca", "cert", "key") if k in url.options]
        if given:
            raise InputError(f"{url.safe()}: {given[0]}= is for syslog+tls://")
    ctx = tls_context(url) if url.scheme == "syslog+tls" else None
    return StreamSyslogSink(url.safe(), host, port, fmt, ctx)


SINK = SinkKind("syslog", ("syslog+tcp", "syslog+tls"), ("rfc5424", "cef", "ecs"), open_stream,
                options=("format", "ca", "cert", "key"),
                description="RFC 5425 octet-counted syslog over TCP or TLS")
