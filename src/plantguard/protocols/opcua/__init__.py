"""OPC UA binary (UA TCP / UA Secure Conversation) on TCP 4840 and on any port by signature.

Messages: an 8-byte header (type HEL / ACK / ERR / RHE / OPN / MSG / CLO, chunk type F / C / A,
size), then per type: Hello (endpoint URL), OpenSecureChannel (asymmetric security header with
the security policy URI; body with the security mode when the policy is None), MSG / CLO
(symmetric security header, sequence header, then a service request or response whose type is
given by a NodeId). Multi-chunk messages are reassembled per request id.

Observations: service for the server; session (security mode and policy per channel,
authentication type from ActivateSession); identity (application name, application and product
URIs of both sides; for the server also the endpoints it offers, from GetEndpoints /
CreateSession, as `endpoints`: url, security_mode, policy, user_tokens); credential for
user-name tokens (clear-text when not encrypted), X.509, issued and anonymous tokens, with
the server's verdict; operation per service request; error for ERR messages and Bad results.

One job per module: encoding (chunks, built-in types, structures), services (service bodies,
status codes), session (stream reassembly and the observations). What callers use is
re-exported here: import from `plantguard.protocols.opcua`.
"""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.opcua.encoding import (
    SECURITY_MODES,
    Malformed,
    UaMessage,
    parse_message,
    signature,
    split_messages,
)
from plantguard.protocols.opcua.services import (
    SERVICES,
    Service,
    parse_service,
    status_name,
)
from plantguard.protocols.opcua.session import NAME, message, stream

__all__ = ["NAME", "SECURITY_MODES", "SERVICES", "SPEC", "Malformed", "Service", "UaMessage", "decode",
           "parse_message", "parse_service", "signature", "split_messages", "status_name"]


def decode(pkt: Packet) -> list[Observation]:
    sb = stream(pkt)
    out: list[Observation] = []
    for raw in split_messages(sb.data):
        try:
            m = parse_message(raw)
        except Malformed:
            continue
        out.extend(message(pkt, m))
    return out


SPEC = ProtocolSpec(
    name=NAME, title="OPC UA binary", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(4840,),
    any_port=True,
    traits=frozenset({"industrial", "unauthenticated-control"}),
    server_role="gateway",
    observes=("credential", "error", "identity", "operation", "service", "session"),
)
