"""Finds the check modules and runs their checks.

A check is a function `fn(ctx: AssessContext) -> list[Finding]` registered with `@check(meta)`.
Modules in this package are discovered automatically (names starting with "_" and the base,
listing, practices and registry modules are not check modules). A check is one record: its CheckMeta
carries everything else that is said about it (finding wording, practice, controls, ATT&CK IDs
and the roadmap's wording), so a new check needs no edit elsewhere. Incomplete metadata stops
the load with a one-line CheckMetaError naming the check. A check that cannot decide raises
NotRun(reason); one that needs a site file says so in its metadata (needs_site) and is skipped
without one.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Callable

from plantguard.checks.base import AssessContext, CheckMeta, CheckMetaError, Finding, severity_rank
from plantguard.site import declared_site

log = logging.getLogger(__name__)

_NOT_CHECK_MODULES = {"base", "listing", "practices", "registry"}
_CHECKS: dict[str, tuple[CheckMeta, Callable]] = {}
_LOAD_ERRORS: list[dict[str, str]] = []
_loaded = False

NO_SITE_REASON = "needs a site file (--site site.yaml)"
MAX_FAILS_PER_CHECK = 500   # beyond this, the least severe / least busy fails are summed up in one


class NotRun(Exception):
    """Raised by a check that cannot decide on this input; the message says why."""


def check(meta: CheckMeta):
    """Register `fn` as the check `meta.id`."""
    problems = meta.problems() if isinstance(meta, CheckMeta) else ["not a CheckMeta"]
    if problems:      # a CheckMeta is checked when made; this catches one changed since
        raise CheckMetaError(f"check {getattr(meta, 'id', meta)}: " + "; ".join(problems))

    def register(fn):
        if meta.id in _CHECKS and _CHECKS[meta.id][1] is not fn:
            raise ValueError(f"check ID {meta.id} registered twice")
        _CHECKS[meta.id] = (meta, fn)
        fn.meta = meta
        return fn
    return register


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import plantguard.checks as pkg
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name in _NOT_CHECK_MODULES or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"plantguard.checks.{info.name}")
        except CheckMetaError:    # a check without complete metadata is a bug to fix, not to skip
            _loaded = False
            raise
        except Exception as exc:  # one broken module must not stop the others
            log.exception("check module %s failed to load", info.name)
            _LOAD_ERRORS.append({"check": f"{info.name}.*",
                                 "reason": f"check module failed to load: {type(exc).__name__}: {exc}"})


def all_checks() -> list[tuple[CheckMeta, Callable]]:
    _load()
    return [_CHECKS[k] for k in sorted(_CHECKS)]


def load_errors() -> list[dict[str, str]]:
    """The check modules that failed to load: {"check": "module.*", "reason": ...}."""
    _load()
    return list(_LOAD_ERRORS)


def check_meta(check_id: str) -> CheckMeta | None:
    _load()
    hit = _CHECKS.get(check_id)
    return hit[0] if hit else None


def has_site(ctx: AssessContext) -> bool:
    return declared_site(ctx.site) is not None


def run_checks(ctx: AssessContext, only: set[str] | None = None) -> tuple[list[Finding], list[dict]]:
    """Run every registered check (or those in `only`). Returns (findings, not_run) where not_run
    lists {"check", "reason"} for checks that could not decide. Never raises."""
    findings: list[Finding] = []
    not_run: list[dict] = list(_LOAD_ERRORS) if only is None else []
    for meta, fn in all_checks():
        if only is not None and meta.id not in only:
            continue
        if meta.needs_site and not has_site(ctx):
            not_run.append({"check": meta.id, "reason": NO_SITE_REASON})
            continue
        try:
            out = fn(ctx) or []
        except NotRun as nr:
            not_run.append({"check": meta.id, "reason": str(nr)})
            continue
        except Exception as exc:  # a bug in one check must not lose the others' findings
            log.exception("check %s failed", meta.id)
            not_run.append({"check": meta.id, "reason": f"internal error: {type(exc).__name__}: {exc}"})
            continue
        findings.extend(cap_fails(meta, [f for f in out if f.status in ("pass", "fail")]))
    return findings, not_run


def cap_fails(meta: CheckMeta, out: list[Finding], cap: int = MAX_FAILS_PER_CHECK) -> list[Finding]:
    """Keep a report readable when one check fails thousands of times (a scan, a flat network):
    the `cap` most severe and busiest fails stay, the rest become one summary fail."""
    fails = [f for f in out if f.status == "fail" and "summarised" not in f.extra]
    if len(fails) <= cap:
        return out              # the check already summed up the rest (or had few)
    fails.sort(key=lambda f: (-severity_rank(f.severity), -_events(f)))
    kept, rest = fails[:cap], fails[cap:]
    assets = sorted({a for f in rest for a in f.assets})
    summary = Finding.from_meta(
        meta, "fail", f"{len(rest)} more findings of this check not listed one by one "
                      f"({len(assets)} assets; the {cap} most severe are listed)",
        assets[:50], [e for f in rest[:20] for e in f.evidence[:1]],
        severity=max((f.severity for f in rest), key=severity_rank),
        summarised=len(rest), events=sum(_events(f) for f in rest), assets_total=len(assets))
    earlier = [f for f in out if f.status == "fail" and "summarised" in f.extra]
    return [f for f in out if f.status == "pass"] + kept + earlier + [summary]


def _events(f: Finding) -> int:
    n = f.extra.get("events")
    return n if isinstance(n, int) else len(f.evidence)
