"""How a probe plan and its results are shown: the dry run's every frame (hex and as the
passive decoder reads it) with the expected load, and after sending, per target, what was
learnt and how each query went. Device text is hostile: every value goes through the terminal
sanitiser before it is printed."""
from __future__ import annotations

from plantguard.probe.session import Plan, QueryRun
from plantguard.util.sanitize import terminal_text

# packets per TCP query beyond its requests and responses: handshake (3) and close (3)
TCP_OVERHEAD = 6


def expected_load(runs: list[QueryRun], rate: float) -> dict:
    frames = sum(len(r.steps) for r in runs)
    tcp = sum(1 for r in runs if r.query.transport in ("tcp", "tls") and r.steps)
    packets_out = frames + tcp * 3                          # our SYN, ACK, FIN/ACK... counted once each
    packets = frames * 2 + tcp * TCP_OVERHEAD
    octets = sum(len(s.frame) for r in runs for s in r.steps)
    return {"queries": sum(1 for r in runs if r.steps), "frames": frames, "packets_sent": packets_out,
            "packets_total_estimate": packets, "request_bytes": octets,
            "seconds_at_rate": round(packets_out / rate, 1) if rate else None, "rate": rate}


def dry_run_text(plan: Plan, runs: list[QueryRun], rate: float, allow_list: bool) -> list[str]:
    lines: list[str] = []
    for r in runs:
        head = f"{r.target.ip}" + (f" ({r.target.zone})" if r.target.zone else "")
        lines.append(f"{head}  {r.query.id}: {r.query.title} — {r.query.transport}/{r.query.port}"
                     if r.query.port else f"{head}  {r.query.id}: {r.query.title} — layer 2")
        if r.status in ("refused", "skipped"):
            lines.append(f"    {r.status}: {terminal_text(r.reason)}")
        for i, s in enumerate(r.steps, 1):
            lines.append(f"    frame {i} ({len(s.frame)} bytes): {', '.join(s.operations)}")
            hexed = s.frame.hex()
            for off in range(0, len(hexed), 64):
                lines.append(f"      {off // 2:04x}  {' '.join(hexed[j:j + 2] for j in range(off, min(off + 64, len(hexed)), 2))}")
    for t, q, why in plan.skipped:
        lines.append(f"{t.ip}  {q.id if q else '*'}: not planned: {terminal_text(why)}")
    load = expected_load(runs, rate)
    lines.append(f"expected load: {load['queries']} queries, {load['frames']} request frames "
                 f"({load['request_bytes']} bytes), {load['packets_sent']} packets sent, about "
                 f"{load['seconds_at_rate']} s at {rate:g} packets/s")
    lines.append("dry run: nothing was sent" + ("; add --send to send it" if allow_list else
                                                "; --send needs a site file with a probe: allow-list"))
    return lines


def dry_run_json(plan: Plan, runs: list[QueryRun], rate: float) -> dict:
    return {"dry_run": True, "sent": 0,
            "frames": [{"ip": r.target.ip, "zone": r.target.zone, "query": r.query.id, "status": r.status,
                        "reason": r.reason,
                        "frames": [{"hex": s.frame.hex(), "operations": s.operations} for s in r.steps]}
                       for r in runs],
            "not_planned": [{"ip": t.ip, "query": q.id if q else None, "reason": why} for t, q, why in plan.skipped],
            "expected_load": expected_load(runs, rate)}


def results_text(records: list[dict], sent: int, tripped: str | None, evidence: str | None) -> list[str]:
    lines = []
    for rec in records:
        ident = rec["identity"]
        lines.append(f"{rec['ip']}" + (f" ({rec['zone']})" if rec.get("zone") else "")
                     + (": " + ", ".join(f"{k}={terminal_text(str(v))}" for k, v in sorted(ident.items()))
                        if ident else ": no identity learnt"))
        for q in rec["queries"]:
            lines.append(f"    {q['query']}: {q['status']}" + (f" ({terminal_text(q['reason'])})" if q["reason"] else "")
                         + f", {q['frames_sent']} sent, {q['frames_answered']} answered, {q['ms']:g} ms")
    lines.append(f"{sent} packets sent" + (f"; evidence: {evidence}" if evidence else ""))
    if tripped:
        lines.append(f"circuit breaker: {tripped}; the rest was not sent")
    return lines
