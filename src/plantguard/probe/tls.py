"""TLS for probe queries (transport "tls"): TCP wrapped in TLS by the ssl module, driven through
memory BIOs so every byte that crosses the wire, handshake records included, goes into the
evidence transcript both ways. The validator checks the plaintext requests (the handshake is the
ssl module's own). The server's certificate is not verified: a probe identifies a device, it
does not trust it; and TLS 1.2 at most, so the certificate crosses in clear and the passive TLS
decoder reads it from the evidence. Closed cleanly: close_notify, then our FIN (transports._close)."""
from __future__ import annotations

import socket
import ssl
import time

from plantguard.probe.evidence import Evidence, TcpTranscript
from plantguard.probe.limits import Breaker, RateCap
from plantguard.probe.session import MAX_RESPONSE, QueryRun
from plantguard.probe.transports import _close, frames
from plantguard.probe.validator import ConnectionValidator

RECV = 65536


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        # old device web servers speak TLS 1.0 with old suites: to identify them, accept them
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        pass
    return ctx


class TlsConnection:
    """An SSLObject over a connected socket: what it writes and reads is recorded in `tr`."""

    def __init__(self, sock: socket.socket, tr: TcpTranscript, cap: RateCap, timeout: float):
        self.sock, self.tr, self.cap, self.timeout = sock, tr, cap, timeout
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_context().wrap_bio(self.incoming, self.outgoing, server_side=False)
        self.plain = bytearray()

    def _flush(self, take: bool = True) -> None:
        data = self.outgoing.read()
        if data:
            if take:
                self.cap.take()
            self.sock.sendall(data)
            self.tr.data(data, True)

    def _peer_closed(self) -> bool:
        """Whether the device has already sent its FIN; what it sent before is taken in, unwaited."""
        self.sock.settimeout(0.0)            # non-blocking: a timeout would wait for readability
        while True:
            try:
                chunk = self.sock.recv(RECV)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.tr.data(chunk, False)
            self.incoming.write(chunk)

    def _fill(self, deadline: float) -> bool:
        """More bytes from the device into the TLS object; False on timeout or its close."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(RECV)
        except socket.timeout:
            return False
        if not chunk:
            self.incoming.write_eof()
            return False
        self.tr.data(chunk, False)
        self.incoming.write(chunk)
        return True

    def handshake(self) -> bool:
        """True once the handshake is done; False on timeout; ssl.SSLError when it fails."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return True
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill(deadline):
                    return False

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self._flush()

    def read_pdu(self, length) -> bytes | None:
        """The first complete plaintext response, or None (timeout, close, too long)."""
        deadline = time.monotonic() + self.timeout
        while True:
            n = length(bytes(self.plain)) if self.plain else None
            if n is not None and 0 < n <= len(self.plain):
                response = bytes(self.plain[:n])
                del self.plain[:n]
                return response
            if n is not None and n <= 0 or len(self.plain) > MAX_RESPONSE:
                return None
            try:
                data = self.obj.read(RECV)
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill(deadline):
                    return None
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return None
            if not data:
                return None
            self.plain += data

    def close_notify(self) -> None:
        """Our close_notify, unless the device has closed already: a record sent to a closed
        socket is answered with a reset, so then only our FIN follows."""
        try:
            self.cap.take()
            if self._peer_closed():
                return
            try:
                self.obj.unwrap()
            except ssl.SSLError:
                pass         # waiting for the device's close_notify: it comes with its FIN
            self._flush(take=False)
        except OSError:
            pass


def tls_exchange(r: QueryRun, v: ConnectionValidator, cap: RateCap, timeout: float, ev: Evidence,
                 breaker: Breaker) -> None:
    t, q = r.target, r.query
    gen = frames(r, v)
    step = next(gen, None)               # validate the first frame before even connecting
    if step is None:
        r.status = "answered"
        return
    cap.take()                           # the SYN
    try:
        sock = socket.create_connection((t.ip, q.port), timeout=timeout)
    except ConnectionRefusedError:
        r.status, r.reason = "closed", f"tcp/{q.port} refused the connection"
        return
    except OSError as exc:
        r.status, r.reason = "no answer", f"tcp/{q.port}: {exc.strerror or exc}"
        breaker.error(t.ip, r.reason)
        return
    local = sock.getsockname()[:2]
    r.local_port = local[1]
    tr = ev.tcp((local[0], local[1]), (t.ip, q.port))
    conn = TlsConnection(sock, tr, cap, timeout)
    reset = False
    try:
        if not conn.handshake():
            r.status, r.reason = "no answer", f"no TLS handshake in {timeout:g} s"
            breaker.error(t.ip, r.reason)
            return
        while step is not None:
            sent_at = time.monotonic()
            conn.send(step.frame)
            step.seconds = 0.0
            if q.no_reply and q.no_reply(step.frame):
                step = gen.send(None)
                continue
            response = conn.read_pdu(q.response_length)
            if response is None:
                r.status, r.reason = "no answer", f"no complete response in {timeout:g} s"
                breaker.error(t.ip, r.reason)
                break
            step.response, step.seconds = response, time.monotonic() - sent_at
            breaker.latency(t.ip, step.seconds)
            r.status = "answered"
            if breaker.stops(t.ip):
                break
            step = gen.send(response)
    except (ConnectionResetError, BrokenPipeError) as exc:
        reset = True
        r.status, r.reason = "error", f"the device reset the connection ({type(exc).__name__})"
        breaker.error(t.ip, r.reason)
    except ssl.SSLError as exc:          # no common version or suite, or not TLS at all
        r.status, r.reason = "error", f"TLS: {exc.reason or type(exc).__name__}"
    except StopIteration:
        pass
    finally:
        if not reset:
            conn.close_notify()
        tail = b"" if reset else _close(sock)
        if tail:
            tr.data(tail, False)
        tr.close(reset_by_peer=reset)
