"""Runs a probe plan: a dry run (every frame built and validated, nothing sent) or the real
thing, one target and query at a time — so one connection per device, at most, ever — under the
global rate cap and the circuit breaker, with every frame recorded in the evidence."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from plantguard.probe.evidence import Evidence
from plantguard.probe.limits import DEFAULT_TIMEOUT, Breaker, RateCap
from plantguard.probe.query import NewConnection, Query, Target
from plantguard.probe.validator import ConnectionValidator, Refused

MAX_FRAMES_PER_QUERY = 32
MAX_RESPONSE = 64 * 1024
DRAIN_SECONDS = 1.0           # after our FIN, how long the device has to close its side


@dataclass
class Step:
    frame: bytes
    operations: list[str]
    response: bytes | None = None
    seconds: float | None = None


@dataclass
class QueryRun:
    target: Target
    query: Query
    status: str = "planned"   # planned | answered | no answer | refused | closed | error | skipped
    reason: str = ""
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
    local_port: int | None = None

    @property
    def sent(self) -> int:
        return sum(1 for s in self.steps if s.seconds is not None)


@dataclass
class Plan:
    items: list[tuple[Target, Query]]
    skipped: list[tuple[Target, Query | None, str]] = field(default_factory=list)   # not allowed, and why


def _l4(q: Query) -> str:
    return {"tcp": "tcp", "tls": "tcp", "udp": "udp"}.get(q.transport, "")


def validator_for(t: Target, q: Query) -> ConnectionValidator:
    return ConnectionValidator(q.protocol, _l4(q), t.ip, q.port, dst_mac=t.mac, ethertype=q.ethertype)


def dry_run(plan: Plan) -> list[QueryRun]:
    """Every frame each query would send (as if no device answered), validated; nothing sent."""
    runs = []
    for t, q in plan.items:
        run = QueryRun(t, q)
        missing = [n for n in q.needs if not getattr(t, n)]
        if missing:
            run.status, run.reason = "skipped", f"no {', '.join(missing)} known for {t.ip}"
        else:
            try:
                v = validator_for(t, q)
                gen = q.exchange(t)
                frame = next(gen, None)
                while frame is not None and len(run.steps) < MAX_FRAMES_PER_QUERY:
                    if isinstance(frame, NewConnection):
                        v.restart()
                        frame = _send(gen, None)
                        continue
                    run.steps.append(Step(bytes(frame), v.check(frame)))
                    frame = _send(gen, None)
            except Refused as exc:
                run.status, run.reason = "refused", str(exc)
        runs.append(run)
    return runs


def _send(gen, value):
    try:
        return gen.send(value)
    except StopIteration:
        return None


@dataclass
class Options:
    rate: float
    timeout: float = DEFAULT_TIMEOUT
    windows: object = None          # callable(target) -> reason it may not be probed now, or None


def run(plan: Plan, opts: Options, evidence: Evidence, breaker: Breaker | None = None,
        progress=None) -> tuple[list[QueryRun], int]:
    """Send the plan: the runs, and the packets the rate cap let through. Nothing leaves that
    the validator has not allowed."""
    from plantguard.probe import transports
    cap = RateCap(opts.rate)
    breaker = breaker or Breaker()
    runs = []
    for t, q in plan.items:
        r = QueryRun(t, q)
        runs.append(r)
        why_not = breaker.stops(t.ip) or (opts.windows(t) if opts.windows else None)
        missing = [n for n in q.needs if not getattr(t, n)]
        if why_not or missing:
            r.status, r.reason = "skipped", why_not or f"no {', '.join(missing)} known for {t.ip}"
            continue
        started = time.monotonic()
        try:
            transports.exchange(r, validator_for(t, q), cap, opts.timeout, evidence, breaker)
        except Refused as exc:
            r.status, r.reason = "refused", str(exc)
        except OSError as exc:          # unreachable network, ICMP errors, a socket we may not open
            r.status, r.reason = "error", f"{type(exc).__name__}: {exc.strerror or exc}"
            breaker.error(t.ip, r.reason)
        r.seconds = time.monotonic() - started
        if progress:
            progress(r)
    return runs, cap.sent
