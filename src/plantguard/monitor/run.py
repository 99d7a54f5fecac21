"""The monitor loop: a source's chunks into the Session, PLC-change alerts per chunk, a checkpoint
every --checkpoint of packet time (assessment, baseline and checkpoint alerts, state saved, then
the ring's ledger moved), health on stderr and as heartbeats, and a clean stop (final checkpoint,
outboxes flushed). Alerts go to every sink's durable outbox, or as ECS JSON lines to stdout.

Order at a checkpoint: the alert state and baseline are saved before the ledger moves. A kill
between two checkpoints reads the chunks since the last one again; their alerts, if already
sent, are sent again with the same event id (receivers drop them), none is lost."""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO

from plantguard.monitor import alerts as alert_rules
from plantguard.monitor.baseline import Baseline
from plantguard.monitor.evidence import EvidenceWriter
from plantguard.monitor.health import Health, lag, rss_mb
from plantguard.monitor.session import Session
from plantguard.monitor.state import ALERTS, ASSESSMENT, BASELINE, CHECKPOINT, StateDir
from plantguard.siem import events
from plantguard.siem.events import Event

FLUSH_AT_EXIT_S = 10.0


class Monitor:
    def __init__(self, source, session: Session, state: StateDir, *, sinks: list[str] = (),
                 evidence_dir=None, learn_s: float | None = None, learn_quiet_s: float | None = None,
                 baseline: dict | None = None,
                 status_s: float = 10.0, heartbeat_s: float = 60.0, out: TextIO = sys.stdout,
                 status: Callable[[str], None] | None = None,
                 on_checkpoint: list[Callable[[dict, dict], None]] = ()):
        from plantguard.siem import Outbox, open_sink
        from plantguard.siem.registry import formats
        self.source, self.session, self.state = source, session, state
        self.site = session.site
        self.out, self.status = out, status
        self.status_s, self.heartbeat_s = status_s, heartbeat_s
        self.outboxes = [Outbox(state.outbox(url), open_sink(url)) for url in sinks]
        self._ecs = formats()["ecs"]
        saved = state.load(BASELINE)
        self.baseline = Baseline(saved if saved is not None else baseline)
        self.learn_s = learn_s
        # learning also ends after a quiet stretch without new keys: a quarter of --learn by default
        self.learn_quiet_s = learn_quiet_s if learn_quiet_s is not None else (learn_s / 4 if learn_s else None)
        self.evidence = EvidenceWriter(evidence_dir) if evidence_dir else None
        self.alerter = alert_rules.Alerter(self._emit, state.load(ALERTS),
                                           site=getattr(self.site, "name", None))
        self.health = Health(last_checkpoint=(state.load(CHECKPOINT) or {}).get("packet_time"))
        self.controllers: set[str] = set()     # controllers of the last checkpoint's inventory
        self.stop = threading.Event()
        self.on_checkpoint = list(on_checkpoint)  # (assessment, baseline) after each checkpoint is saved

    # -- delivery
    def _emit(self, e: Event) -> None:
        if not self.outboxes:
            self.out.write(self._ecs.render(e) + "\n")
            self.out.flush()
        for ob in self.outboxes:
            ob.put(e)

    def _heartbeat(self) -> None:
        e = events.heartbeat(int(time.time()), self.health.line(), observer=self.alerter.observer,
                             site=self.alerter.site)
        for ob in self.outboxes:
            ob.put(e)

    # -- the loop
    def run(self, idle_s: float | None = None) -> None:
        for ob in self.outboxes:
            ob.start()
        ticker = threading.Thread(target=self._tick, name="monitor health", daemon=True)
        ticker.start()
        try:
            for cap, chunk in self.source.chunks(until=self.stop.is_set, idle_s=idle_s):
                ops = self.session.feed(cap, chunk)
                if self.learn_s is not None:
                    self.baseline.start_learning(float(chunk.ts.min()), self.learn_s, self.learn_quiet_s)
                if ops:
                    for e in alert_rules.plc_changes(self.alerter, ops, self.site, self.baseline, self.controllers):
                        self._evidence(e, cap, chunk)
                if self.session.due():
                    self.checkpoint()
        finally:
            self.stop.set()
            ticker.join()
            if self.session.packets:
                self.checkpoint(final=True)
            self._report()
            for ob in self.outboxes:
                ob.close(FLUSH_AT_EXIT_S)

    def _tick(self) -> None:
        """Status line and heartbeats on the wall clock, also while the source is idle."""
        next_status = next_beat = time.monotonic() + min(self.status_s, self.heartbeat_s)
        while not self.stop.wait(0.2):
            now = time.monotonic()
            if now >= next_status:
                self._report()
                next_status = now + self.status_s
            if self.outboxes and now >= next_beat:
                self._heartbeat()
                next_beat = now + self.heartbeat_s

    def _evidence(self, e: Event, cap=None, chunk=None) -> None:
        if self.evidence is not None:
            self.evidence.save(e, cap, chunk)

    def checkpoint(self, final: bool = False) -> dict:
        s = self.session
        contract = s.checkpoint(final)
        self.controllers = {a["ip"] for a in contract["assets"]
                            if a.get("ip") and a.get("role") in _controller_roles()}
        for e in alert_rules.at_checkpoint(self.alerter, contract, s.last_result, self.baseline, self.site):
            self._evidence(e)
        if s.packet_time is not None and self.baseline.advance(s.packet_time) and self.status is not None:
            self.status(f"monitor: learning ended early, no new key for {self.baseline.quiet_s:,.0f} s of packet time")
        self._update_health()
        st = self.state
        st.save(ASSESSMENT, contract)
        st.save(BASELINE, self.baseline.as_dict())
        st.save(ALERTS, self.alerter.state())
        st.save(CHECKPOINT, {"packet_time": s.packet_time, "wall": time.time(), "source": self.source.name,
                             "final": final, "health": self.health.as_dict(), "summary": contract["summary"]})
        self.source.commit()       # only now: a restart resumes after what the state above holds
        self.health.last_checkpoint = s.packet_time
        for hook in self.on_checkpoint:
            hook(contract, self.baseline.as_dict())
        return contract

    def _update_health(self) -> None:
        h, s = self.health, self.session
        h.packets = s.packets
        h.kernel_drops = self.source.drops()
        h.own_drops = s.abandoned + sum(ob.dropped for ob in self.outboxes)
        h.lag_s = lag(s.packet_time)
        h.rss_mb = rss_mb()
        h.outbox_depth = sum(ob.depth() for ob in self.outboxes)
        h.alerts = self.alerter.raised
        h.warnings = self.source.warnings()

    def _report(self) -> None:
        self._update_health()
        if self.status is not None:
            self.status(self.health.line())


def _controller_roles():
    from plantguard.inventory.asset import CONTROLLER_ROLES
    return CONTROLLER_ROLES
