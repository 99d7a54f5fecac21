"""What an enrolled sensor keeps on disk, in one directory ($PLANTGUARD_SENSOR_DIR, else
~/.local/share/plantguard/sensor): sensor.json {server, sensor_id, name, site}, key.pem (0600),
cert.pem, ca.pem (the server's CA, the only one trusted) and outbox.db. Files are replaced
atomically (written beside, then renamed), so a crash never leaves half a certificate."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from plantguard.errors import InputError

DIR_ENV = "PLANTGUARD_SENSOR_DIR"
_FIELDS = ("server", "sensor_id", "name", "site")


@dataclass(frozen=True)
class Enrolment:
    server: str
    sensor_id: str
    name: str
    site: str


class SensorState:
    def __init__(self, dir: str | os.PathLike | None = None):
        self.dir = Path(dir or os.environ.get(DIR_ENV) or Path.home() / ".local/share/plantguard/sensor")
        self.config = self.dir / "sensor.json"
        self.key = self.dir / "key.pem"
        self.cert = self.dir / "cert.pem"
        self.ca = self.dir / "ca.pem"
        self.outbox = self.dir / "outbox.db"

    def load(self) -> Enrolment:
        """The enrolment; InputError when the sensor is not enrolled (or its files are damaged)."""
        if not all(p.is_file() for p in (self.config, self.key, self.cert, self.ca)):
            raise InputError("not enrolled: run plantguard sensor enroll")
        try:
            data = json.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"sensor state {self.config}: {' '.join(str(e).split())}") from None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in _FIELDS):
            raise InputError(f"sensor state {self.config}: needs text {', '.join(_FIELDS)}")
        return Enrolment(*(data[k] for k in _FIELDS))

    def save(self, enrolment: Enrolment, key_pem: bytes | str, cert_pem: bytes | str, ca_pem: bytes | str) -> None:
        """Store a new enrolment (key first, 0600; the config last, so load() sees all or nothing)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.save_certificate(cert_pem, key_pem)
        _write(self.ca, ca_pem)
        _write(self.config, json.dumps({k: getattr(enrolment, k) for k in _FIELDS}, indent=2) + "\n")

    def save_certificate(self, cert_pem: bytes | str, key_pem: bytes | str | None = None) -> None:
        """A renewed certificate (and its new key, when the key was rotated too)."""
        if key_pem is not None:
            _write(self.key, key_pem, mode=0o600)
        _write(self.cert, cert_pem)


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    raw = data.encode() if isinstance(data, str) else data
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"sensor state {path}: {e.strerror or e}") from None
