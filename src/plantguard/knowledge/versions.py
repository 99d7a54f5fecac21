"""Firmware versions and the version ranges advisories give for them.

OT vendors write versions their own way ("V3.2.16", "FRN 21.004", "V4.7 SP9 HF1", "R15B",
"Firmware__20.011") and CISA's CSAF files write ranges as `vers:all/<V3.2.17`, `<= 10.10`,
`>= V7.80 < V9.30`, `All versions < V6.14` or Siemens' `< V3.X.16` (X: the same minor as the
device's). No package-ecosystem library orders these, so this module does, tolerantly: a range
it cannot read says "unknown" (None) rather than guessing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

MAX_VERSION_LEN = 80        # longer strings are not versions (cap regex work on garbage)

_PRERELEASE = {"alpha", "a", "beta", "b", "rc", "pre", "preview", "dev", "snapshot"}
_PREFIX = re.compile(r"^(?:firmware|fw|frn|version|ver|rev|revision|release|v)[\s_.:-]*", re.I)
_TOKEN = re.compile(r"\d+|[a-z]+")

# token ranks: a pre-release word sorts below the end of a version, a qualifier (SP, HF, build,
# a series letter) above it, a number above both.
_PRE, _END, _QUAL, _NUM = -1, 0, 1, 2
_WILDCARD = "x"


def _normalise(text: str) -> str:
    s = text.strip().lower().replace("_", ".")
    s = _PREFIX.sub("", s, count=1)
    s = re.sub(r"\bservice pack\b", "sp", s)
    s = re.sub(r"\bhot ?fix\b", "hf", s)
    s = re.sub(r"\bupd(?:ate)?\b", "update", s)
    return s.strip()


@dataclass(frozen=True, order=False)
class Version:
    raw: str
    key: tuple

    def __str__(self) -> str:
        return self.raw

    def _cmp(self, other: "Version") -> int:
        return compare_keys(self.key, other.key)

    def __lt__(self, other):
        return self._cmp(other) < 0

    def __le__(self, other):
        return self._cmp(other) <= 0

    def __gt__(self, other):
        return self._cmp(other) > 0

    def __ge__(self, other):
        return self._cmp(other) >= 0

    def __eq__(self, other):
        return isinstance(other, Version) and self._cmp(other) == 0

    def __hash__(self):
        return hash(self.key)

    @property
    def has_wildcard(self) -> bool:
        return any(t == (_QUAL, _WILDCARD) for t in self.key)


@lru_cache(maxsize=8192)
def parse_version(text) -> Version | None:
    """A comparable Version, or None when the text holds no version (no digit in it)."""
    if text is None:
        return None
    text = str(text)
    if not text.strip() or len(text) > MAX_VERSION_LEN:
        return None
    norm = _normalise(text)
    if not re.search(r"\d", norm):
        return None
    key = []
    for tok in _TOKEN.findall(norm)[:32]:
        if tok.isdigit():
            key.append((_NUM, int(tok)))
        elif tok in _PRERELEASE and key:
            key.append((_PRE, tok))
        else:
            key.append((_QUAL, tok))
    return Version(text.strip(), tuple(key))


def compare_keys(a: tuple, b: tuple) -> int:
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else (_END, 0)
        y = b[i] if i < len(b) else (_END, 0)
        if x == y:
            continue
        if x[0] != y[0]:
            return -1 if x[0] < y[0] else 1
        return -1 if x[1] < y[1] else 1
    return 0


def compare(a: str, b: str) -> int | None:
    va, vb = parse_version(a), parse_version(b)
    if va is None or vb is None:
        return None
    return compare_keys(va.key, vb.key)


def _bind_wildcards(bound: Version, v: Version) -> Version:
    """`V3.X.16` against V3.2.6 reads as V3.2.16: X stands for the device's own component."""
    if not bound.has_wildcard:
        return bound
    key = list(bound.key)
    for i, t in enumerate(key):
        if t == (_QUAL, _WILDCARD):
            key[i] = v.key[i] if i < len(v.key) else (_NUM, 0)
    return Version(bound.raw, tuple(key))


_OPS = ("<=", ">=", "!=", "==", "<", ">", "=")
_CONSTRAINT = re.compile(
    r"(<=|>=|!=|==|<|>|=)\s*((?:v|fw|frn|version\s)?\s*\d[\w.\-]*(?:\s*\(?\s*(?:sp|hf|update|upd|build|patch|r)\s*\d+[\w.]*\)?)*)",
    re.I)
_DASH_RANGE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)\s*-\s*v?(\d+(?:\.\d+)*)\s*$", re.I)
_MODEL_CODE = re.compile(r"^\d{3,5}-[A-Z0-9]{5,}$", re.I)
_ALL = re.compile(r"^\s*(?:vers:[a-z]+/)?\*\s*$|^\s*all(?:\s+versions?)?\s*$|^\s*all\s+versions?\b.*$", re.I)


@dataclass(frozen=True)
class Constraint:
    op: str
    version: Version

    def ok(self, v: Version) -> bool:
        bound = _bind_wildcards(self.version, v)
        key = v.key
        if self.op in ("<=", ">") and len(bound.key) < len(key) and \
                all(t[0] == _NUM for t in bound.key):
            # "Versions 33 and prior" (<= 33) includes 33.011: compare on the bound's precision
            key = key[:len(bound.key)]
        c = compare_keys(key, bound.key)
        return {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0,
                "=": c == 0, "==": c == 0, "!=": c != 0}[self.op]

    def __str__(self) -> str:
        return f"{self.op}{self.version.raw}"


@dataclass(frozen=True)
class VersionRange:
    """A parsed range. kind: "all" (every version), "range" (constraints), "exact" (one
    version) or "unknown" (the text could not be read as versions)."""
    raw: str
    kind: str
    constraints: tuple[Constraint, ...] = field(default_factory=tuple)

    def contains(self, version) -> bool | None:
        """True / False, or None when either side cannot be read."""
        if self.kind == "all":
            return True
        if self.kind == "unknown":
            return None
        v = version if isinstance(version, Version) else parse_version(version)
        if v is None:
            return None
        equals = [c for c in self.constraints if c.op in ("=", "==")]
        if equals and any(c.ok(v) for c in equals):
            return True
        bounds = [c for c in self.constraints if c.op not in ("=", "==")]
        if not bounds:
            return False
        return all(c.ok(v) for c in bounds)

    @property
    def fixed_in(self) -> str | None:
        """The first version outside the range from above (`<V3.2.17` -> "V3.2.17")."""
        for c in self.constraints:
            if c.op == "<":
                return c.version.raw
        return None

    @property
    def last_affected(self) -> str | None:
        for c in self.constraints:
            if c.op == "<=":
                return c.version.raw
        return None

    def describe(self) -> str:
        if self.kind == "all":
            return "all versions"
        if self.kind == "unknown":
            return f"'{self.raw}' (not a version range plantguard can read)"
        return " and ".join(str(c) for c in self.constraints) if self.kind == "range" else \
            f"={self.constraints[0].version.raw}"


@lru_cache(maxsize=16384)
def parse_range(text: str | None, exact: bool = False) -> VersionRange:
    """Read a CSAF product_version_range (or, with exact=True, a product_version)."""
    raw = (text or "").strip()
    if not raw or len(raw) > 200:
        return VersionRange(raw, "unknown")
    body = re.sub(r"^vers:[a-z0-9]+/", "", raw, flags=re.I).strip()
    if _ALL.match(body) and not _CONSTRAINT.search(body):
        return VersionRange(raw, "all")
    m = _DASH_RANGE.match(body)
    if m and m.group(1).count(".") == m.group(2).count(".") and \
            int(m.group(1).split(".")[0]) <= int(m.group(2).split(".")[0]) < 1000:
        # "20-33": versions 20 through 33 (not "7.00-20121012", a version with a build date)
        return VersionRange(raw, "range", (Constraint(">=", parse_version(m.group(1))),
                                           Constraint("<=", parse_version(m.group(2)))))
    if exact and not re.match(r"^\s*[<>=!]", body):
        body = re.sub(r"\([^)]*\)", " ", body).strip()      # "1.3 (formerly Power Manager)"
        if _MODEL_CODE.match(body):                           # a catalogue number, not a version
            return VersionRange(raw, "unknown")
        v = parse_version(body)
        if v is None or not re.match(r"^\s*(?:v|fw|frn|firmware[_\s]*|version\s*)?\s*\d", body, re.I):
            return VersionRange(raw, "unknown")
        return VersionRange(raw, "exact", (Constraint("=", v),))
    found = []
    for op, ver in _CONSTRAINT.findall(body.replace("|", " ")):
        v = parse_version(ver.strip().rstrip(".-"))
        if v is not None:
            found.append(Constraint(op, v))
    if not found:
        return VersionRange(raw, "unknown")
    return VersionRange(raw, "range", tuple(found))


def resolve_wildcards(bound: str | None, firmware: str | None) -> str | None:
    """"V3.X.16" for a device at V3.2.6 reads "V3.2.16" (Siemens' X: the device's own component)."""
    if not bound or not firmware or not re.search(r"(?:^|[.])x(?:[.]|$)", bound, re.I):
        return bound
    nums = re.findall(r"\d+", _normalise(firmware))
    parts = bound.split(".")
    for i, part in enumerate(parts):
        if part.strip().lower() == "x" and i < len(nums):
            parts[i] = nums[i]
    return ".".join(parts)
