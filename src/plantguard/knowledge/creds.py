"""Factory-default credentials: the list shipped with the package (data/default_credentials.csv,
built by tools/build_data/default_credentials.py; provenance in its header) and matching of the
logins seen on the wire against it."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

DATA_FILE = "default_credentials.csv"


@dataclass(frozen=True)
class DefaultCredential:
    vendor: str
    product: str
    user: str              # "" = password-only login (or an SNMP community)
    password: str          # "" = empty password
    protocols: tuple[str, ...]   # empty = not stated
    source: str

    @property
    def device(self) -> str:
        if self.product.lower().startswith(self.vendor.lower()):
            return self.product
        return f"{self.vendor} {self.product}".strip()


def _read_text() -> str:
    return resources.files("plantguard.data").joinpath(DATA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def default_credentials() -> tuple[DefaultCredential, ...]:
    text = _read_text()
    rows = csv.reader(io.StringIO("\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))))
    header = next(rows, None)
    if header != ["vendor", "product", "user", "password", "protocols", "source"]:
        raise ValueError(f"{DATA_FILE}: unexpected header {header}")
    return tuple(DefaultCredential(r[0], r[1], r[2], r[3], tuple(r[4].split()), r[5])
                 for r in rows if len(r) == 6)


@lru_cache(maxsize=1)
def provenance() -> tuple[str, ...]:
    """The data file's header comment lines (sources, licences, checksums)."""
    return tuple(ln[2:] for ln in _read_text().splitlines() if ln.startswith("# "))


@lru_cache(maxsize=1)
def _by_password() -> dict[str, list[DefaultCredential]]:
    idx: dict[str, list[DefaultCredential]] = {}
    for c in default_credentials():
        idx.setdefault(c.password, []).append(c)
    return idx


def _rank(c: DefaultCredential, proto: str | None) -> tuple:
    # entries that name this protocol first, then ICS lists, then the rest
    return (0 if proto and proto in c.protocols else 1 if not c.protocols else 2,
            0 if c.source != "defaultcreds" else 1, c.vendor.lower())


def match_login(user: str | None, password: str | None, proto: str | None = None) -> list[DefaultCredential]:
    """Known default pairs equal to this login: same password, and the same user name (compared
    without case) — or no user name at all on both sides. Best matches first."""
    if password is None:
        return []
    return list(_match_login(user, password, proto))


@lru_cache(maxsize=4096)
def _match_login(user: str | None, password: str, proto: str | None) -> tuple[DefaultCredential, ...]:
    cands = _by_password().get(password, ())
    u = (user or "").lower()
    hits = [c for c in cands if c.user.lower() == u
            and not (c.protocols == ("snmp",) and proto not in (None, "snmp"))]   # communities are not logins
    return tuple(sorted(hits, key=lambda c: _rank(c, proto)))


def match_community(community: str | None) -> list[DefaultCredential]:
    """Known default SNMP community strings equal to this one (case-sensitive, as agents compare)."""
    if community is None:
        return []
    hits = [c for c in _by_password().get(community, ()) if c.user == "" and "snmp" in c.protocols]
    return sorted(hits, key=lambda c: _rank(c, "snmp"))


def describe(matches, limit: int = 3) -> str:
    """'Moxa; Siemens Scalance X-200 (+4 more)' — where a default pair is documented."""
    return _describe(tuple(matches), limit)


@lru_cache(maxsize=1024)
def _describe(matches: tuple, limit: int) -> str:
    seen: list[str] = []
    for c in matches:
        d = c.device[:60]
        if d not in seen:
            seen.append(d)
    text = "; ".join(seen[:limit])
    if len(seen) > limit:
        text += f" (+{len(seen) - limit} more)"
    return text
