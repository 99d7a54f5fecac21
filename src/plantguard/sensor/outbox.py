"""The sensor's durable envelope outbox: every envelope is stored (a committed SQLite transaction,
WAL, synchronous=FULL) before it is sent, and deleted only once central acknowledged it, so a
crash, a reboot or a WAN outage of days loses nothing (store-and-forward).

seq is the SQLite AUTOINCREMENT key: assigned in the transaction that stores the envelope,
strictly increasing, never reused even after the rows are deleted (sqlite_sequence keeps the
highest ever given). The outbox is bounded by max_bytes of stored (compressed) bodies: past it
put() refuses, counts the drop (persisted in the same transaction) and consumes no seq.

Beside the envelopes it keeps, per site, a fingerprint of every asset last queued in an inventory
envelope (updated in the transaction that queues it), so the next inventory carries only what is
new or changed. Several processes may share one outbox file: counters live in the database."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import zstandard

from plantguard.central.envelope import SCHEMA_VERSION, Envelope, body_json
from plantguard.errors import InputError

MAX_BYTES = 256 << 20
MAX_ENVELOPE_BYTES = 16 << 20      # one body's JSON; push.py splits lists well below it

_SCHEMA = """
CREATE TABLE IF NOT EXISTS envelopes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    site TEXT NOT NULL, captured_at TEXT NOT NULL, schema_version TEXT NOT NULL,
    raw_size INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inventory_fingerprints (site TEXT NOT NULL, key TEXT NOT NULL,
    fingerprint TEXT NOT NULL, PRIMARY KEY (site, key));
"""


class EnvelopeOutbox:
    def __init__(self, path: str | Path, sensor_id: str, *, max_bytes: int = MAX_BYTES):
        self.path, self.sensor_id, self.max_bytes = Path(path), sensor_id, max_bytes
        self._zc, self._zd = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                owner = self._meta("sensor_id")
                if owner is None:
                    self._set_meta("sensor_id", sensor_id)
        except sqlite3.Error as e:
            raise InputError(f"outbox {self.path}: {e}") from None
        if owner is not None and owner != sensor_id:
            self._db.close()
            raise InputError(f"outbox {self.path} holds envelopes of sensor {owner}, not {sensor_id}")

    # -- counters ------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Envelopes stored and not acknowledged."""
        return self._db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]

    @property
    def stored_bytes(self) -> int:
        return int(self._meta("bytes") or 0)

    @property
    def dropped(self) -> int:
        """Envelopes refused because the outbox was full, over its whole life."""
        return int(self._meta("dropped") or 0)

    @property
    def last_acked(self) -> int:
        """The highest seq central acknowledged (0 before the first)."""
        return int(self._meta("last_acked") or 0)

    # -- putting -------------------------------------------------------------------------------
    def put(self, kind: str, site: str, captured_at: datetime, body: dict) -> int | None:
        """Store an envelope (committed when this returns) and return its seq; None when the
        outbox is full (the drop is counted, no seq is used). An inventory body's assets and
        gone keys update the site's fingerprints in the same transaction."""
        # the envelope head() will build from the row must be valid (ValidationError otherwise)
        Envelope(sensor_id=self.sensor_id, seq=1, schema_version=SCHEMA_VERSION, kind=kind, site=site,
                 captured_at=captured_at, body={})
        raw = body_json(body)
        if len(raw) > MAX_ENVELOPE_BYTES:
            raise ValueError(f"{kind} envelope body of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}")
        blob = self._zc.compress(raw)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            stored = int(self._meta("bytes") or 0)
            if stored + len(blob) > self.max_bytes:
                self._set_meta("dropped", str(int(self._meta("dropped") or 0) + 1))
                return None
            cur = self._db.execute(
                "INSERT INTO envelopes (kind, site, captured_at, schema_version, raw_size, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, site, captured_at.isoformat(), SCHEMA_VERSION, len(raw), blob))
            self._set_meta("bytes", str(stored + len(blob)))
            if kind == "inventory":
                self._remember(site, body)
            return cur.lastrowid

    def _remember(self, site: str, body: dict) -> None:
        from plantguard.sensor.push import asset_fingerprint, asset_key
        rows = [(site, k, asset_fingerprint(a)) for a in body.get("assets") or () if (k := asset_key(a))]
        self._db.executemany("INSERT INTO inventory_fingerprints (site, key, fingerprint) VALUES (?, ?, ?) "
                             "ON CONFLICT(site, key) DO UPDATE SET fingerprint = excluded.fingerprint", rows)
        self._db.executemany("DELETE FROM inventory_fingerprints WHERE site = ? AND key = ?",
                             [(site, k) for k in body.get("gone") or () if isinstance(k, str)])

    def fingerprints(self, site: str) -> dict[str, str]:
        """Asset key -> fingerprint of what was last queued for the site."""
        return dict(self._db.execute("SELECT key, fingerprint FROM inventory_fingerprints WHERE site = ?",
                                     (site,)).fetchall())

    # -- delivering ----------------------------------------------------------------------------
    def head(self, max_envelopes: int, max_bytes: int) -> list[Envelope]:
        """The oldest stored envelopes, in seq order: at most max_envelopes, and at most max_bytes
        of body JSON (but always the first one)."""
        rows = self._db.execute("SELECT seq, kind, site, captured_at, schema_version, raw_size, body "
                                "FROM envelopes ORDER BY seq LIMIT ?", (max_envelopes,)).fetchall()
        out, size = [], 0
        for seq, kind, site, captured_at, version, raw_size, blob in rows:
            if out and size + raw_size > max_bytes:
                break
            size += raw_size
            body = json.loads(self._zd.decompress(blob, max_output_size=raw_size))
            out.append(Envelope(sensor_id=self.sensor_id, seq=seq, schema_version=version, kind=kind, site=site,
                                captured_at=datetime.fromisoformat(captured_at), body=body))
        return out

    def ack(self, upto_seq: int) -> int:
        """Delete every envelope with seq <= upto_seq (central has them); returns how many."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            n, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM envelopes "
                                       "WHERE seq <= ?", (upto_seq,)).fetchone()
            self._db.execute("DELETE FROM envelopes WHERE seq <= ?", (upto_seq,))
            self._set_meta("bytes", str(int(self._meta("bytes") or 0) - size))
            if upto_seq > int(self._meta("last_acked") or 0):
                self._set_meta("last_acked", str(upto_seq))
            # central holds every seq up to upto_seq: new envelopes must come after it
            if not self._db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'envelopes'",
                                    (upto_seq,)).rowcount:
                self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('envelopes', ?)", (upto_seq,))
        return n

    def first_seq(self) -> int | None:
        return self._db.execute("SELECT MIN(seq) FROM envelopes").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    # -- meta ----------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                         "SET value = excluded.value", (key, value))

