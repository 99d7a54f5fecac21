"""The sensor side of the API: enrolment with a one-time token (the answer is a client certificate
from the server's CA), envelope ingest and certificate renewal, both over mutual TLS."""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from plantguard.server import audit, auth, pki
from plantguard.server import tables as t
from plantguard.server.api.common import Principal, central, client_label, db, requires
from plantguard.server.ingest import IngestRefused, apply_batch, site_named

router = APIRouter(prefix="/api/v1")
log = logging.getLogger("plantguard.server")

MAX_BATCH_BYTES = 16 << 20          # compressed request body


class EnrolRequest(BaseModel):
    token: str = Field(max_length=200)
    name: str = Field(min_length=1, max_length=200)
    csr: str = Field(max_length=20_000, description="PEM certificate signing request for the sensor's key")


class EnrolAnswer(BaseModel):
    sensor_id: str
    site: str
    certificate: str
    ca: str


class RenewRequest(BaseModel):
    csr: str = Field(max_length=20_000)


class RenewAnswer(BaseModel):
    certificate: str


class IngestAnswer(BaseModel):
    applied: list[int]
    duplicates: list[int]
    next_seq: int


def _refuse(session: Session, request: Request, why: str, status: int = 401):
    audit.append(session, f"anonymous@{client_label(request)}", "enrol.refused", "enrolment", after={"reason": why})
    session.commit()
    raise HTTPException(status, f"enrolment refused: {why}")


@router.post("/enrol", response_model=EnrolAnswer, summary="Enrol a sensor with a one-time sensor token")
def enrol(body: EnrolRequest, request: Request, session: Session = Depends(db)):
    c = central(request)
    now = datetime.now(timezone.utc)
    row = auth.redeem_enrolment(session, body.token, now=now)
    if row is None:
        _refuse(session, request, "unknown, expired, revoked or already used enrolment token")
    if len(row.sites or []) != 1:
        _refuse(session, request, f"token {row.id} names no single site")
    site = site_named(session, row.sites[0])
    sensor_id = "s-" + secrets.token_hex(8)
    try:
        cert = pki.sign_sensor(c.ca_cert, c.ca_key, body.csr, sensor_id, days=c.sensor_cert_days)
    except ValueError as exc:
        _refuse(session, request, f"bad certificate request ({exc})", 400)
    sensor = t.Sensor(id=sensor_id, name=body.name, site_id=site.id, cert_fingerprint=pki.fingerprint(cert),
                      cert_not_after=pki.not_after(cert), enrolled_at=now, enrolled_by=f"token:{row.id}", health={})
    session.add(sensor)
    audit.append(session, f"token:{row.id}", "sensor.enrol", f"sensor {sensor_id}",
                 after={"name": body.name, "site": site.name, "fingerprint": sensor.cert_fingerprint,
                        "not_after": sensor.cert_not_after.isoformat()})
    session.commit()
    return EnrolAnswer(sensor_id=sensor_id, site=site.name, certificate=cert.decode(), ca=c.ca_cert)


@router.post("/sensor/renew", response_model=RenewAnswer, summary="A new client certificate before the old expires")
def renew(body: RenewRequest, request: Request, who: Principal = Depends(requires("sensor:renew")),
          session: Session = Depends(db)):
    c = central(request)
    sensor = session.get(t.Sensor, who.id, with_for_update=True)
    try:
        cert = pki.sign_sensor(c.ca_cert, c.ca_key, body.csr, sensor.id, days=c.sensor_cert_days)
    except ValueError as exc:
        raise HTTPException(400, f"bad certificate request ({exc})")
    before = {"fingerprint": sensor.cert_fingerprint}
    sensor.previous_fingerprint = sensor.cert_fingerprint
    sensor.cert_fingerprint, sensor.cert_not_after = pki.fingerprint(cert), pki.not_after(cert)
    audit.append(session, who.actor, "sensor.renew", f"sensor {sensor.id}", before=before,
                 after={"fingerprint": sensor.cert_fingerprint, "not_after": sensor.cert_not_after.isoformat()})
    session.commit()
    return RenewAnswer(certificate=cert.decode())


@router.post("/ingest", response_model=IngestAnswer, summary="Apply a batch of envelopes (effect-once, in order)",
             responses={409: {"description": "the batch starts beyond the next expected seq; resend from next_seq"},
                        426: {"description": "schema version not accepted"}})
async def ingest(request: Request, who: Principal = Depends(requires("ingest:push"))):
    from plantguard.central.envelope import CONTENT_TYPE, EnvelopeError, decode_batch
    if request.headers.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
        raise HTTPException(415, f"content type must be {CONTENT_TYPE}")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BATCH_BYTES:
            raise HTTPException(413, f"batch larger than {MAX_BATCH_BYTES >> 20} MiB compressed")
    try:
        envelopes = decode_batch(bytes(data))
    except EnvelopeError as exc:
        raise HTTPException(400, str(exc))
    c = central(request)
    if c.buffer is not None:
        status, answer = await c.buffer.accept(c, who.id, bytes(data), envelopes)
        return answer if status == 200 else JSONResponse(answer, status_code=status)
    import anyio
    return await anyio.to_thread.run_sync(_apply, c, who.id, envelopes)


def _apply(c, sensor_id: str, envelopes: list):
    with c.sessions() as session:
        try:
            done = apply_batch(session, sensor_id, envelopes)
        except (IntegrityError, OperationalError) as exc:
            # two sensors of one site adding the same new asset at once, a lock timeout: nothing was
            # applied (the transaction is rolled back), the sensor sends the batch again
            session.rollback()
            log.warning("ingest from %s: %s", sensor_id, str(exc.orig or exc).splitlines()[0])
            return JSONResponse({"detail": "busy, send again"}, status_code=503, headers={"Retry-After": "1"})
        except IngestRefused as exc:
            session.rollback()
            content = {"detail": exc.detail}
            if exc.next_seq is not None:
                content["next_seq"] = exc.next_seq
            return JSONResponse(content, status_code=exc.status)
    answer = {"applied": done.applied, "duplicates": done.duplicates, "next_seq": done.next_seq}
    if done.gap and not done.applied and not done.duplicates:
        return JSONResponse({"detail": f"expected seq {done.next_seq} first", **answer}, status_code=409)
    return answer
