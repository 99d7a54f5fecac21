"""What a sensor sends to central, and the sending.

envelopes_for_assessment and envelopes_from_store turn an assessment contract, or the runs and
assets of a local store, into (kind, captured_at, body) triples for EnvelopeOutbox.put. Records
are the contract's own (plantguard.contract), so central validates them with the same types;
lists are split so no body passes CHUNK_BYTES of JSON; the inventory is a delta against the
fingerprints the outbox kept of what it last queued for the site.

drain sends the outbox in seq order, in batches, and acks what central has: at-least-once
delivery that central's (sensor_id, seq) keying makes effect-once."""
from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from plantguard import __version__
from plantguard.central.envelope import body_json
from plantguard.util.timefmt import as_utc
from plantguard.sensor.client import CentralClient, CentralRefused, CentralUnavailable
from plantguard.sensor.outbox import EnvelopeOutbox

CHUNK_BYTES = 1 << 20          # JSON of the records in one body
MAX_CAPTURES = 256             # capture records in a run body (the rest counted)
REPORT_BYTES = 4 << 20         # JSON of the assessment parts a run body carries for the console
REPORT_KEYS = ("site", "organization_size", "zones", "roadmap", "patch_plan", "compliance", "checks_not_run",
               "attestations", "plc_changes", "counters", "notes")
BATCH_ENVELOPES = 200
BATCH_BYTES = 4 << 20
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 60.0
MIN_REQUEST_SECONDS = 1.0     # a request near the deadline still gets this long


def asset_key(asset: dict) -> str | None:
    """An asset's key, as the store keys it: its IP, else its MAC."""
    k = asset.get("ip") or asset.get("mac")
    return k if isinstance(k, str) and k else None


def asset_fingerprint(asset: dict) -> str:
    return hashlib.sha256(json.dumps(asset, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


# -- what to send ----------------------------------------------------------------------------------
def envelopes_for_assessment(contract: dict, site: str, outbox: EnvelopeOutbox | None = None,
                             site_model=None) -> list[tuple[str, datetime, dict]]:
    """run, inventory delta (against outbox's fingerprints for the site; all assets without one),
    findings and flows envelopes of a run_assessment contract."""
    captured_at = _capture_time(contract.get("captures") or [])
    run_id = uuid.uuid4().hex
    summary = contract.get("summary") or {}
    body = _run_body("assess", contract.get("captures") or [], int(summary.get("packets") or 0), summary, run_id)
    body["report"] = _report(contract)
    if site_model is not None:          # the declared conduits, for the console's zone map
        body["report"]["conduits"] = [{"from": c.src, "to": c.dst, "allow": [r.text for r in c.allow],
                                       "bidirectional": c.bidirectional} for c in site_model.conduits[:1000]]
    out = [("run", captured_at, body)]
    out += [("inventory", captured_at, b) for b in _inventory(contract.get("assets") or [], site, outbox)]
    out += [("findings", captured_at, {"run_id": run_id, "findings": chunk})
            for chunk in _chunks(contract.get("findings") or [])]
    out += [("flows", captured_at, {"flows": chunk}) for chunk in _chunks(contract.get("flows") or [])]
    return out


def envelopes_from_store(db_path, site: str | None = None, outbox: EnvelopeOutbox | None = None
                         ) -> list[tuple[str, datetime, dict]]:
    """run envelopes of every run in a local store and an inventory delta of its accumulated
    assets (those of store site `site` when given)."""
    from sqlalchemy import select

    from plantguard.store.db import open_engine, session_factory
    from plantguard.store.inventory_tables import AssetRow, Run

    engine = open_engine(db_path)
    try:
        with session_factory(engine)() as s:
            runs = select(Run).order_by(Run.id)
            rows = select(AssetRow).order_by(AssetRow.site, AssetRow.key)
            if site is not None:
                runs, rows = runs.where(Run.site == site), rows.where(AssetRow.site == site)
            out, latest = [], None
            for r in s.execute(runs).scalars():
                latest = as_utc(r.started)
                out.append(("run", latest, _run_body(r.kind, r.captures or [], r.packets or 0, r.summary or {},
                                                     str(r.id))))
            assets = [r.data for r in s.execute(rows).scalars() if isinstance(r.data, dict)]
    finally:
        engine.dispose()
    when = latest or datetime.now(timezone.utc)
    out += [("inventory", when, b) for b in _inventory(assets, site or "", outbox)]
    return out


def health(outbox: EnvelopeOutbox) -> tuple[str, datetime, dict]:
    """A health envelope: the outbox's depth, size and drops, and the plantguard version."""
    return ("health", datetime.now(timezone.utc),
            {"outbox_depth": outbox.depth, "outbox_bytes": outbox.stored_bytes, "dropped": outbox.dropped,
             "last_acked": outbox.last_acked, "version": __version__})


def queue(outbox: EnvelopeOutbox, site: str, envelopes: list[tuple[str, datetime, dict]]) -> tuple[int, int]:
    """Put the envelopes in the outbox; (queued, refused because it was full)."""
    seqs = [outbox.put(kind, site, at, body) for kind, at, body in envelopes]
    return sum(s is not None for s in seqs), sum(s is None for s in seqs)


def _report(contract: dict) -> dict:
    """The parts of an assessment the central console shows per run (zones, roadmap, patch plan,
    compliance, PLC changes, ...), each kept only while the whole stays under REPORT_BYTES (the
    pieces left out are named in `omitted`)."""
    report, omitted, size = {}, [], 0
    for key in REPORT_KEYS:
        if key not in contract:
            continue
        n = len(body_json({key: contract[key]}))
        if size + n > REPORT_BYTES:
            omitted.append(key)
            continue
        report[key], size = contract[key], size + n
    if omitted:
        report["omitted"] = omitted
    return report


def _run_body(kind: str, captures: list, packets: int, summary: dict, run_id: str) -> dict:
    caps = [c for c in captures if isinstance(c, dict)]
    body = {"kind": kind, "captures": caps[:MAX_CAPTURES], "packets": packets,
            "summary": summary if isinstance(summary, dict) else {}, "run_id": run_id, "plantguard": __version__}
    if len(caps) > MAX_CAPTURES:
        body["captures_dropped"] = len(caps) - MAX_CAPTURES
    return body


def _inventory(assets: list, site: str, outbox: EnvelopeOutbox | None) -> list[dict]:
    known = outbox.fingerprints(site) if outbox is not None else {}
    changed, current = [], set()
    for a in assets:
        key = asset_key(a) if isinstance(a, dict) else None
        if key is None or key in current:
            continue
        current.add(key)
        if known.get(key) != asset_fingerprint(a):
            changed.append(a)
    gone = sorted(k for k in known if k not in current)
    if not changed and not gone:
        return []
    bodies = [{"assets": chunk, "gone": []} for chunk in _chunks(changed)] or [{"assets": [], "gone": []}]
    bodies[-1]["gone"] = gone
    return bodies


def _chunks(records: list) -> list[list]:
    """The records in runs of at most CHUNK_BYTES of JSON (a larger record goes alone)."""
    out, cur, size = [], [], 0
    for r in records:
        n = len(body_json({"": r}))
        if cur and size + n > CHUNK_BYTES:
            out.append(cur)
            cur, size = [], 0
        cur.append(r)
        size += n
    if cur:
        out.append(cur)
    return out


def _capture_time(captures: list) -> datetime:
    """When the data was captured: the latest capture end in the contract, else now."""
    ends = []
    for c in captures:
        t = c.get("last") if isinstance(c, dict) else None
        try:
            ends.append(as_utc(datetime.fromisoformat(t)))
        except (TypeError, ValueError):
            continue
    return max(ends) if ends else datetime.now(timezone.utc)


# -- sending ---------------------------------------------------------------------------------------
@dataclass
class DrainResult:
    sent: int = 0                  # envelopes sent (repeats included)
    applied: int = 0               # applied by central
    duplicates: int = 0            # central already had them
    acked_upto: int = 0            # highest seq acknowledged in the outbox
    conflicts: int = 0             # 409 answers
    failures: int = 0              # attempts that failed with CentralUnavailable
    remaining: int = 0             # envelopes left in the outbox
    gap: tuple[int, int] | None = None   # seqs central lacks that the outbox no longer has
    last_error: str | None = None

    @property
    def done(self) -> bool:
        return self.remaining == 0


def drain(outbox: EnvelopeOutbox, client: CentralClient, deadline: float, *,
          batch_envelopes: int = BATCH_ENVELOPES, batch_bytes: int = BATCH_BYTES,
          backoff_first: float = BACKOFF_FIRST, backoff_max: float = BACKOFF_MAX) -> DrainResult:
    """Send the outbox to central, oldest first, until it is empty or `deadline` (a
    time.monotonic() value) passes. Each answer's next_seq says what central holds: everything
    below it is acked (deleted), and sending resumes from the outbox's new head, so a 409 or a
    partly applied batch resends from next_seq. CentralUnavailable backs off exponentially
    (with jitter, never past the deadline) and a request gets at most the time left (at least
    MIN_REQUEST_SECONDS); CentralRefused propagates (retrying cannot help)."""
    res = DrainResult(acked_upto=outbox.last_acked)
    while time.monotonic() < deadline:
        batch = outbox.head(batch_envelopes, batch_bytes)
        if not batch:
            break
        try:
            got = client.push(batch, timeout=max(MIN_REQUEST_SECONDS, deadline - time.monotonic()))
        except CentralUnavailable as e:
            res.failures += 1
            res.last_error = str(e)
            delay = min(backoff_max, backoff_first * 2 ** min(res.failures - 1, 30)) * (0.5 + random.random() / 2)
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            continue
        res.sent += len(batch)
        res.applied += len(got.applied)
        res.duplicates += len(got.duplicates)
        res.conflicts += got.conflict
        if got.next_seq > batch[0].seq:
            outbox.ack(got.next_seq - 1)
            res.acked_upto = max(res.acked_upto, got.next_seq - 1)
            continue
        # central lacks seqs below the outbox's head: they were acked, so they cannot be resent
        res.gap = (got.next_seq, batch[0].seq - 1) if got.next_seq < batch[0].seq else None
        res.last_error = (f"central expects seq {got.next_seq} but the outbox starts at {batch[0].seq}"
                          if res.gap else f"central applied nothing of seq {batch[0].seq}")
        break
    res.remaining = outbox.depth
    return res


class Courier:
    """The enrolled sensor's outbox and its way to central, for deliveries of a few seconds at a
    time from a long-running process (monitor --central): the client certificate renewed when due,
    one client kept open, a refusal (revoked sensor, schema) left in the outbox for status to show."""

    def __init__(self, state):
        from plantguard.sensor.outbox import EnvelopeOutbox
        self.state, self.me = state, state.load()
        self.outbox = EnvelopeOutbox(state.outbox, self.me.sensor_id)
        self._client: CentralClient | None = None

    def deliver(self, seconds: float) -> None:
        from plantguard.sensor.renewal import renew_if_due
        try:
            if renew_if_due(self.state, self.me) and self._client is not None:
                self._client.close()
                self._client = None
            if self._client is None:
                self._client = CentralClient(self.me.server, self.state.ca, self.state.cert, self.state.key)
            drain(self.outbox, self._client, time.monotonic() + seconds, backoff_max=1.0)
        except CentralRefused:
            pass

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.outbox.close()


class CheckpointPusher:
    """monitor --central: each checkpoint's assessment (run, inventory delta, findings, flows) and
    the baseline when it changed, queued in the sensor's outbox and delivered for a few seconds at
    most (what is left goes with the central sink's next send, a heartbeat at the latest)."""

    DRAIN_SECONDS = 5.0

    def __init__(self, state, site_model=None):
        self.courier, self.site_model = Courier(state), site_model
        self._baseline = None

    def __call__(self, contract: dict, baseline: dict) -> None:
        outbox, site = self.courier.outbox, self.courier.me.site
        envs = envelopes_for_assessment(contract, site, outbox, self.site_model)
        envs[0][2]["kind"] = "monitor"                       # the run envelope
        fp = hashlib.sha256(body_json({"b": baseline})).hexdigest()
        if fp != self._baseline:
            envs.append(("baseline", envs[0][1], {"baseline": baseline}))
            self._baseline = fp
        queue(outbox, site, envs)
        self.courier.deliver(self.DRAIN_SECONDS)
