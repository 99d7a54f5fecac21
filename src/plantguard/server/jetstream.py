"""When one server is outgrown: a NATS JetStream buffer between the API and several ingest workers.

`server run --nats URL` accepts a sensor's batch into the stream instead of applying it: under
the sensor's row lock it checks the batch continues what was accepted before (else 409 with the
next seq, as without the buffer), publishes it with a message id of (sensor, first seq, last
seq) so JetStream drops a republished copy, waits for the stream's acknowledgement (the batch is
on disk), then records the accepted seq and answers. The sensor's outbox can then forget the
batch: the stream holds it until a worker has applied it.

`server ingest-worker` processes (any number, on any machine that reaches the database) share
one durable pull consumer of the work-queue stream. A worker applies a message with the same
apply_batch as the API, so (sensor_id, seq) stays effect-once whatever JetStream redelivers: a
batch whose seqs were applied already is acknowledged as duplicates; a batch that arrives before
the one it follows (another worker still has it) is not acknowledged but redelivered shortly
(nak with a delay), so each sensor's envelopes are applied in order."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal

from sqlalchemy import select

from plantguard.central.envelope import decode_batch
from plantguard.server import tables as t

STREAM = "PLANTGUARD_INGEST"
SUBJECT = "plantguard.ingest"               # .<sensor_id>
DURABLE = "ingest-workers"
RETRY_DELAY = 0.2                           # seconds before a batch that came too early is offered again
ACK_WAIT = 60.0                             # a worker killed mid-apply: its batch goes to another after this
log = logging.getLogger("plantguard.server")


async def connect(url: str):
    """(connection, JetStream context) with the ingest stream in place (created when missing)."""
    import nats
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    js = nc.jetstream()
    try:
        await js.stream_info(STREAM)
    except Exception:  # noqa: BLE001 - nats-py raises NotFoundError; any failure here means: create it
        await js.add_stream(StreamConfig(name=STREAM, subjects=[f"{SUBJECT}.>"], retention=RetentionPolicy.WORK_QUEUE,
                                         storage=StorageType.FILE, duplicate_window=600.0))
    return nc, js


def subject(sensor_id: str) -> str:
    return f"{SUBJECT}.{sensor_id}"


class Buffer:
    """The API's side: accept a sensor's batch into the stream."""

    def __init__(self, url: str):
        self.url = url
        self._js = None
        self._nc = None
        self._lock = asyncio.Lock()

    async def _jetstream(self):
        async with self._lock:
            if self._js is None:
                self._nc, self._js = await connect(self.url)
        return self._js

    async def accept(self, central, sensor_id: str, data: bytes, envelopes: list) -> tuple[int, dict]:
        """(HTTP status, answer) for a batch that decoded; the answer has the ingest route's shape."""
        import anyio
        seqs = [e.seq for e in envelopes]
        js = await self._jetstream()
        session = central._sessions()
        try:
            accepted = await anyio.to_thread.run_sync(_lock_sensor, session, sensor_id)
            if accepted is None:
                return 403, {"detail": f"sensor {sensor_id} is not enrolled or was revoked"}
            if seqs[0] > accepted + 1:
                return 409, {"detail": f"expected seq {accepted + 1} first", "next_seq": accepted + 1}
            duplicates = [s for s in seqs if s <= accepted]
            if len(duplicates) < len(seqs):
                await js.publish(subject(sensor_id), data,
                                 headers={"Nats-Msg-Id": f"{sensor_id}:{seqs[0]}-{seqs[-1]}"})
                accepted = max(accepted, seqs[-1])
            await anyio.to_thread.run_sync(_record_accepted, session, sensor_id, accepted)
        finally:
            session.close()
        return 200, {"applied": [], "duplicates": duplicates, "next_seq": accepted + 1,
                     "queued": [s for s in seqs if s not in duplicates]}

    async def close(self):
        if self._nc is not None:
            await self._nc.close()


def _lock_sensor(session, sensor_id: str) -> int | None:
    sensor = session.scalar(select(t.Sensor).where(t.Sensor.id == sensor_id).with_for_update())
    if sensor is None or sensor.revoked_at is not None:
        session.rollback()
        return None
    return max(sensor.accepted_seq or 0, sensor.last_seq)


def _record_accepted(session, sensor_id: str, accepted: int) -> None:
    sensor = session.get(t.Sensor, sensor_id)
    sensor.accepted_seq = accepted
    session.commit()


# ------------------------------------------------------------------------------ workers
@dataclasses.dataclass
class WorkerStats:
    messages: int = 0
    applied: int = 0            # envelopes this worker applied
    duplicates: int = 0
    retried: int = 0            # batches offered again because an earlier one was not applied yet
    refused: int = 0            # batches central refuses (revoked sensor, version): dropped from the stream


def run_worker(db: str, url: str, *, stop: asyncio.Event | None = None, fetch: int = 10) -> WorkerStats:
    """Apply batches from the stream until SIGTERM/SIGINT; the counts of what this worker did."""
    from plantguard.store.db import open_engine, session_factory
    engine = open_engine(db)
    sessions = session_factory(engine)
    try:
        return asyncio.run(_work(sessions, url, stop, fetch))
    finally:
        engine.dispose()


async def _work(sessions, url: str, stop: asyncio.Event | None, fetch: int) -> WorkerStats:
    from nats.errors import TimeoutError as FetchTimeout
    from nats.js.api import AckPolicy, ConsumerConfig
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc, js = await connect(url)
    stats = WorkerStats()
    sub = await js.pull_subscribe(f"{SUBJECT}.>", durable=DURABLE, stream=STREAM,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT,
                                                        max_ack_pending=1000))
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(fetch, timeout=0.5)
            except FetchTimeout:
                continue
            for msg in msgs:
                stats.messages += 1
                await _handle(sessions, msg, stats)
    finally:
        await nc.close()
    return stats


async def _handle(sessions, msg, stats: WorkerStats) -> None:
    import anyio

    from plantguard.server.ingest import IngestRefused, apply_batch
    sensor_id = msg.subject.rsplit(".", 1)[-1]
    try:
        envelopes = decode_batch(msg.data)
    except Exception as exc:  # noqa: BLE001 - the API decoded it before publishing; a bad message is dropped
        log.error("ingest worker: undecodable batch from %s dropped: %s", sensor_id, exc)
        stats.refused += 1
        await msg.term()
        return

    def apply():
        with sessions() as session:
            return apply_batch(session, sensor_id, envelopes)
    try:
        done = await anyio.to_thread.run_sync(apply)
    except IngestRefused as exc:
        log.error("ingest worker: batch from %s refused: %s", sensor_id, exc.detail)
        stats.refused += 1
        await msg.term()
        return
    except Exception as exc:  # noqa: BLE001 - database trouble: offered again
        log.warning("ingest worker: batch from %s not applied now: %s", sensor_id, str(exc).splitlines()[0])
        await msg.nak(delay=1.0)
        return
    stats.applied += len(done.applied)
    stats.duplicates += len(done.duplicates)
    if done.gap:
        stats.retried += 1
        await msg.nak(delay=RETRY_DELAY)      # an earlier batch of this sensor is still with another worker
    else:
        await msg.ack()
