"""hec+https://HOST:PORT?token=TOKEN[&index=&ca=&cert=&key=] — Splunk HTTP Event Collector with
indexer acknowledgement: a batch is one POST of HEC event objects (the rendered document as `event`) to
/services/collector/event on this sink's channel; when HEC answers with an ackId, the batch is
acknowledged only once /services/collector/ack reports that id indexed (polled up to ACK_TIMEOUT);
when it answers without one (acknowledgement off), its 'Success' is the acknowledgement."""
from __future__ import annotations

import json
import time
import uuid

from plantguard.errors import InputError
from plantguard.siem.events import Event
from plantguard.siem.httppost import netloc, post
from plantguard.siem.sink_syslog import host_port, tls_context
from plantguard.siem.spec import DeliveryError, Format, Sink, SinkKind, SinkURL

ACK_TIMEOUT = 60.0
ACK_POLL = (0.05, 2.0)          # first and longest wait between acknowledgement polls


class HecSink(Sink):
    def __init__(self, name: str, base: str, fmt: Format, token: str, index: str | None, context):
        self.name, self.base, self.format, self.index, self.context = name, base, fmt, index, context
        self.channel = str(uuid.uuid4())
        self.headers = {"Authorization": f"Splunk {token}", "Content-Type": "application/json",
                        "X-Splunk-Request-Channel": self.channel}

    def encode(self, event: Event) -> bytes:
        doc = {"time": round(event.time, 6), "host": event.observer.host or event.observer.name,
               "source": "plantguard", "sourcetype": f"plantguard:{self.format.name}",
               "event": json.loads(self.format.render(event))}
        if self.index:
            doc["index"] = self.index
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, records: list[bytes]) -> None:
        _, answer = post(self.name, f"{self.base}/services/collector/event", b"\n".join(records), self.headers,
                         self.context)
        reply = _json(self.name, answer)
        if reply.get("code") != 0:
            raise DeliveryError(f"{self.name}: HEC answered code {reply.get('code')}: {reply.get('text')}")
        if "ackId" in reply:
            self._await_ack(reply["ackId"])

    def _await_ack(self, ack_id) -> None:
        deadline, wait = time.monotonic() + ACK_TIMEOUT, ACK_POLL[0]
        body = json.dumps({"acks": [ack_id]}).encode()
        while True:
            _, answer = post(self.name, f"{self.base}/services/collector/ack", body, self.headers, self.context)
            acks = _json(self.name, answer).get("acks")
            if isinstance(acks, dict) and acks.get(str(ack_id)) is True:
                return
            if time.monotonic() + wait > deadline:
                raise DeliveryError(f"{self.name}: HEC did not acknowledge batch {ack_id} within {ACK_TIMEOUT:.0f} s")
            time.sleep(wait)
            wait = min(wait * 2, ACK_POLL[1])


def _json(name: str, answer: bytes) -> dict:
    try:
        reply = json.loads(answer)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise DeliveryError(f"{name}: the answer is not HEC JSON")
    return reply


def open_hec(url: SinkURL, fmt: Format) -> HecSink:
    host, port = host_port(url)
    token = url.options.get("token")
    if not token:
        raise InputError(f"{url.safe()}: give the HEC token (?token=...)")
    base = f"https://{netloc(host, port)}"
    return HecSink(f"hec+{base}", base, fmt, token, url.options.get("index") or None, tls_context(url))


SINK = SinkKind("splunk-hec", ("hec+https",), ("ecs", "ocsf"), open_hec,
                options=("format", "token", "index", "ca", "cert", "key"),
                description="Splunk HTTP Event Collector with indexer acknowledgement")
