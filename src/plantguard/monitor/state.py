"""Where a monitor keeps what survives a restart: one directory beside the store (the ring
ledger, the checkpoint, the alert state, the baseline, one outbox per sink), JSON files written
atomically so a kill leaves the old file or the new one."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from plantguard.errors import InputError

CHECKPOINT, ALERTS, BASELINE, LEDGER, ASSESSMENT = ("checkpoint.json", "alerts.json", "baseline.json",
                                                    "ring.ledger.json", "assessment.json")


def state_dir_for(db: str | None) -> Path:
    """The monitor's directory for a store: `PATH.monitor` beside a SQLite file, else
    ./plantguard.monitor (a server database has no directory of its own)."""
    if db is None:
        db = os.environ.get("PLANTGUARD_DB") or "plantguard.db"
    path = db
    for prefix in ("sqlite+pysqlite:///", "sqlite:///"):
        if db.startswith(prefix):
            path = db[len(prefix):]
            break
    else:
        if "://" in db:
            return Path("plantguard.monitor")
    return Path(path).with_name(Path(path).name + ".monitor") if path not in ("", ":memory:") \
        else Path("plantguard.monitor")


class StateDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot create the monitor's state directory "
                             f"({exc.strerror or exc})") from None

    def file(self, name: str) -> Path:
        return self.path / name

    def outbox(self, url: str) -> Path:
        """One outbox per sink URL (its hash: the URL may hold a token)."""
        return self.path / f"outbox-{hashlib.sha256(url.encode()).hexdigest()[:16]}.sqlite"

    def load(self, name: str) -> Any:
        try:
            return json.loads(self.file(name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.file(name)}: unreadable monitor state ({exc})") from None

    def save(self, name: str, doc: Any) -> None:
        write_json(self.file(name), doc)


def write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
