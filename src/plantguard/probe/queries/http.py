"""HTTP: HEAD / over TCP 80, and over TLS on 443. HEAD asks for the headers only (the Server
header names the web server, often the device's firmware); over TLS the handshake also shows
the server's certificate (subject, issuer, validity), which the evidence keeps in clear."""
from __future__ import annotations

from plantguard.probe.query import Exchange, Query, Target

HEAD_END = b"\r\n\r\n"
USER_AGENT = "plantguard-probe"


def head_request(host: str) -> bytes:
    return (f"HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
            "Connection: close\r\n\r\n").encode("ascii")


def response_length(buf: bytes) -> int | None:
    """The end of the response head: a HEAD response has no body."""
    end = buf.find(HEAD_END)
    return end + len(HEAD_END) if end >= 0 else None


def head(t: Target) -> Exchange:
    yield head_request(t.ip)


QUERIES = (
    Query(protocol="http", name="head", title="HEAD / (headers only)",
          transport="tcp", port=80, exchange=head, response_length=response_length,
          reads="web server (Server header)"),
    Query(protocol="http", name="head-tls", title="HEAD / over TLS (at most TLS 1.2: the certificate in clear)",
          transport="tls", port=443, exchange=head, response_length=response_length,
          reads="server certificate (subject, issuer, validity)"),
)
