"""Syslog sinks against real parts: a real rsyslog (Debian rsyslog + rsyslog-gnutls) started here on
loopback with its own config and a CA and server certificate made here, receiving RFC 5425 over
TLS and writing each message as received (%rawmsg%) to a file. Events arrive in order and byte for
byte; across an rsyslog stop and restart mid-stream every event arrives once after dedup by event
id, in order. Also: UDP datagrams, certificate verification on by default, one-line URL errors."""
from __future__ import annotations

import datetime
import glob
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from plantguard.errors import InputError
from plantguard.siem import Outbox, formats, open_sink, schemes
from plantguard.siem.events import alert
from plantguard.siem.registry import catalogue

HOSTILE = "plc \r\n\x00|=]\"\\ \x1b[2J é 設備 \udcff"


def require_rsyslog() -> str:
    """rsyslogd with its GnuTLS driver; a skip on a developer machine without it, a failure in CI."""
    exe = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(exe).exists() or not glob.glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"):
        msg = "rsyslog and rsyslog-gnutls not installed (apt-get install rsyslog rsyslog-gnutls)"
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but {msg}: .ci/run installs them")
        pytest.skip(msg)
    return exe


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (EC P-256, one day)."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject, issuer, key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1)))

    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (builder(name("plantguard test CA"), name("plantguard test CA"), ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    srv = (builder(name("127.0.0.1"), ca.subject, srv_key)
           .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                          critical=False)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(srv.public_bytes(pem))
    files["key"].write_bytes(srv_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return files


class Rsyslog:
    """One rsyslogd in the foreground: TLS (gtls) on 127.0.0.1:port, every message as received
    to `out`, one per line."""

    def __init__(self, exe: str, d: Path, certs: dict[str, Path]):
        self.exe, self.dir, self.certs, self.port = exe, d, certs, free_port()
        self.out, self.proc = d / "received.log", None
        self.conf = d / "rsyslog.conf"
        self.conf.write_text(f'''
global(workDirectory="{d}" maxMessageSize="64k"
       defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{certs['ca']}"
       defaultNetstreamDriverCertFile="{certs['cert']}" defaultNetstreamDriverKeyFile="{certs['key']}")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="asReceived" type="string" string="%rawmsg%\\n")
ruleset(name="fromPlantguard") {{ action(type="omfile" file="{self.out}" template="asReceived") }}
input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="fromPlantguard")
''')

    prefix: tuple[str, ...] = ()        # a command rsyslogd runs under (ip netns exec NS)

    def start(self):
        with open(self.dir / "rsyslog.stderr", "a") as log:
            argv = [*self.prefix, self.exe, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslog.pid")]
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.dir / "rsyslog.stderr").read_text()
            if self.listening():
                return
            time.sleep(0.05)
        raise AssertionError("rsyslogd did not start listening")

    def listening(self) -> bool:
        """A TLS handshake with it succeeds."""
        ctx = ssl.create_default_context(cafile=str(self.certs["ca"]))
        try:
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), 1),
                                 server_hostname="127.0.0.1") as s:
                try:
                    s.unwrap()
                except ssl.SSLEOFError:     # rsyslog closes without a close_notify of its own
                    pass
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None

    def lines(self) -> list[bytes]:
        return self.out.read_bytes().split(b"\n")[:-1] if self.out.exists() else []


@pytest.fixture
def rsyslog(tmp_path):
    exe = require_rsyslog()
    server = Rsyslog(exe, tmp_path, make_certs(tmp_path))
    try:                                 # stopped even when it never came up
        server.start()
        yield server
    finally:
        server.stop()


def alerts(n: int) -> list:
    return [alert(f"plc-{i % 7}", f"{HOSTILE} write #{i}", ("low", "medium", "high", "critical")[i % 4],
                  seq=i, when=1713061807.0 + i / 1000) for i in range(n)]


EVENT_ID = {"cef": re.compile(rb"externalId=([0-9a-f]{32})"), "ecs": re.compile(rb'"event":\{[^}]*"id":"([0-9a-f]{32})"')}


@pytest.mark.parametrize("fmt", ["cef", "ecs"])
def test_rsyslog_over_tls_receives_every_event_in_order_byte_for_byte(rsyslog, tmp_path, fmt):
    ca = rsyslog.certs["ca"]
    sink = open_sink(f"syslog+tls://127.0.0.1:{rsyslog.port}?format={fmt}&ca={ca}")
    box = Outbox(tmp_path / f"{fmt}.outbox", sink, batch_events=64)
    evs = alerts(500)
    for e in evs:
        assert box.put(e)
    assert box.flush(60), box.last_error
    rsyslog.stop()                       # rsyslog writes out everything before it exits
    got = rsyslog.lines()
    assert got == [sink.encode(e) for e in evs]
    assert [EVENT_ID[fmt].search(line).group(1).decode() for line in got] == [e.id for e in evs]
    box.close()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["cef", "ecs"])
def test_rsyslog_outage_mid_stream_loses_nothing(rsyslog, tmp_path, fmt):
    """rsyslog is stopped while batches of 200 are in flight (it may close a connection in order
    after reading a batch it then drops on its way out), events keep coming during the outage,
    rsyslog starts again: every event arrives, whole, once after dedup by event id, in order."""
    sink = open_sink(f"syslog+tls://127.0.0.1:{rsyslog.port}?format={fmt}&ca={rsyslog.certs['ca']}")
    box = Outbox(tmp_path / f"{fmt}.outbox", sink, batch_events=200, backoff_first=0.05, backoff_max=0.5)
    evs = alerts(3000)
    for e in evs[:1500]:
        box.put(e)
    box.start()
    while len(rsyslog.lines()) < 100:
        time.sleep(0.002)
    rsyslog.stop()                       # mid-stream
    for e in evs[1500:]:                 # the plant keeps talking
        box.put(e)
    time.sleep(1.0)
    down = {"depth": box.depth(), "error": box.last_error}
    rsyslog.start()
    box.close(timeout=60)
    rsyslog.stop()
    assert down["depth"] > 1500 and "refused" in down["error"], down
    assert box.depth() == 0
    records = {sink.encode(e) for e in evs}
    got = rsyslog.lines()
    assert all(line in records for line in got)          # nothing cut short, nothing altered
    ids = [EVENT_ID[fmt].search(line).group(1).decode() for line in got]
    assert list(dict.fromkeys(ids)) == [e.id for e in evs]


def test_server_certificate_is_verified_by_default(rsyslog, tmp_path):
    sink = open_sink(f"syslog+tls://127.0.0.1:{rsyslog.port}?format=cef")   # system CAs: ours is unknown
    box = Outbox(tmp_path / "box", sink, backoff_first=0.05)
    box.put(alerts(1)[0])
    assert not box.flush(0.5)
    assert box.depth() == 1 and "certificate" in box.last_error
    box.close()


def test_udp_one_message_per_datagram_size_capped(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        sink = open_sink(f"syslog+udp://127.0.0.1:{rx.getsockname()[1]}?format=rfc5424&max=600")
        evs = alerts(20) + [alert("long", "é" * 2000, "high")]
        box = Outbox(tmp_path / "box", sink)
        for e in evs:
            box.put(e)
        assert box.flush(5)
        got = [rx.recv(65535) for _ in evs]
    assert got[:-1] == [sink.encode(e) for e in evs[:-1]]
    assert len(got[-1]) <= 600 and got[-1].decode("utf-8").startswith("<35>1 ")
    assert sink.truncated == 1


@pytest.mark.parametrize("url, message", [
    ("nonsense://x", "unknown sink scheme 'nonsense'"),
    ("syslog+tls://siem.example:6514?format=xml", "format 'xml' is not one of rfc5424, cef, ecs"),
    ("syslog+tls://siem.example:99999", "bad sink URL"),
    ("syslog+tls://siem.example", "give HOST:PORT"),
    ("syslog+tls://siem.example:6514?ca=/nonexistent/ca.pem", "ca= file /nonexistent/ca.pem does not exist"),
    ("syslog+tcp://siem.example:514?cert=/etc/hostname", "cert= is for syslog+tls://"),
    ("syslog+udp://siem.example:514?max=10", "max= must be"),
    ("syslog+tls://siem.example:6514?verify=no", "unknown option 'verify'"),
    ("file:///nonexistent-dir/out.jsonl", "does not exist"),
    ("file:///tmp/x.jsonl?format=rfc5424", "format 'rfc5424' is not one of ecs, ocsf, cef"),
    ("no-scheme-at-all", "no scheme"),
])
def test_bad_sink_urls_are_one_line_input_errors(url, message):
    with pytest.raises(InputError) as err:
        open_sink(url)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "secret" not in str(err.value)


def test_unreachable_host_keeps_the_events(tmp_path):
    sink = open_sink(f"syslog+tcp://127.0.0.1:{free_port()}?format=rfc5424")
    box = Outbox(tmp_path / "box", sink, backoff_first=0.05)
    for e in alerts(3):
        box.put(e)
    assert not box.flush(0.3)
    assert box.depth() == 3 and "\n" not in box.last_error and box.last_error.startswith("syslog+tcp://127.0.0.1:")
    box.close()


def test_schemes_come_from_the_sink_declarations():
    assert set(schemes()) == {"file", "syslog+tcp", "syslog+tls", "syslog+udp", "hec+https", "https", "central+https"}
    text = "\n".join(catalogue())
    assert all(f"{s}://" in text for s in schemes()) and all(f"  {f} " in text for f in formats())
