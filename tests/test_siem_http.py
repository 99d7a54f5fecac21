"""The HTTPS sinks against a local HTTPS server started here (standard library http.server over
TLS with a CA and server certificate made here), speaking the two APIs as documented: the Elastic
bulk API (create with _id, 201 / 409 / 4xx / 429 per item) and Splunk HEC with indexer
acknowledgement (ackId, then /services/collector/ack). Events arrive in order, a repeat creates
nothing twice, outages and refusals keep the events, and the certificate is verified by default."""
from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_siem_syslog import alerts, make_certs

from plantguard.errors import InputError
from plantguard.siem import Outbox, open_sink
from plantguard.siem.events import alert


class Collector(ThreadingHTTPServer):
    """Bulk and HEC endpoints in memory. fail_next: answer that many requests 503; ack_after: HEC
    reports an ackId indexed at its nth poll."""
    daemon_threads = True

    def __init__(self, certs):
        super().__init__(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs["cert"], certs["key"])
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.docs: dict[str, dict] = {}          # Elastic: _id -> document, in creation order
        self.hec: list[dict] = []
        self.fail_next, self.ack_after, self.polls, self.channels = 0, 2, {}, set()
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        srv: Collector = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with srv.lock:
            if srv.fail_next:
                srv.fail_next -= 1
                return self._answer(503, {"error": "unavailable\r\n\x1b[31m"})
            if self.path == "/plantguard-events/_bulk":
                return self._bulk(srv, body)
            if self.headers.get("Authorization") != "Splunk tok-123":
                return self._answer(403, {"text": "Invalid token", "code": 4})
            srv.channels.add(self.headers.get("X-Splunk-Request-Channel"))
            if self.path == "/services/collector/event":
                srv.hec.extend(json.loads(line) for line in body.split(b"\n"))
                ack = len(srv.polls)
                srv.polls[ack] = 0
                return self._answer(200, {"text": "Success", "code": 0, "ackId": ack})
            if self.path == "/services/collector/ack":
                acks = {}
                for a in json.loads(body)["acks"]:
                    srv.polls[a] += 1
                    acks[str(a)] = srv.polls[a] >= srv.ack_after
                return self._answer(200, {"acks": acks})
        self._answer(404, {})

    def _bulk(self, srv, body):
        lines = body.decode().split("\n")
        assert lines[-1] == "" and self.headers["Content-Type"] == "application/x-ndjson"
        items = []
        for action, doc in zip(lines[0:-1:2], lines[1:-1:2]):
            _id, doc = json.loads(action)["create"]["_id"], json.loads(doc)
            if "reject-me" in doc["message"]:
                status = 400
            elif _id in srv.docs:
                status = 409
            else:
                srv.docs[_id], status = doc, 201
            items.append({"create": {"_id": _id, "status": status}})
        self._answer(200, {"errors": any(i["create"]["status"] >= 300 for i in items), "items": items})


@pytest.fixture
def collector(tmp_path):
    certs = make_certs(tmp_path)
    srv = Collector(certs)
    srv.ca = certs["ca"]
    yield srv
    srv.shutdown()
    srv.server_close()


def test_elastic_bulk_in_order_and_a_repeat_creates_nothing(collector, tmp_path):
    sink = open_sink(f"https://127.0.0.1:{collector.port}/plantguard-events?format=ecs&ca={collector.ca}")
    box = Outbox(tmp_path / "box", sink, batch_events=32)
    evs = alerts(100)
    for e in evs + evs[:40]:                # the last 40: a replay (export after a crash)
        box.put(e)
    assert box.flush(30), box.last_error
    assert list(collector.docs) == [e.id for e in evs]
    assert [d["event"]["id"] for d in collector.docs.values()] == [e.id for e in evs]
    assert sink.rejected == 0
    box.close()


def test_elastic_outage_and_refused_documents(collector, tmp_path):
    sink = open_sink(f"https://127.0.0.1:{collector.port}/plantguard-events/_bulk?ca={collector.ca}")
    box = Outbox(tmp_path / "box", sink, backoff_first=0.05, backoff_max=0.1)
    evs = alerts(10) + [alert("bad", "reject-me", "low")]
    for e in evs:
        box.put(e)
    collector.fail_next = 2
    assert not box.flush(0.01)
    assert "HTTP 503" in box.last_error and "\x1b" not in box.last_error and "\n" not in box.last_error
    assert box.flush(10) and box.depth() == 0
    assert list(collector.docs) == [e.id for e in evs[:10]] and sink.rejected == 1
    box.close()


def test_hec_waits_for_the_indexer_acknowledgement(collector, tmp_path):
    sink = open_sink(f"hec+https://127.0.0.1:{collector.port}?token=tok-123&index=ot&ca={collector.ca}")
    box = Outbox(tmp_path / "box", sink, batch_events=25)
    evs = alerts(60)
    for e in evs:
        box.put(e)
    assert box.flush(30), box.last_error
    assert [h["event"]["event"]["id"] for h in collector.hec] == [e.id for e in evs]
    assert {h["index"] for h in collector.hec} == {"ot"} and collector.channels == {sink.channel}
    assert all(n >= collector.ack_after for n in collector.polls.values()) and len(collector.polls) == 3
    box.close()


def test_hec_bad_token_keeps_the_events(collector, tmp_path):
    sink = open_sink(f"hec+https://127.0.0.1:{collector.port}?token=wrong&ca={collector.ca}")
    box = Outbox(tmp_path / "box", sink, backoff_first=0.05)
    box.put(alerts(1)[0])
    assert not box.flush(0.2)
    assert box.depth() == 1 and "HTTP 403" in box.last_error and "wrong" not in box.last_error
    box.close()


def test_https_certificate_is_verified_by_default(collector, tmp_path):
    sink = open_sink(f"https://127.0.0.1:{collector.port}/plantguard-events")
    box = Outbox(tmp_path / "box", sink, backoff_first=0.05)
    box.put(alerts(1)[0])
    assert not box.flush(0.2)
    assert "certificate" in box.last_error and not collector.docs
    box.close()


@pytest.mark.parametrize("url, message", [
    ("hec+https://splunk.example:8088", "give the HEC token"),
    ("https://elastic.example/?format=ecs", "give the index as the path"),
    ("https://elastic.example/a/b", "give the index as the path"),
    ("https://user:secret@elastic.example/idx?format=cef", "format 'cef' is not one of ecs"),
])
def test_bad_http_sink_urls(url, message):
    with pytest.raises(InputError) as err:
        open_sink(url)
    assert message in str(err.value) and "secret" not in str(err.value)
