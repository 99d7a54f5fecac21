"""Device-controlled text, made safe for each output ("sink"). Everything a device sends - names,
banners, product strings, SNMP sysName, HTTP headers - and everything read from a file a user was
handed (capture, site file, SBOM, advisory) is hostile text: it may carry terminal escapes, Rich
markup, spreadsheet formulas, HTML or Markdown. Each renderer passes such text through the one
function for its sink, once, at the point where it is written:

  terminal(s)        plain text for a console: control characters (C0, DEL, C1), ANSI/OSC escapes,
                     bidi and other invisible format characters become visible escapes (\\x1b,
                     \\u202e); print it as rich.text.Text or with markup=False (terminal_text does)
  csv_cell(s)        a spreadsheet cell: controls made visible, a cell starting with = + - @ tab or
                     CR gets a leading ' (OWASP CSV injection); the csv module does the quoting
  markdown(s)        a Markdown inline or table cell: one line, Markdown punctuation backslash-
                     escaped, < > & as entities, so no markup, link, HTML or table break gets in
  html_text(s)       text for an HTML or SVG text node or attribute, *before* escaping: controls
                     made visible (the template engine's autoescape, or html(s), escapes < > & ")
  sarif_message(s)   the text of a SARIF message: controls made visible and [ ] escaped, so a
                     device string cannot form a SARIF embedded link (SARIF 2.1.0 §3.11.6)

JSON (the JSON reports, SARIF outside message texts) needs nothing here: the encoder escapes what
JSON must, and the document keeps the string exactly as the device sent it.
"""
from __future__ import annotations

import unicodedata
from typing import Any

ELLIPSIS = "…"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MD_SPECIAL = frozenset("\\`*_[]|#<>&~")
MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def as_text(v: Any) -> str:
    """Any value as text: None as empty, bytes decoded (invalid UTF-8 replaced)."""
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    return v if isinstance(v, str) else str(v)


def _escape_char(ch: str) -> str:
    o = ord(ch)
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def visible(v: Any, keep: str = "") -> str:
    """`v` with every character a terminal or viewer would not show as itself replaced by a
    visible escape: C0 controls (ESC, NUL, BEL, BS, CR, LF ...), DEL, C1 controls (CSI 0x9b, OSC
    0x9d ...), format characters (bidi overrides, zero-width joiners), line and paragraph
    separators, surrogates, private-use and unassigned code points. Other spaces (no-break,
    ideographic) become a plain space. Characters in `keep` stay as they are."""
    s = as_text(v)
    if s.isprintable():             # the common case, at C speed
        return s
    out = []
    for ch in s:
        if ch.isprintable() or ch in keep:
            out.append(ch)
        elif unicodedata.category(ch) == "Zs":
            out.append(" ")
        else:
            out.append(_escape_char(ch))
    return "".join(out)


def clip(s: str, limit: int | None) -> str:
    """At most `limit` characters, the cut marked with an ellipsis."""
    if limit is None or len(s) <= limit:
        return s
    return s[:max(limit - 1, 0)] + ELLIPSIS


# --- terminal -------------------------------------------------------------------------------

def terminal(v: Any, limit: int | None = None) -> str:
    """Plain text safe to write to a terminal: nothing in it is a control character or escape
    sequence. Not markup-safe by itself: print it with markup=False, or as terminal_text()."""
    return clip(visible(v), limit)


def terminal_text(v: Any, limit: int | None = None, style: str = ""):
    """A rich.text.Text of terminal(v): Rich shows it literally (no markup, no emoji codes)."""
    from rich.text import Text
    return Text(terminal(v, limit), style=style, end="")


# --- CSV ------------------------------------------------------------------------------------

def csv_cell(v: Any) -> str:
    """A CSV cell a spreadsheet shows as text: controls made visible (line breaks and tabs stay,
    the csv module quotes them), and a leading ' when the cell starts with = + - @ tab or CR."""
    s = visible(v, keep="\n\t")
    return "'" + s if s.startswith(FORMULA_START) else s


def csv_row(values) -> list[str]:
    return [csv_cell(v) for v in values]


# --- Markdown -------------------------------------------------------------------------------

def markdown(v: Any) -> str:
    """Text Markdown shows literally, on one line: whitespace runs (line breaks included) become
    one space, Markdown punctuation is backslash-escaped and < > & become entities, so no
    emphasis, code, link, image, HTML or table cell break can sneak in."""
    s = visible(" ".join(as_text(v).split()))
    if not any(ch in MD_SPECIAL for ch in s):
        return s
    return "".join(MD_ENTITIES.get(ch) or ("\\" + ch if ch in MD_SPECIAL else ch) for ch in s)


# --- HTML -----------------------------------------------------------------------------------

def html_text(v: Any) -> str:
    """Text for HTML (and SVG, which is XML: no C0 controls allowed) before escaping: controls
    made visible; line breaks and tabs stay. Escaping < > & " ' is the template engine's
    autoescape (report.html) or html()."""
    return visible(v, keep="\n\t")


def html(v: Any):
    """html_text(v), escaped: a markupsafe.Markup ready to place in a document."""
    from markupsafe import escape
    return escape(html_text(v))


def jinja_finalize(v: Any) -> Any:
    """For jinja2.Environment(finalize=...): every {{ value }} that is text goes through
    html_text before autoescaping; Markup (the report's own SVG and CSS) and numbers pass."""
    if isinstance(v, str) and not hasattr(v, "__html__"):
        return html_text(v)
    return v


# --- SARIF ----------------------------------------------------------------------------------

def sarif_message(v: Any) -> str:
    """The `text` of a SARIF message: controls made visible and square brackets escaped with a
    backslash, so a device string cannot form an embedded link ([text](uri), SARIF 2.1.0
    §3.11.6) in a SARIF viewer."""
    s = visible(v, keep="\n\t")
    if "[" not in s and "]" not in s:
        return s
    return s.replace("[", "\\[").replace("]", "\\]")
