"""central+https://HOST:PORT[?state=DIR] — alerts and heartbeats to a plantguard central server,
through the enrolled sensor's envelope outbox (sensor/outbox.py).

A batch is acknowledged once it is in the envelope outbox (SQLite, synchronous): from there the
envelopes are delivered in order, effect-once, however long the server is away; every send (a
heartbeat at least once a minute) drains what is waiting, for a few seconds at most, so a long
backlog never holds up the monitor. Alerts travel as `alerts` envelopes, heartbeats as `health`
envelopes; other event kinds are not the central server's (the monitor's checkpoints are) and
are counted as skipped. The URL must name the server the sensor enrolled with."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from plantguard.errors import InputError
from plantguard.siem.spec import DeliveryError, Format, Sink, SinkKind, SinkURL

DRAIN_SECONDS = 5.0


class CentralSink(Sink):
    def __init__(self, url: SinkURL, fmt: Format):
        from plantguard.sensor.push import Courier
        from plantguard.sensor.state import SensorState
        self.format = fmt
        state = SensorState(url.options.get("state") or None)
        me = state.load()
        wanted = f"https://{url.parts.netloc}"
        if me.server.rstrip("/") != wanted:
            raise InputError(f"{url.safe()}: sensor {me.sensor_id} is enrolled with {me.server}, not {wanted}")
        self.name = f"central+{wanted}"
        self.courier = Courier(state)
        self.me, self.outbox = me, self.courier.outbox
        self.skipped = 0

    def send(self, records: list[bytes]) -> None:
        alerts, beats = [], []
        for r in records:
            try:
                e = json.loads(r)
            except ValueError:
                self.skipped += 1
                continue
            kind = e.get("kind") if isinstance(e, dict) else None
            (alerts if kind == "alert" else beats if kind == "heartbeat" else []).append(e)
            self.skipped += kind not in ("alert", "heartbeat")
        now = datetime.now(timezone.utc)
        if alerts and self.outbox.put("alerts", self.me.site, now, {"alerts": alerts}) is None:
            raise DeliveryError(f"{self.name}: the envelope outbox is full ({self.outbox.dropped:,} dropped)")
        if beats:
            last = beats[-1]
            self.outbox.put("health", self.me.site, now, {"heartbeat": last.get("message", ""),
                                                          "outbox_depth": self.outbox.depth,
                                                          "outbox_bytes": self.outbox.stored_bytes,
                                                          "dropped": self.outbox.dropped,
                                                          "skipped_events": self.skipped})
        self.courier.deliver(DRAIN_SECONDS)

    def close(self) -> None:
        self.courier.close()


def open_central(url: SinkURL, fmt: Format) -> CentralSink:
    return CentralSink(url, fmt)


SINK = SinkKind("central", ("central+https",), ("plantguard",), open_central, options=("format", "state"),
                description="a plantguard central server, through the enrolled sensor's envelope outbox")
