"""The sensor's client certificate rotated before it expires: when less than a third of its
lifetime is left, a new key and CSR go to the server (authenticated by the current certificate)
and the answer replaces key and certificate atomically. The server keeps accepting the old
certificate until the new one is first used, so a crash between the two steps locks nobody out."""
from __future__ import annotations

from plantguard.sensor.client import CentralClient, CentralUnavailable
from plantguard.sensor.state import Enrolment, SensorState
from plantguard.server import pki


def renew_if_due(state: SensorState, me: Enrolment) -> bool:
    """True when the certificate was renewed now; False when not due or the server is unreachable
    (the next delivery tries again). CentralRefused (a revoked sensor) propagates."""
    if not pki.needs_renewal(state.cert.read_bytes()):
        return False
    csr, key = pki.new_csr(me.name)
    try:
        with CentralClient(me.server, state.ca, state.cert, state.key) as client:
            cert = client.renew(csr.decode())
    except CentralUnavailable:
        return False
    state.save_certificate(cert, key)
    return True
