"""Hostile text made safe for SIEM records: whatever a device sent becomes printable text on one
line (control characters, CR/LF, NUL, ANSI escapes, bidi overrides and lone surrogates from
undecodable bytes turn into visible escapes such as \\x1b), clipped to a bound. Each format adds
its own escaping on top (cef.py, rfc5424.py); JSON formats use json_line."""
from __future__ import annotations

import json
from typing import Any

from plantguard.util.sanitize import clip, visible

MAX_TEXT = 4096         # characters of any one text value: a device cannot make a record huge


def plain(v: Any) -> str:
    return clip(visible(v), MAX_TEXT)


def _clean(v: Any) -> Any:
    if isinstance(v, str):
        return plain(v)
    if isinstance(v, dict):
        return {plain(k): _clean(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def pruned(v: Any) -> Any:
    """Without None values and the objects and lists left empty by them."""
    if isinstance(v, dict):
        out = {k: pruned(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not None and x != {} and x != []}
    if isinstance(v, (list, tuple)):
        return [pruned(x) for x in v]
    return v


def json_line(doc: dict) -> str:
    """The document as one JSON line, every string in it made plain (None values left out)."""
    return json.dumps(_clean(doc), ensure_ascii=False, separators=(",", ":"))


def ascii_token(v: Any, limit: int) -> str:
    """Printable US-ASCII without spaces (RFC 5424 header fields: 33..126), '-' when empty."""
    s = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in visible(v))[:limit]
    return s or "-"
