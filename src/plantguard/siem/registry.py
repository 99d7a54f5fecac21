"""Which SIEM formats and sink kinds exist: each is declared once in its module (FORMAT, SINK) and
collected here; the URL schemes, the formats each sink takes and every error naming them are
derived from those declarations. `open_sink(url)` is the one way to get a Sink."""
from __future__ import annotations

import functools
import importlib

from plantguard.errors import InputError
from plantguard.siem.spec import Format, Sink, SinkKind, SinkURL

FORMAT_MODULES = ("plantguard.siem.ecs", "plantguard.siem.ocsf", "plantguard.siem.cef", "plantguard.siem.rfc5424",
                  "plantguard.siem.native")
SINK_MODULES = ("plantguard.siem.sink_file", "plantguard.siem.sink_syslog", "plantguard.siem.sink_syslog_udp",
                "plantguard.siem.sink_hec", "plantguard.siem.sink_elastic", "plantguard.siem.sink_central")


@functools.cache
def formats() -> dict[str, Format]:
    out: dict[str, Format] = {}
    for name in FORMAT_MODULES:
        f = importlib.import_module(name).FORMAT
        if f.name in out:
            raise ValueError(f"{name}: format {f.name!r} is declared twice")
        out[f.name] = f
    return out


@functools.cache
def sink_kinds() -> tuple[SinkKind, ...]:
    return tuple(importlib.import_module(name).SINK for name in SINK_MODULES)


@functools.cache
def schemes() -> dict[str, SinkKind]:
    out: dict[str, SinkKind] = {}
    known = formats()
    for kind in sink_kinds():
        bad = [f for f in kind.formats if f not in known]
        if bad:
            raise ValueError(f"sink {kind.name}: unknown format {bad[0]!r}")
        for scheme in kind.schemes:
            if scheme in out:
                raise ValueError(f"sink {kind.name}: scheme {scheme!r} is already {out[scheme].name}'s")
            out[scheme] = kind
    return out


def catalogue() -> list[str]:
    """One line per sink scheme and per format, for help texts."""
    kinds = [f"{s}://  {k.description} (formats: {', '.join(k.formats)})" for s, k in schemes().items()]
    return kinds + [f"  {f.name} {f.media_type}: {f.description}" for f in formats().values()]


def open_sink(url: str) -> Sink:
    """The sink a URL names. A bad URL, an unknown scheme, format or option is an InputError
    with one line. Nothing is connected here: an unreachable
    destination shows when the outbox delivers (and it keeps the events and retries)."""
    u = SinkURL.parse(url)
    kind = schemes().get(u.scheme)
    if kind is None:
        raise InputError(f"unknown sink scheme {u.scheme!r} in {u.safe()} (known: {', '.join(schemes())})")
    unknown = sorted(set(u.options) - set(kind.options))
    if unknown:
        raise InputError(f"{u.safe()}: unknown option {unknown[0]!r} (known: {', '.join(kind.options)})")
    fmt = u.options.get("format") or kind.formats[0]
    if fmt not in kind.formats:
        raise InputError(f"{u.safe()}: format {fmt!r} is not one of {', '.join(kind.formats)}")
    return kind.open(u, formats()[fmt])
