"""The shapes of the SIEM declarations: a Format (one output format, declared once in its module
as FORMAT) and a SinkKind (one kind of destination, declared once in its module as SINK, with the
URL schemes it answers and the formats it takes). siem/registry.py collects them; nothing else
lists a scheme or a format name."""
from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Callable
from urllib.parse import SplitResult, parse_qs, urlsplit

from plantguard.errors import InputError
from plantguard.siem.events import Event


class DeliveryError(Exception):
    """A sink could not take a batch now (unreachable, refused, timed out); one line. The outbox
    keeps the events and retries."""


def failure_reason(e: BaseException) -> str:
    """One line saying why a connection or request failed."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {e.verify_message}"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host: {e.strerror}"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


@dataclass(frozen=True)
class Format:
    name: str                               # the ?format= value
    render: Callable[[Event], str]          # one event -> one line (no CR/LF in it)
    media_type: str
    description: str


@dataclass(frozen=True)
class SinkURL:
    """A sink URL taken apart: scheme, host, port, path and its query options (one value each)."""
    text: str
    parts: SplitResult
    options: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> "SinkURL":
        try:
            parts = urlsplit(text)
            _ = parts.port                  # raises on a bad port
        except ValueError as e:
            raise InputError(f"bad sink URL {text!r}: {e}") from None
        if not parts.scheme:
            raise InputError(f"bad sink URL {text!r}: no scheme (e.g. syslog+tls://HOST:PORT)")
        query = parse_qs(parts.query, keep_blank_values=True)
        twice = [k for k, v in query.items() if len(v) > 1]
        if twice:
            raise InputError(f"bad sink URL {text!r}: option {twice[0]!r} given twice")
        return cls(text, parts, {k: v[0] for k, v in query.items()})

    @property
    def scheme(self) -> str:
        return self.parts.scheme.lower()

    def safe(self) -> str:
        """The URL without its query and user info (which may hold a token or password), for messages."""
        return f"{self.parts.scheme}://{self.parts.netloc.rpartition('@')[2]}{self.parts.path}"


class Sink:
    """One destination. encode() turns an event into the record the outbox stores; send() takes a
    batch of records and returns only once the destination acknowledged all of them (what that
    means is the sink kind's to say), else raises DeliveryError."""
    name: str
    format: Format

    def encode(self, event: Event) -> bytes:
        return self.format.render(event).encode("utf-8")

    def send(self, records: list[bytes]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sink holds open (nothing by default)."""


@dataclass(frozen=True)
class SinkKind:
    name: str
    schemes: tuple[str, ...]
    formats: tuple[str, ...]                # format names it takes; the first is the default
    open: Callable[[SinkURL, Format], Sink]
    options: tuple[str, ...] = ("format",)  # the query options it understands
    description: str = ""
