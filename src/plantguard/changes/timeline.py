"""The PLC change timeline: every write, configuration, program, firmware and run/stop operation
sent to a controller, aggregated per (station, controller, protocol, operation), each with its
verdict. The plc.* checks and the contract's plc_changes read the same records, so a report and
its findings never disagree.

Verdicts: with tickets in use (AssessContext.options[TICKETS_OPTION] is a list, even an empty
one), tickets.verdict decides (by "ticket" when one holds the change, else "none"); without
tickets a declared engineering station authorises (by "station"), anything else is "none"."""
from __future__ import annotations

from plantguard.changes.tickets import Change, Verdict, verdict
from plantguard.model import PROGRAM_CATEGORIES, WRITE_CATEGORIES
from plantguard.util.timefmt import iso

TICKETS_OPTION = "change_tickets"
CHANGE_CATEGORIES = WRITE_CATEGORIES | PROGRAM_CATEGORIES
MAX_CHANGES = 5_000          # records kept in plc_changes (busiest first); the rest are counted
MAX_CHANGE_EVIDENCE = 8
MAX_AGGREGATES = 200_000     # distinct changes tracked at all; past it new ones are counted only


def tickets_of(ctx) -> list | None:
    opts = ctx.options if isinstance(getattr(ctx, "options", None), dict) else {}
    tickets = opts.get(TICKETS_OPTION)
    return tickets if isinstance(tickets, (list, tuple)) else None


def _text(v) -> str | None:
    return v.strip() or None if isinstance(v, str) else None


def operation_name(o) -> str:
    d = o.data
    return _text(d.get("name")) or _text(d.get("category")) or "operation"


def key_of(o) -> tuple:
    return (o.src, o.dst, o.proto, operation_name(o), _text(o.data.get("category")) or "")


def _names(idx, ip: str) -> tuple[str, ...]:
    a = idx.asset(ip)
    if a is None:
        return ()
    declared = getattr(a, "declared", None) or {}
    ident = getattr(a, "identity", None) or {}
    names = [declared.get("name"), ident.get("name")] + sorted(getattr(a, "hostnames", None) or ())
    return tuple(n for n in names if isinstance(n, str) and n)


def changes(idx) -> tuple[dict[tuple, Change], int]:
    """(key_of -> Change, changes not tracked past MAX_AGGREGATES) over the operations to
    controllers; cached on the Index."""
    cached = getattr(idx, "_plantguard_changes", None)
    if cached is not None:
        return cached
    out: dict[tuple, Change] = {}
    dropped = 0
    for o in idx.obs("operation"):
        cat = _text(o.data.get("category"))
        if cat not in CHANGE_CATEGORIES or not o.dst or not idx.is_controller(o.dst, o.proto):
            continue
        k = key_of(o)
        c = out.get(k)
        if c is None:
            if len(out) >= MAX_AGGREGATES:
                dropped += 1
                continue
            c = out[k] = Change(o.src or "?", o.dst, o.proto, k[3], cat, controller_names=_names(idx, o.dst))
        c.count += getattr(o, "count", 1) or 1
        last = o.last_ts or o.ts
        c.first = o.ts if c.first is None else min(c.first, o.ts)
        c.last = last if c.last is None else max(c.last, last)
        if len(c.evidence) < MAX_CHANGE_EVIDENCE:
            c.evidence.append((o.capture, o.frame, o.ts, _detail(o)))
            n = getattr(o, "count", 1) or 1
            if n > 1 and o.last_frame and len(c.evidence) < MAX_CHANGE_EVIDENCE:
                # a folded repeat: its last frame too, which is the one a window may miss
                c.evidence.append((o.capture, o.last_frame, last, f"{_detail(o)} (the last of {n})"))
    idx._plantguard_changes = (out, dropped)
    return out, dropped


def judged(idx, tickets: list | None) -> dict[tuple, Verdict]:
    """key_of -> the Verdict of its change (see the module's docstring); cached on the Index."""
    cached = getattr(idx, "_plantguard_verdicts", None)
    if cached is not None and cached[0] is tickets:
        return cached[1]
    site = idx.site
    declared = bool(site is not None and site.engineering_workstations)
    out = {}
    for k, c in changes(idx)[0].items():
        if tickets is not None:
            out[k] = verdict(c, tickets)
        elif declared and site.is_engineering_workstation(c.station):
            out[k] = Verdict(True, None, f"from {c.station}, an authorised engineering station")
        elif declared:
            out[k] = Verdict(False, None, f"{c.station} is not an authorised engineering station")
        else:
            out[k] = Verdict(False, None, "cannot be verified: no authorised engineering stations are declared")
    idx._plantguard_verdicts = (tickets, out)
    return out


def by_of(v: Verdict) -> str:
    return "ticket" if v.ticket else ("station" if v.authorised else "none")


def records(idx, tickets: list | None) -> tuple[list[dict], int]:
    """(the contract's plc_changes, how many were left out): the MAX_CHANGES busiest changes, in
    time order."""
    all_changes, untracked = changes(idx)
    verdicts = judged(idx, tickets)
    items = sorted(all_changes.items(), key=lambda kv: -kv[1].count)
    kept, dropped = items[:MAX_CHANGES], len(items) - MAX_CHANGES if len(items) > MAX_CHANGES else 0
    kept.sort(key=lambda kv: (kv[1].first or 0.0, kv[0][:4]))
    out = []
    for k, c in kept:
        v = verdicts[k]
        out.append({
            "station": c.station, "controller": c.controller, "protocol": c.protocol,
            "operation": c.operation, "category": c.category, "count": c.count,
            "first": iso(c.first), "last": iso(c.last),
            "evidence": [{"capture": cap, "frame": frame, "time": iso(ts), "detail": detail}
                         for cap, frame, ts, detail in c.evidence],
            "evidence_total": c.count,
            "verdict": {"authorised": v.authorised, "ticket": v.ticket, "reason": v.reason, "by": by_of(v)},
        })
    return out, dropped + untracked


def _detail(o) -> str:
    d = o.data
    detail = d.get("detail")
    return f"{o.proto} {operation_name(o)} ({d.get('category')})" + (f": {str(detail)[:80]}" if detail else "")
