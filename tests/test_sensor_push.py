"""Sensor push: the demo assessment as envelopes whose records validate as the contract's own
types; a local store as run and inventory envelopes; and drain against a real HTTP server
(written here, implementing central's ingest rule: apply seq == next only, 409 with next_seq
otherwise) - in order, at-least-once with acks, resends after lost answers, partial applies and
a 409, no loss or repeat after a kill -9 mid-upload, a 409 gap reported, backoff while central is
down, the deadline kept, and mutual TLS (the server verified against ca.pem, the sensor by its
certificate)."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support import demo as support_demo

from plantguard import contract as C
from plantguard.central.envelope import CONTENT_TYPE, EnvelopeError, body_json, decode_batch, encode_batch, \
    version_verdict
from plantguard.sensor.client import CentralClient, CentralRefused, CentralUnavailable
from plantguard.sensor.outbox import EnvelopeOutbox
from plantguard.sensor.push import CHUNK_BYTES, drain, envelopes_for_assessment, envelopes_from_store, queue

T = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def demo_contract(tmp_path_factory):
    return support_demo.demo_contract(tmp_path_factory.mktemp("demo"))


# -- what is sent ---------------------------------------------------------------------------------
def test_demo_assessment_envelopes_carry_contract_records(tmp_path, demo_contract):
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1")
    envs = envelopes_for_assessment(demo_contract, "plant a", ob)
    assert {k for k, _, _ in envs} == {"run", "inventory", "findings", "flows"}
    assert [k for k, _, _ in envs][0] == "run"
    bodies = {k: [b for kk, _, b in envs if kk == k] for k in ("run", "inventory", "findings", "flows")}
    run = bodies["run"][0]
    assert run["kind"] == "assess" and run["packets"] == demo_contract["summary"]["packets"] == 3289
    assert [C.Capture.model_validate(c) for c in run["captures"]]
    assert {b["run_id"] for b in bodies["findings"]} == {run["run_id"]}
    assets = [C.Asset.model_validate(a) for b in bodies["inventory"] for a in b["assets"]]
    findings = [C.Finding.model_validate(f) for b in bodies["findings"] for f in b["findings"]]
    flows = [C.Flow.model_validate(f) for b in bodies["flows"] for f in b["flows"]]
    assert (len(assets), len(findings), len(flows)) == (23, len(demo_contract["findings"]),
                                                       len(demo_contract["flows"]))
    assert {a.ip for a in assets} == {a["ip"] for a in demo_contract["assets"]}
    # the capture's own time, not the time of the push
    assert {at for _, at, _ in envs} == {datetime(2024, 4, 14, 2, 34, 58, 878640, tzinfo=timezone.utc)}
    assert queue(ob, "plant a", envs) == (len(envs), 0)
    stored = ob.head(1000, 1 << 30)
    assert [e.body for e in stored] == [json.loads(json.dumps(b)) for _, _, b in envs]
    assert decode_batch(encode_batch(stored)) == stored


def test_long_lists_are_split_below_the_chunk_bound(tmp_path, demo_contract):
    many = dict(demo_contract, flows=[dict(f, port=i % 65536) for i in range(40_000)
                                      for f in demo_contract["flows"][:1]])
    envs = envelopes_for_assessment(many, "plant a")
    flows = [b for k, _, b in envs if k == "flows"]
    assert len(flows) > 1 and sum(len(b["flows"]) for b in flows) == 40_000
    assert all(len(body_json(b)) <= CHUNK_BYTES + 100 for b in flows)   # compact JSON, as stored


def test_a_local_store_as_run_and_inventory_envelopes(tmp_path, demo_contract):
    from plantguard.inventory.history import record_run
    from plantguard.store.db import open_engine
    db = tmp_path / "store.db"
    engine = open_engine(db)
    assets = C.assets_from(demo_contract)
    record_run(engine, assets, "inventory", demo_contract["captures"], site="plant a")
    record_run(engine, assets[:10], "assess", demo_contract["captures"], site="plant a")
    engine.dispose()
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1")
    envs = envelopes_from_store(db, outbox=ob)
    runs = [b for k, _, b in envs if k == "run"]
    assert [(r["kind"], r["run_id"], r["packets"]) for r in runs] == [("inventory", "1", 3289), ("assess", "2", 3289)]
    stored = [C.Asset.model_validate(a) for k, _, b in envs if k == "inventory" for a in b["assets"]]
    assert sorted(a.ip or a.mac for a in stored) == sorted(a.key for a in assets)
    assert all(at.tzinfo is not None for _, at, _ in envs)
    queue(ob, "", envs)
    assert [k for k, _, _ in envelopes_from_store(db, outbox=ob)] == ["run", "run"]   # no inventory change


# -- a small central: the ingest rule over real HTTP ------------------------------------------------
class Central:
    """Applies each sensor's envelopes only when seq == next; answers 409 when a batch starts
    beyond next. Knobs: fail (answer 503 that many times), lose_answers (apply, then drop the
    connection without an answer), per_request (apply at most that many), conflict_after (apply
    that many, then answer 409 with what it applied, as for a gap midway), delay (seconds)."""

    def __init__(self, tls: ssl.SSLContext | None = None, port: int = 0):
        self.lock = threading.Lock()
        self.next: dict[str, int] = {}
        self.applied: list[tuple[str, int]] = []
        self.duplicates = 0
        self.requests: list[int] = []               # batch sizes received
        self.fail = self.lose_answers = 0
        self.per_request = None
        self.conflict_after = None                  # apply that many, then answer 409 (as a gap midway)
        self.delay = 0.0
        self.peer_cn: list[str] = []
        central = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/api/v1/ingest" or self.headers.get("Content-Type") != CONTENT_TYPE:
                    return self.answer(404, {"detail": "no such route"})
                if tls is not None:
                    cert = self.connection.getpeercert()
                    central.peer_cn.append(dict(x[0] for x in cert["subject"])["commonName"])
                try:
                    envs = decode_batch(data)
                except EnvelopeError as e:
                    return self.answer(400, {"detail": str(e)})
                time.sleep(central.delay)
                with central.lock:
                    central.requests.append(len(envs))
                    if central.fail:
                        central.fail -= 1
                        return self.answer(503, {"detail": "database unavailable"})
                    if version_verdict(envs[0].schema_version) == "too-old":
                        return self.answer(426, {"detail": f"schema {envs[0].schema_version} too old"})
                    sid = envs[0].sensor_id
                    nxt = central.next.get(sid, 1)
                    if envs[0].seq > nxt:
                        return self.answer(409, {"detail": f"expected seq {nxt}", "next_seq": nxt})
                    applied, dups = [], []
                    for e in envs:
                        if e.seq < nxt:
                            dups.append(e.seq)
                        elif central.conflict_after is not None and len(applied) == central.conflict_after:
                            central.next[sid] = nxt
                            return self.answer(409, {"detail": f"expected seq {nxt} first", "applied": applied,
                                                     "duplicates": dups, "next_seq": nxt})
                        elif e.seq == nxt and (central.per_request is None or len(applied) < central.per_request):
                            assert e.sent_at is not None and e.captured_at is not None
                            applied.append(e.seq)
                            central.applied.append((sid, e.seq))
                            nxt += 1
                        else:
                            break
                    central.next[sid] = nxt
                    central.duplicates += len(dups)
                    if central.lose_answers:
                        central.lose_answers -= 1
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return None
                return self.answer(200, {"applied": applied, "duplicates": dups, "next_seq": nxt})

            def answer(self, status, doc):
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def central():
    c = Central()
    yield c
    c.stop()


def filled(tmp_path, n, sensor="s-1", pad=10) -> EnvelopeOutbox:
    ob = EnvelopeOutbox(tmp_path / "o.db", sensor)
    for i in range(n):
        ob.put("alerts", "plant a", T + timedelta(seconds=i), {"i": i, "pad": "z" * pad})
    return ob


def soon(seconds=30.0) -> float:
    return time.monotonic() + seconds


def test_drain_delivers_in_order_once_and_acks(tmp_path, central):
    ob = filled(tmp_path, 450)
    with CentralClient(central.url, None) as client:
        res = drain(ob, client, soon())
    assert central.applied == [("s-1", s) for s in range(1, 451)]
    assert central.requests == [200, 200, 50]
    assert (res.sent, res.applied, res.duplicates, res.acked_upto, res.remaining, res.done) == \
        (450, 450, 0, 450, 0, True)
    assert ob.depth == 0 and ob.last_acked == 450


def test_batches_are_bounded_by_bytes(tmp_path, central):
    ob = filled(tmp_path, 30, pad=300_000)
    with CentralClient(central.url, None) as client:
        drain(ob, client, soon())
    assert len(central.applied) == 30 and max(central.requests) <= 14   # 4 MiB of ~300 KB bodies


def test_lost_answers_and_server_errors_resend_and_apply_once(tmp_path, central):
    ob = filled(tmp_path, 300)
    central.fail, central.lose_answers = 2, 2
    with CentralClient(central.url, None, timeout=5) as client:
        res = drain(ob, client, soon(), backoff_first=0.05)
    assert central.applied == [("s-1", s) for s in range(1, 301)]      # each once, in order
    assert res.failures == 4 and res.done and res.applied + res.duplicates == res.sent == 300
    assert central.duplicates >= res.duplicates > 0     # the resent envelopes central already had
    assert "503" in res.last_error or "RemoteProtocolError" in res.last_error or "ReadError" in res.last_error


def test_a_partly_applied_batch_continues_from_next_seq(tmp_path, central):
    ob = filled(tmp_path, 100)
    central.per_request = 30
    with CentralClient(central.url, None) as client:
        res = drain(ob, client, soon())
    assert central.applied == [("s-1", s) for s in range(1, 101)] and res.done
    assert central.requests[:3] == [100, 70, 40] and res.duplicates == 0


def test_a_409_midway_acks_what_was_applied_and_resends_from_next_seq(tmp_path, central):
    ob = filled(tmp_path, 100)
    central.conflict_after = 40
    with CentralClient(central.url, None) as client:
        res = drain(ob, client, soon())
    assert central.applied == [("s-1", s) for s in range(1, 101)] and res.done
    assert central.requests == [100, 60, 20] and res.conflicts == 2 and res.applied == 100


DRAINER = """
import sys, time
from plantguard.sensor.client import CentralClient
from plantguard.sensor.outbox import EnvelopeOutbox
from plantguard.sensor.push import drain
ob = EnvelopeOutbox(sys.argv[1], "s-1")
with CentralClient(sys.argv[2], None) as client:
    drain(ob, client, time.monotonic() + 60, batch_envelopes=10)
"""


def test_kill_9_of_the_sensor_during_upload_loses_and_repeats_nothing(tmp_path, central):
    import subprocess
    import sys
    filled(tmp_path, 300).close()
    central.delay = 0.02
    child = subprocess.Popen([sys.executable, "-c", DRAINER, str(tmp_path / "o.db"), central.url])
    t = time.monotonic()
    while len(central.applied) < 120 and time.monotonic() - t < 30:
        time.sleep(0.005)
    child.kill()
    child.wait()
    assert 120 <= len(central.applied) < 300
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1")
    assert ob.last_acked <= len(central.applied)           # what was acked, central has
    central.delay = 0.0
    with CentralClient(central.url, None) as client:
        assert drain(ob, client, soon()).done
    assert central.applied == [("s-1", s) for s in range(1, 301)]


def test_a_409_below_the_outbox_head_is_a_reported_gap_with_nothing_acked(tmp_path, central):
    ob = filled(tmp_path, 40)
    with CentralClient(central.url, None) as client:
        drain(ob, client, soon())
        for i in range(40, 60):
            ob.put("alerts", "plant a", T, {"i": i})
        # central restored from a backup: it lost seqs 31..40, which the sensor already deleted
        central.next["s-1"] = 31
        res = drain(ob, client, soon())
        assert res.conflicts == 1 and res.gap == (31, 40) and "expects seq 31" in res.last_error
        assert ob.depth == 20 and ob.last_acked == 40          # nothing acked that central lacks
        # once central holds up to the outbox's head again (an operator's repair), delivery resumes
        central.next["s-1"] = 41
        res = drain(ob, client, soon())
    assert res.done and central.applied[-20:] == [("s-1", s) for s in range(41, 61)]


def test_backoff_while_central_refuses_connections_and_the_deadline(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]           # closed again: connections are refused
    ob = filled(tmp_path, 10)
    with CentralClient(f"http://127.0.0.1:{port}", None, timeout=2) as client:
        t = time.monotonic()
        res = drain(ob, client, t + 1.5, backoff_first=0.1)
        took = time.monotonic() - t
    assert 1.4 <= took < 2.0
    assert 3 <= res.failures <= 6          # 0.1, 0.2, 0.4, 0.8 s (with jitter): not a busy loop
    assert "ConnectError" in res.last_error and "\n" not in res.last_error
    assert ob.depth == 10 and res.remaining == 10 and not res.done
    central = Central(port=port)           # central back on the same address
    try:
        with CentralClient(central.url, None) as client:
            assert drain(ob, client, soon()).done
        assert central.applied == [("s-1", s) for s in range(1, 11)]
    finally:
        central.stop()


def test_a_slow_central_the_deadline_stops_the_drain_and_nothing_is_lost(tmp_path, central):
    ob = filled(tmp_path, 1000)
    central.delay = 0.3
    with CentralClient(central.url, None) as client:
        t = time.monotonic()
        res = drain(ob, client, t + 0.5, batch_envelopes=50)
        took = time.monotonic() - t
        assert took < 0.5 + 0.5 and 0 < res.acked_upto < 1000 and not res.done
        assert res.acked_upto == len(central.applied) == ob.last_acked
        central.delay = 0.0
        assert drain(ob, client, soon(), batch_envelopes=50).done
    assert central.applied == [("s-1", s) for s in range(1, 1001)]


def test_a_too_old_schema_is_refused_with_one_line(tmp_path, central):
    ob = filled(tmp_path, 3)
    ob._db.execute("UPDATE envelopes SET schema_version = '0.9'")
    with CentralClient(central.url, None) as client, pytest.raises(CentralRefused, match="too old") as e:
        drain(ob, client, soon())
    assert "\n" not in str(e.value) and ob.depth == 3


def test_garbage_from_central_is_unavailable_not_a_traceback(tmp_path):
    class Liar(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"applied": "all of them"')

        def log_message(self, *a):
            pass
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        ob = filled(tmp_path, 2)
        with CentralClient(f"http://127.0.0.1:{httpd.server_address[1]}", None) as client:
            with pytest.raises(CentralUnavailable, match="unreadable ingest answer"):
                client.push(ob.head(10, 1 << 20))
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- mutual TLS ------------------------------------------------------------------------------------
def _pki(tmp_path):
    """A CA, a server certificate for 127.0.0.1 and a sensor client certificate (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(timezone.utc)

    def make(cn, issuer=None, ca=False, san=None, eku=None):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(issuer[0].subject if issuer else name).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
             .not_valid_after(now + timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        cert = b.sign(issuer[1] if issuer else key, hashes.SHA256())
        return cert, key

    def write(name, cert, key):
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                                 serialization.PrivateFormat.PKCS8,
                                                                 serialization.NoEncryption()))
    ca = make("central CA", ca=True)
    write("ca", *ca)
    write("server", *make("central", ca, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                          eku=ExtendedKeyUsageOID.SERVER_AUTH))
    write("sensor", *make("s-1", ca, eku=ExtendedKeyUsageOID.CLIENT_AUTH))
    write("other", *make("other CA", ca=True))
    return tmp_path


def test_mutual_tls_with_the_sensor_certificate(tmp_path):
    pki = _pki(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki / "server.pem", pki / "server.key")
    tls.load_verify_locations(pki / "ca.pem")
    tls.verify_mode = ssl.CERT_REQUIRED
    central = Central(tls=tls)
    try:
        ob = filled(tmp_path, 5)
        with CentralClient(central.url, pki / "ca.pem", pki / "sensor.pem", pki / "sensor.key") as client:
            assert drain(ob, client, soon()).done
        assert central.applied == [("s-1", s) for s in range(1, 6)] and central.peer_cn == ["s-1"]
        ob.put("health", "plant a", T, {})
        # a server the sensor's CA did not sign, and a sensor without its certificate: no push
        with CentralClient(central.url, pki / "other.pem", pki / "sensor.pem", pki / "sensor.key") as client:
            res = drain(ob, client, time.monotonic() + 0.3, backoff_first=0.05)
            assert res.failures >= 1 and "CERTIFICATE_VERIFY_FAILED" in res.last_error
        with CentralClient(central.url, pki / "ca.pem") as client:
            res = drain(ob, client, time.monotonic() + 0.3, backoff_first=0.05)
            assert res.failures >= 1 and ob.depth == 1
        assert len(central.applied) == 5
    finally:
        central.stop()
