"""The sensor's HTTP client of central (httpx): mutual TLS with the sensor's certificate, the
server verified against the server CA only (ca.pem). Wire names are those of docs/central.md.

A transport failure or a server error (5xx) is CentralUnavailable: worth retrying later. A refusal
(426 schema too old, 4xx) is CentralRefused: retrying will not help. Both are one line. A 409 is no
error: it is the server saying where the sender must resume (PushResult.conflict, next_seq)."""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from plantguard.central.envelope import CONTENT_TYPE, Envelope, encode_batch
from plantguard.errors import InputError

TIMEOUT = 30.0
_DETAIL = 200


class CentralUnavailable(Exception):
    """Central cannot be reached or failed (retry later); one line."""


class CentralRefused(InputError):
    """Central refused the request (credentials, version, input); one line."""


@dataclass(frozen=True)
class PushResult:
    applied: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    next_seq: int = 1
    conflict: bool = False          # 409: the batch started beyond next_seq


class _Ingested(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    applied: list[int]
    duplicates: list[int]
    next_seq: int


class _Conflict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    applied: list[int] = []         # a batch that went beyond next_seq midway applied its start
    duplicates: list[int] = []
    next_seq: int


class CentralClient:
    def __init__(self, server_url: str, ca_pem_path=None, cert_path=None, key_path=None, timeout: float = TIMEOUT):
        self.server = server_url.rstrip("/")
        try:
            # no CA given: the system's trust store (enrolment before ca.pem exists)
            ctx = ssl.create_default_context(cafile=str(ca_pem_path) if ca_pem_path else None)
            if cert_path is not None:
                ctx.load_cert_chain(str(cert_path), str(key_path) if key_path else None)
        except (OSError, ssl.SSLError) as e:
            raise InputError(f"sensor credentials: {_line(e)}") from None
        self._http = httpx.Client(base_url=self.server, verify=ctx, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- calls ---------------------------------------------------------------------------------
    def enrol(self, token: str, name: str, csr_pem: str) -> dict:
        """{sensor_id, site, certificate, ca} for a one-time enrolment token and a CSR."""
        data = self._json(self._post("/api/v1/enrol", json={"token": token, "name": name, "csr": csr_pem}))
        keys = ("sensor_id", "site", "certificate", "ca")
        if not all(isinstance(data.get(k), str) for k in keys):
            raise CentralUnavailable(f"central {self.server}: enrol answer lacks {', '.join(keys)}")
        return {k: data[k] for k in keys}

    def renew(self, csr_pem: str) -> str:
        """A new certificate for the CSR (authenticated by the current one)."""
        cert = self._json(self._post("/api/v1/sensor/renew", json={"csr": csr_pem})).get("certificate")
        if not isinstance(cert, str):
            raise CentralUnavailable(f"central {self.server}: renew answer has no certificate")
        return cert

    def push(self, envs: list[Envelope], timeout: float | None = None) -> PushResult:
        """Send a batch (sent_at stamped now). 200 -> what was applied or already there and the
        server's next seq; 409 -> conflict with the seq to resume from. timeout (seconds) bounds
        this request below the client's own."""
        now = datetime.now(timezone.utc)
        body = encode_batch([replace_sent(e, now) for e in envs])
        kw = {} if timeout is None else {"timeout": min(timeout, self._http.timeout.read or timeout)}
        r = self._post("/api/v1/ingest", content=body, headers={"Content-Type": CONTENT_TYPE}, **kw)
        try:
            if r.status_code == 409:
                c = _Conflict.model_validate_json(r.content)
                return PushResult(c.applied, c.duplicates, c.next_seq, conflict=True)
            got = _Ingested.model_validate_json(r.content)
        except ValidationError:
            raise CentralUnavailable(f"central {self.server}: unreadable ingest answer ({r.status_code})") from None
        return PushResult(got.applied, got.duplicates, got.next_seq)

    # -- transport -----------------------------------------------------------------------------
    def _post(self, path: str, **kw) -> httpx.Response:
        try:
            r = self._http.post(path, **kw)
        except httpx.HTTPError as e:
            raise CentralUnavailable(f"central {self.server}: {type(e).__name__}: {_line(e)}") from None
        if r.status_code >= 500:
            raise CentralUnavailable(f"central {self.server}: {r.status_code} {_detail(r)}")
        if r.status_code == 426:
            raise CentralRefused(f"central {self.server} refuses schema version: {_detail(r)}")
        if r.status_code >= 400 and r.status_code != 409:
            raise CentralRefused(f"central {self.server}: {r.status_code} {_detail(r)}")
        return r

    def _json(self, r: httpx.Response) -> dict:
        try:
            data = r.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise CentralUnavailable(f"central {self.server}: answer is not a JSON object ({r.status_code})")
        return data


def replace_sent(env: Envelope, at: datetime) -> Envelope:
    return env.model_copy(update={"sent_at": at})


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json().get("detail")
    except (ValueError, AttributeError):
        d = None
    return _line(d if isinstance(d, str) else r.reason_phrase or "")


def _line(e) -> str:
    return " ".join(str(e).split())[:_DETAIL]
