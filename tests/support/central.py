"""A real central server and real sensors for the tests: `plantguard server run` as a process on a
free loopback port (TLS, the server's own CA), tokens made with `plantguard server token create`,
sensors enrolled with `plantguard sensor enroll` into their own state directories, and an httpx
client for the API."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

PLANTGUARD = [sys.executable, "-m", "plantguard"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict | None = None, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([*PLANTGUARD, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    if check and p.returncode != 0:
        raise AssertionError(f"plantguard {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


class Server:
    def __init__(self, db: str, state: Path):
        self.db, self.state = db, state
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.secret: str | None = None
        self.log = state.parent / f"server-{self.port}.log"
        self._clients: list[httpx.Client] = []

    def init(self) -> str:
        p = cli("server", "init", "--db", self.db, "--state", str(self.state))
        self.secret = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else None
        return self.secret

    def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen([*PLANTGUARD, "server", "run", "--db", self.db, "--state", str(self.state),
                                      "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with self.client() as c:
                    if c.get("/api/v1/health").status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        # an open keep-alive connection would hold uvicorn's graceful shutdown for its 5 s
        while self._clients:
            self._clients.pop().close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def client(self, token: str | None = None, **kw) -> httpx.Client:
        import ssl
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.state / "ca.pem")),
                         headers=headers, timeout=30, **kw)
        self._clients.append(c)
        return c

    def token(self, role: str, *sites: str, expires: str = "1d") -> str:
        args = ["server", "token", "create", "--db", self.db, "--role", role, "--expires", expires]
        for s in sites:
            args += ["--site", s]
        return cli(*args).stdout.strip().splitlines()[-1]

    def enroll(self, state: Path, site: str, name: str) -> None:
        cli("sensor", "enroll", "--server", self.url, "--token", self.token("sensor", site), "--ca",
            str(self.state / "ca.pem"), "--name", name, "--state", str(state))


@contextmanager
def running_server(db: str, tmp: Path):
    server = Server(db, tmp / "server-state")
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def push(state: Path, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    p = cli("sensor", "push", "--state", str(state), "--timeout", str(timeout), "-q", *args,
            timeout=timeout + 240, check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"sensor push exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def shifted_pcap(src: Path, dst: Path, seconds: int) -> Path:
    """A copy of a classic pcap with every packet `seconds` later (another capture time, same
    packets): the record headers' ts_sec moved, nothing else touched."""
    import struct
    data = bytearray(src.read_bytes())
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}[bytes(magic)]
    off = 24
    while off + 16 <= len(data):
        ts, _, incl, _ = struct.unpack_from(order + "IIII", data, off)
        struct.pack_into(order + "I", data, off, ts + seconds)
        off += 16 + incl
    dst.write_bytes(bytes(data))
    return dst
