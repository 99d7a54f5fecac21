"""Text rules shared by the index and the matching: normalisation, the tokens that can name a
model, order-number patterns with placeholders, and the "vendor:product" key of a CPE."""
from __future__ import annotations

import fnmatch
import re

_SIEMENS_ORDER = re.compile(r"\b6[a-z]{2}\d\s?\d{3}-\s?\d[a-z]{2}\d{2}-\s?\d[a-z]{2}\d\b", re.I)
_SERIES = re.compile(r"\bser(?:ies)?\.?\s+([a-z])\b", re.I)
_WORD = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)*")


def _norm(text: str | None) -> str:
    s = str(text or "").lower().replace("\u00a0", " ").replace("–", "-").replace("_", " ")
    return re.sub(r"\s+", " ", s).strip()


def _tokens(text: str) -> set[str]:
    """Tokens with a digit in them, and their part before a "/" ("1756-enbt/a" -> also "1756-enbt")."""
    out = set()
    for w in _WORD.findall(_norm(text)):
        if len(w) >= 3 and any(c.isdigit() for c in w):
            out.add(w)
            if "/" in w:
                out.add(w.split("/")[0])
    return out


def _is_catalogue(tok: str) -> bool:
    """A catalogue or order code: digits and letters joined by a hyphen ("1756-enbt")."""
    return len(tok) >= 6 and "-" in tok and any(c.isalpha() for c in tok) and any(c.isdigit() for c in tok)


def _phrase_in(phrase: str, text: str) -> bool:
    if not phrase or not text:
        return False
    return re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])", text) is not None


def _phrase_ok(phrase: str) -> bool:
    """A product phrase specific enough to look for inside advisory product names."""
    return len(phrase) >= 5 and (any(c.isdigit() for c in phrase) or len(phrase.split()) >= 2)


def _is_wild(model: str) -> bool:
    """Order numbers with placeholders ("6ES7 315-2EH14-0AB0" is exact; "6AV21xx-*" is not)."""
    return "*" in model or "xx" in model


def _wild_match(order: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(order, pattern.replace("xx", "??"))


def cpe_key(cpe: str | None) -> str | None:
    """"vendor:product" of a CPE 2.3 string (the part that names the product)."""
    if not cpe or not str(cpe).startswith("cpe:2.3:"):
        return None
    from plantguard.knowledge.nvd import parse_cpe23
    c = parse_cpe23(str(cpe))
    return f"{c.vendor.lower()}:{c.product.lower()}" if c and c.vendor not in ("*", "-") else None
