"""A durable outbox per sink: events are rendered for the sink and stored before anything is sent,
and removed only once the sink acknowledged them, so a crash (kill -9), a reboot or a sink outage
loses nothing and delivery is at-least-once (receivers drop repeats by event id).

Storage is SQLite in WAL mode with synchronous=FULL (the standard library's sqlite3): every put
is a committed transaction, the rows keep their insertion order (INTEGER PRIMARY KEY), and
delivery reads the oldest rows first, one batch at a time, so order is kept per sink. A failed
batch is retried whole after an exponential backoff with jitter.

The outbox is bounded (max_bytes of stored records, and max_events if given). Past the bound a new
event is dropped and counted (`dropped`, kept across restarts); the first drop of an episode
enqueues one 'sink overflow' alert (beyond the bound: it is the one record the bound lets in),
and the first event accepted again enqueues an audit event with the episode's drop count."""
from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

from plantguard.errors import InputError
from plantguard.siem.events import Event, alert
from plantguard.siem.spec import DeliveryError, Sink

MAX_BYTES = 64 << 20
BATCH_EVENTS = 500
BATCH_BYTES = 1 << 20
BACKOFF_FIRST = 0.5          # seconds before the first retry
BACKOFF_MAX = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
                                   record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Outbox:
    def __init__(self, path: str | Path, sink: Sink, *, max_bytes: int = MAX_BYTES, max_events: int | None = None,
                 batch_events: int = BATCH_EVENTS, batch_bytes: int = BATCH_BYTES,
                 backoff_first: float = BACKOFF_FIRST, backoff_max: float = BACKOFF_MAX):
        self.path, self.sink = Path(path), sink
        self.max_bytes, self.max_events = max_bytes, max_events
        self.batch_events, self.batch_bytes = batch_events, batch_bytes
        self.backoff_first, self.backoff_max = backoff_first, backoff_max
        self.last_error: str | None = None          # the last delivery failure, until a batch goes through
        self.failures = 0                           # consecutive failed attempts
        self._next_try = 0.0
        self._lock = threading.Lock()               # the database and the counters
        self._flushing = threading.Lock()           # one delivery at a time, so no batch goes twice
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            owner = self._meta("sink", None)
        except sqlite3.Error as e:
            raise InputError(f"outbox {self.path}: {e}") from None
        identity = f"{sink.name} {sink.format.name}"
        if owner is None:
            self._set_meta("sink", identity)
        elif owner != identity:
            self._db.close()
            raise InputError(f"outbox {self.path} holds events for {owner}, not {identity}")
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(record)), 0) FROM outbox").fetchone()

    # -- counters ------------------------------------------------------------------------------
    def depth(self) -> int:
        """Events stored and not yet acknowledged."""
        return self._count

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Events dropped because the outbox was full, over its whole life."""
        return int(self._meta("dropped", "0"))

    # -- putting -------------------------------------------------------------------------------
    def put(self, event: Event) -> bool:
        """Store an event for delivery (committed when this returns). False when the outbox was full
        and the event was dropped (and counted)."""
        record = self.sink.encode(event)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            episode = int(self._meta("overflow_drops", "0"))
            full = (self._bytes + len(record) > self.max_bytes
                    or (self.max_events is not None and self._count + 1 > self.max_events))
            if full:
                self._set_meta("dropped", str(self.dropped + 1))
                self._set_meta("overflow_drops", str(episode + 1))
                if episode == 0:
                    n = int(self._meta("overflows", "0")) + 1
                    self._set_meta("overflows", str(n))
                    self._insert(self._overflow_alert(event, n))
                return False
            if episode:
                self._set_meta("overflow_drops", "0")
                self._insert(self._overflow_end(event, int(self._meta("overflows", "0")), episode))
            self._insert_record(event.id, record)
        self._wake.set()
        return True

    def _insert(self, event: Event) -> None:
        self._insert_record(event.id, self.sink.encode(event))

    def _insert_record(self, event_id: str, record: bytes) -> None:
        self._db.execute("INSERT INTO outbox (event_id, record) VALUES (?, ?)", (event_id, record))
        self._count += 1
        self._bytes += len(record)

    def _overflow_alert(self, cause: Event, n: int) -> Event:
        return alert(f"sink-overflow|{self.sink.name}", f"outbox for {self.sink.name} is full "
                     f"({self._bytes} bytes, {self._count} events): new events are dropped and counted "
                     f"until it drains", "high", seq=n, action="sink-overflow", observer=cause.observer,
                     site=cause.site)

    def _overflow_end(self, cause: Event, n: int, drops: int) -> Event:
        return Event("audit", f"sink-overflow|{self.sink.name}", time.time(),
                     f"outbox for {self.sink.name} accepts events again: {drops} events were dropped "
                     f"while it was full", "medium", seq=n, site=cause.site, observer=cause.observer,
                     action="sink-overflow-end")

    # -- delivering ----------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Deliver stored events, oldest first, until none is left (True) or `timeout` seconds
        passed (False; what was not acknowledged stays). Failed batches are retried after the
        backoff, which carries over from one call to the next."""
        deadline = time.monotonic() + timeout
        with self._flushing:
            return self._deliver(deadline)

    def _deliver(self, deadline: float) -> bool:
        while True:
            rows = self._head()
            if not rows:
                return True
            wait = self._next_try - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait > deadline:
                    time.sleep(max(0.0, deadline - time.monotonic()))
                    return False
                time.sleep(wait)
            self._attempt(rows)
            if time.monotonic() >= deadline:
                return self._count == 0

    def _head(self) -> list[tuple[int, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, record FROM outbox ORDER BY seq LIMIT ?",
                                    (self.batch_events,)).fetchall()
        size, out = 0, []
        for seq, rec in rows:
            if out and size + len(rec) > self.batch_bytes:
                break
            size += len(rec)
            out.append((seq, rec))
        return out

    def _attempt(self, rows: list[tuple[int, bytes]]) -> None:
        try:
            self.sink.send([rec for _, rec in rows])
        except DeliveryError as e:
            self.failures += 1
            self.last_error = str(e)
            delay = min(self.backoff_max, self.backoff_first * 2 ** min(self.failures - 1, 30))
            self._next_try = time.monotonic() + delay * (0.5 + random.random() / 2)
            return
        with self._lock, self._db:
            self._db.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (rows[0][0], rows[-1][0]))
            self._count -= len(rows)
            self._bytes -= sum(len(rec) for _, rec in rows)
        self.failures, self.last_error, self._next_try = 0, None, 0.0

    # -- a delivery thread ---------------------------------------------------------------------
    def start(self) -> None:
        """Deliver in a background thread until close()."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"outbox {self.sink.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.flush(0.5):
                self._wake.wait(0.5)
                self._wake.clear()

    def close(self, timeout: float = 0.0) -> None:
        """Stop the delivery thread (after up to `timeout` seconds of flushing) and close."""
        if timeout:
            self.flush(timeout)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.sink.close()
        self._db.close()

    # -- meta ----------------------------------------------------------------------------------
    def _meta(self, key: str, default: str | None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                         "SET value = excluded.value", (key, value))
