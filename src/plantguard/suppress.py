"""Accepted risks: the suppressions file (`assess --suppress FILE`) and the one decision which
failing findings it accepts.

A suppressions file is YAML or JSON: a list of entries (or the same list under `suppressions:`);
a site file may hold the same list under its `suppressions:` key (site/load.py reads it here).
Each entry matches findings by `check` (an id, or a glob such as `crypto.*`), optionally by
`assets` (addresses, networks or asset names: any of the finding's assets) and by `finding`
(the finding's id, or a piece of its title); it must say why (`reason`), who accepted the risk
(`owner`) and until when (`expires`, a date: accepted risks expire); `ticket` is optional.

    - check: crypto.*
      assets: [10.0.0.0/24, hmi-1]
      reason: vendor HMI cannot do TLS; replaced in the 2027 refit
      owner: j.smith
      expires: 2027-06-30
      ticket: CHG-1234

A suppression applies through its expiry date. An expired one applies to nothing: its findings
fail again and a message says so; one that matches no failing finding is reported as unused.
A bad file is one SuppressionError line, 'FILE:LINE: entry N: field: problem', never a traceback."""
from __future__ import annotations

import fnmatch
import ipaddress
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plantguard.errors import InputError

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 10_000


class SuppressionError(InputError):
    """A suppressions file that cannot be used, as one line: 'FILE:LINE: entry N: field: problem'."""


class Entry(BaseModel):
    """One entry of a suppressions file, as written."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    check: str = Field(min_length=1, max_length=200, description="check id, or a glob (crypto.*)")
    assets: list[str] = Field(default_factory=list, max_length=1000,
                              description="addresses, networks (CIDR) or asset names; any of the finding's")
    finding: str | None = Field(default=None, min_length=1, max_length=500,
                                description="the finding's id, or a piece of its title (any case)")
    reason: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=200)
    expires: date = Field(description="the last day it applies (YYYY-MM-DD)")
    ticket: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("assets", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("assets")
    @classmethod
    def _not_empty(cls, v: list[str]) -> list[str]:
        if any(not a.strip() for a in v):
            raise ValueError("an asset must not be empty")
        return [a.strip() for a in v]

    @field_validator("expires", mode="before")
    @classmethod
    def _a_date(cls, v: Any) -> date:
        # YAML reads 2027-06-30 as a date; JSON gives the text. Numbers and times are refused:
        # pydantic would take 0 as 1970-01-01
        if isinstance(v, date) and not isinstance(v, datetime):
            return v
        if isinstance(v, str):
            try:
                return date.fromisoformat(v.strip())
            except ValueError:
                pass
        raise ValueError(f"{str(v)[:40]!r} is not a date (YYYY-MM-DD)")


@dataclass(frozen=True)
class Suppression:
    """An entry as used: where it was written, and what it matches."""
    file: str
    entry: int            # 1-based, in its file
    line: int
    rule: Entry
    _nets: tuple = field(default=(), compare=False)
    _plain: frozenset = field(default=frozenset(), compare=False)

    @classmethod
    def of(cls, file: str, entry: int, line: int, rule: Entry) -> Suppression:
        nets = tuple(n for n in map(_network, rule.assets) if n is not None)
        plain = frozenset(_plain(a) for a in rule.assets if _network(a) is None)
        return cls(file, entry, line, rule, nets, plain)

    def mark(self) -> dict:
        """What a suppressed finding carries (contract: Finding.suppressed)."""
        r = self.rule
        return {"reason": r.reason, "owner": r.owner, "expires": r.expires.isoformat(), "ticket": r.ticket,
                "file": self.file, "entry": self.entry}

    def matches(self, f: dict, names: dict[str, set[str]]) -> bool:
        if not fnmatch.fnmatchcase(str(f.get("check") or "").lower(), self.rule.check.lower()):
            return False
        if self.rule.assets and not any(self._covers(a, names) for a in f.get("assets") or ()):
            return False
        want = self.rule.finding
        if want is not None:
            return want == f.get("id") or want.lower() in str(f.get("title") or "").lower()
        return True

    def _covers(self, asset: str, names: dict[str, set[str]]) -> bool:
        a = _plain(str(asset))
        if a in self._plain or self._plain & names.get(a, set()):
            return True
        addr = _address(a)
        return addr is not None and any(addr.version == n.version and addr in n for n in self._nets)


@dataclass
class Outcome:
    """Which findings the suppressions accepted (marks, one per finding, None when not) and
    what became of each suppression (uses, for the contract; messages, for the report/stderr)."""
    marks: list[dict | None]
    uses: list[dict]
    messages: list[str]

    @property
    def count(self) -> int:
        return sum(1 for m in self.marks if m is not None)


def apply(findings: list[dict], rules: Iterable[Suppression], assets: Iterable[Any] = (),
          today: date | None = None) -> Outcome:
    """Match the failing findings (dicts, as the contract has them) against the suppressions in
    force today; the first that matches accepts a finding. `assets` (dicts or inventory assets)
    give the names an entry may use for a finding's address."""
    rules = list(rules)
    today = today or datetime.now(UTC).date()
    names = asset_names(assets)
    marks: list[dict | None] = []
    hits = {id(r): 0 for r in rules}
    for f in findings:
        matched = [r for r in rules if r.matches(f, names)] if f.get("status") == "fail" else []
        for r in matched:               # an expired one is counted (what it would have accepted) ...
            hits[id(r)] += 1
        # ... but accepts nothing
        marks.append(next((r.mark() for r in matched if r.rule.expires >= today), None))
    uses = []
    for r in rules:
        n = hits[id(r)]
        status = "expired" if r.rule.expires < today else "unused" if n == 0 else "active"
        uses.append({**r.mark(), "line": r.line, "check": r.rule.check, "status": status, "matched": n})
    return Outcome(marks, uses, [message(u) for u in uses if u["status"] != "active"])


def message(use: dict) -> str:
    """What to say of a suppression that expired or matched nothing (a contract suppressions entry)."""
    head = f"{use.get('file')}: suppression {use.get('entry')} for {use.get('check')}"
    n = use.get("matched") or 0
    if use.get("status") == "expired":
        return (f"{head} expired on {use.get('expires')} ({use.get('owner')})"
                + (f": {n} finding(s) fail again" if n else ""))
    if use.get("status") == "unused":
        return f"{head} matches no failing finding (unused)"
    return f"{head} accepts {n} finding(s)"


def mark_contract(contract: dict, rules: Iterable[Suppression], today: date | None = None) -> list[str]:
    """Mark a saved contract's failing findings with the suppressions in force (export: accepted
    risks are not sent); the messages on the ones that expired or matched nothing."""
    findings = [f for f in contract.get("findings") or [] if isinstance(f, dict)]
    outcome = apply(findings, rules, contract.get("assets") or [], today)
    for f, m in zip(findings, outcome.marks):
        if f.get("status") == "fail":
            f["suppressed"] = m
    return outcome.messages


def asset_names(assets: Iterable[Any]) -> dict[str, set[str]]:
    """address (lower case) -> the names (lower case) the site file, the device or DNS gave it."""
    out: dict[str, set[str]] = {}
    for a in assets:
        get = a.get if isinstance(a, dict) else (lambda k, a=a: getattr(a, k, None))
        declared, ident = get("declared") or {}, get("identity") or {}
        names = {str(n).strip().lower() for n in [declared.get("name"), ident.get("name"), *(get("hostnames") or ())]
                 if isinstance(n, str) and n.strip()}
        if names:
            for addr in [get("ip"), get("mac"), *(get("ips") or ()), *(get("macs") or ())]:
                if addr:
                    out.setdefault(str(addr).lower(), set()).update(names)
    return out


# -- the file -------------------------------------------------------------------------------------

def load_suppressions(paths: Iterable[str | Path]) -> list[Suppression]:
    return [s for p in paths for s in load_file(p)]


def load_file(path: str | Path) -> list[Suppression]:
    return parse(_read(Path(path)), str(path))


def parse(text: str, filename: str) -> list[Suppression]:
    """The entries of suppressions-file text (YAML or JSON); errors name `filename`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = (getattr(exc, "problem", None) or "unreadable").strip()
        raise SuppressionError(f"{filename}:{line}: not YAML or JSON: {problem}") from None
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        inner = [v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "suppressions"]
        if not inner or len(root.value) != 1:
            raise SuppressionError(f"{filename}:{root.start_mark.line + 1}: expected a list of suppressions "
                                   "(or one key, suppressions:, holding it)")
        root = inner[0]
    return entries(root, filename)


def entries(root, filename: str, label: str = "entry") -> list[Suppression]:
    """The suppressions of a composed YAML list (a file's, or a site file's `suppressions:`);
    errors read 'FILE:LINE: LABEL N: field: problem'."""
    if not isinstance(root, yaml.SequenceNode):
        raise SuppressionError(f"{filename}:{root.start_mark.line + 1}: expected a list of suppressions")
    if len(root.value) > MAX_ENTRIES:
        raise SuppressionError(f"{filename}:1: more than {MAX_ENTRIES:,} suppressions")
    return [_entry(node, i, filename, label) for i, node in enumerate(root.value, 1)]


def _entry(node, n: int, filename: str, label: str) -> Suppression:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise SuppressionError(f"{filename}:{line}: {label} {n}: expected a mapping (check, reason, owner, "
                               "expires, ...)")
    loader = yaml.SafeLoader("")
    values, lines = {}, {}
    for k, v in node.value:
        key = str(k.value).strip() if isinstance(k, yaml.ScalarNode) else ""
        if key in values:
            raise SuppressionError(f"{filename}:{k.start_mark.line + 1}: {label} {n}: {key[:40]}: duplicate key")
        try:
            values[key] = loader.construct_object(v, deep=True)
        except yaml.YAMLError:
            raise SuppressionError(f"{filename}:{v.start_mark.line + 1}: {label} {n}: {key[:40]}: "
                                   "unreadable value") from None
        lines[key] = k.start_mark.line + 1
    try:
        rule = Entry.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        raise SuppressionError(f"{filename}:{lines.get(key, line)}: {label} {n}: {key[:40] or '?'}: "
                               f"{_problem(err)}") from None
    return Suppression.of(filename, n, line, rule)


def _problem(err: dict) -> str:
    kind = err.get("type")
    if kind == "missing":
        return "missing" + (" (accepted risks expire: give the last day, YYYY-MM-DD)"
                            if err["loc"] and err["loc"][0] == "expires" else "")
    if kind == "extra_forbidden":
        return f"unknown key (known: {', '.join(Entry.model_fields)})"
    msg = str(err.get("msg") or "invalid")
    return msg.removeprefix("Value error, ")


def _read(p: Path) -> str:
    """At most MAX_FILE_BYTES of a regular file (a FIFO or a device is refused before it blocks)."""
    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):
            raise SuppressionError(f"{p}: cannot read suppressions file (not a regular file)")
        with open(p, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SuppressionError(f"{p}: cannot read suppressions file ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SuppressionError(f"{p}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SuppressionError(f"{p}:{line}: not UTF-8 text") from None


def _network(text: str):
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _plain(text: str) -> str:
    """An address or name as compared: an IP address in its normal form, anything else in lower case."""
    t = text.strip().lower()
    addr = _address(t)
    return str(addr) if addr is not None else t


def _address(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
