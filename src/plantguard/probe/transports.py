"""The sockets behind a probe query: TCP (one connection, closed with a FIN, never a reset),
UDP (a connected socket: only the target's answers are read) and, per query transport, the
others. Each frame is validated, then waits for the rate cap, then leaves; what comes back is
recorded in the evidence beside it."""
from __future__ import annotations

import socket
import time

from plantguard.probe.evidence import Evidence
from plantguard.probe.limits import Breaker, RateCap
from plantguard.probe.query import NewConnection
from plantguard.probe.session import DRAIN_SECONDS, MAX_FRAMES_PER_QUERY, MAX_RESPONSE, QueryRun, Step, _send
from plantguard.probe.validator import ConnectionValidator


def exchange(r: QueryRun, v: ConnectionValidator, cap: RateCap, timeout: float, ev: Evidence,
             breaker: Breaker) -> None:
    kind = r.query.transport
    if kind == "tcp":
        _tcp(r, v, cap, timeout, ev, breaker)
    elif kind == "udp":
        _udp(r, v, cap, timeout, ev, breaker)
    elif kind == "tls":
        from plantguard.probe.tls import tls_exchange
        tls_exchange(r, v, cap, timeout, ev, breaker)
    elif kind == "l2":
        from plantguard.probe.layer2 import l2_exchange
        l2_exchange(r, v, cap, timeout, ev, breaker)
    else:
        r.status, r.reason = "error", f"no transport {kind!r}"


def frames(r: QueryRun, v: ConnectionValidator):
    """The query's frames, each validated before it is handed out; send back each response."""
    gen = r.query.exchange(r.target)
    frame = next(gen, None)
    while frame is not None:
        if isinstance(frame, NewConnection):          # only TCP asks: the caller reconnects
            v.restart()
            yield frame
            frame = _send(gen, None)
            continue
        if len(r.steps) >= MAX_FRAMES_PER_QUERY:
            r.reason = f"stopped after {MAX_FRAMES_PER_QUERY} frames"
            return
        step = Step(bytes(frame), v.check(frame))      # Refused propagates: nothing is sent
        r.steps.append(step)
        response = yield step
        frame = _send(gen, response)


def _tcp(r: QueryRun, v, cap: RateCap, timeout: float, ev: Evidence, breaker: Breaker) -> None:
    gen = frames(r, v)
    step = next(gen, None)               # validate the first frame before even connecting
    while isinstance(step, NewConnection):
        step = _send(gen, None)
    if step is None:
        r.status = "answered"
        return
    conn = _connect(r, cap, timeout, ev, breaker)
    if conn is None:
        return
    sock, tr = conn
    buf = bytearray()
    reset = False
    try:
        while step is not None:
            if isinstance(step, NewConnection):
                _finish(sock, tr, False, cap)     # ours closed before the next one opens
                sock = None
                conn = _connect(r, cap, timeout, ev, breaker)
                if conn is None:
                    return
                sock, tr = conn
                buf = bytearray()
                step = gen.send(None)
                continue
            cap.take()
            sent_at = time.monotonic()
            sock.sendall(step.frame)
            tr.data(step.frame, True)
            step.seconds = 0.0
            if r.query.no_reply and r.query.no_reply(step.frame):
                step = gen.send(None)        # nothing to wait for: the close follows
                continue
            response, buf, got = _read_pdu(sock, buf, r.query.response_length, timeout)
            if got:
                tr.data(got, False)
            if response is None:
                r.status, r.reason = "no answer", f"no complete response in {timeout:g} s"
                breaker.error(r.target.ip, r.reason)
                break
            step.response, step.seconds = response, time.monotonic() - sent_at
            breaker.latency(r.target.ip, step.seconds)
            r.status = "answered"
            if breaker.stops(r.target.ip):
                break
            step = gen.send(response)
    except (ConnectionResetError, BrokenPipeError) as exc:
        reset = True
        r.status, r.reason = "error", f"the device reset the connection ({type(exc).__name__})"
        breaker.error(r.target.ip, r.reason)
    except StopIteration:
        pass
    finally:
        if sock is not None:
            _finish(sock, tr, reset, cap)


def _connect(r: QueryRun, cap: RateCap, timeout: float, ev: Evidence, breaker: Breaker):
    """(socket, transcript) of a new connection to the query's port, or None (status set)."""
    t, q = r.target, r.query
    cap.take()                           # the SYN
    try:
        sock = socket.create_connection((t.ip, q.port), timeout=timeout)
    except ConnectionRefusedError:
        r.status, r.reason = "closed", f"tcp/{q.port} refused the connection"
        return None
    except OSError as exc:
        r.status, r.reason = "no answer", f"tcp/{q.port}: {exc.strerror or exc}"
        breaker.error(t.ip, r.reason)
        return None
    local = sock.getsockname()[:2]
    r.local_port = local[1]
    return sock, ev.tcp((local[0], local[1]), (t.ip, q.port))


def _finish(sock, tr, reset: bool, cap: RateCap) -> None:
    if reset:
        sock.close()                     # the device reset it: nothing to send, but free the socket
        tail = b""
    else:
        cap.take()                       # our FIN is a packet we choose to send: under the cap too
        tail = _close(sock)
    if tail:
        tr.data(tail, False)
    tr.close(reset_by_peer=reset)


def _read_pdu(sock, buf: bytearray, length, timeout: float):
    """(the first complete response or None, the bytes left over, the bytes received)."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        n = length(bytes(buf)) if buf else None
        if n is not None and 0 < n <= len(buf):
            return bytes(buf[:n]), buf[n:], bytes(got)
        if n is not None and n <= 0 or len(buf) > MAX_RESPONSE:
            return None, bytearray(), bytes(got)
        left = deadline - time.monotonic()
        if left <= 0:
            return None, buf, bytes(got)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None, buf, bytes(got)
        if not chunk:
            return None, buf, bytes(got)
        buf += chunk
        got += chunk


def _close(sock) -> bytes:
    """Our FIN, then what the device still sends until its own FIN: no reset, no half-open
    connection left behind on a device with few connection slots."""
    tail = bytearray()
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and len(tail) < MAX_RESPONSE:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            tail += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return bytes(tail)


def _udp(r: QueryRun, v, cap: RateCap, timeout: float, ev: Evidence, breaker: Breaker) -> None:
    t, q = r.target, r.query
    gen = frames(r, v)
    step = next(gen, None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((t.ip, q.port))          # the kernel drops datagrams from anyone else
        local = sock.getsockname()[:2]
        r.local_port = local[1]
        try:
            while step is not None:
                if isinstance(step, NewConnection):       # no connection to renew on UDP
                    step = gen.send(None)
                    continue
                cap.take()
                sent_at = time.monotonic()
                sock.send(step.frame)
                ev.udp(local[0], local[1], t.ip, q.port, step.frame, True)
                step.seconds = 0.0
                sock.settimeout(timeout)
                try:
                    response = sock.recv(65536)
                except socket.timeout:
                    response = None
                except ConnectionRefusedError:      # ICMP port unreachable
                    r.status, r.reason = "closed", f"udp/{q.port} is closed (ICMP port unreachable)"
                    return
                if response is None:
                    if r.status != "answered":
                        r.status, r.reason = "no answer", f"no response in {timeout:g} s"
                    breaker.error(t.ip, f"no response in {timeout:g} s")
                    if breaker.stops(t.ip):
                        break
                    step = gen.send(None)
                    continue
                ev.udp(t.ip, q.port, local[0], local[1], response, False)
                step.response, step.seconds = response, time.monotonic() - sent_at
                breaker.latency(t.ip, step.seconds)
                r.status = "answered"
                if breaker.stops(t.ip):
                    break
                step = gen.send(response)
        except StopIteration:
            pass
