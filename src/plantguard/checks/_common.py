"""What the practice checks share: an index of the context built once per assessment, evidence
collection with caps and totals, address classes, labels and secret masking."""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Iterable

from plantguard.checks.base import AssessContext, Evidence
from plantguard.inventory.asset import CONTROLLER_ROLES, OT_ROLES
from plantguard.net import address_class, is_public, is_unicast  # noqa: F401 (re-exported for checks)
from plantguard.protocols.registry import names_with_trait
from plantguard.site import declared_site

EVIDENCE_CAP = 20          # evidence items kept per finding; totals go to the finding's detail
MAX_FINDINGS = 500         # fails listed one by one per check; the rest are summed up in one
LIST_CAP = 50              # names listed in a finding's detail (peers, assets)

# Declared by each protocol (ProtocolSpec.traits) and read from the registry. DNP3 and OPC UA
# carry their own security options, judged per session by the checks that use these.
INDUSTRIAL_PROTOCOLS = names_with_trait("industrial")
UNAUTHENTICATED_CONTROL = names_with_trait("unauthenticated-control")


class Index:
    """Lookups over one assessment's input, built once and shared by all checks."""

    def __init__(self, ctx: AssessContext):
        from plantguard.site import inferred_site
        self.ctx = ctx
        self.result = ctx.result
        self.flows = list(getattr(ctx.result, "flows", None) or ())
        self.by_kind: dict[str, list] = defaultdict(list)
        for o in getattr(ctx.result, "observations", None) or ():
            self.by_kind[o.kind].append(o)
        self.assets = list(ctx.assets or ())
        self.asset_by_ip: dict[str, object] = {}
        self.asset_by_mac: dict[str, object] = {}
        for a in self.assets:
            for ip in ({a.ip} if a.ip else set()) | set(a.ips or ()):
                self.asset_by_ip.setdefault(ip, a)
            for mac in ({a.mac} if a.mac else set()) | set(a.macs or ()):
                self.asset_by_mac.setdefault(mac, a)
        self.site = declared_site(ctx.site)
        self.zones = ctx.site if ctx.site is not None else inferred_site()
        self._flows_by_pair: dict[tuple, list] | None = None
        self._servers_of: dict[str, set] | None = None

    def obs(self, kind: str) -> list:
        return self.by_kind.get(kind, [])

    def asset(self, ip: str | None, mac: str | None = None):
        if ip and ip in self.asset_by_ip:
            return self.asset_by_ip[ip]
        if mac and mac in self.asset_by_mac:
            return self.asset_by_mac[mac]
        return None

    def role(self, ip: str | None) -> str:
        a = self.asset(ip)
        return getattr(a, "role", None) or "unknown"

    def flows_by_pair(self) -> dict[tuple, list]:
        """(client, server) -> flows."""
        if self._flows_by_pair is None:
            d: dict[tuple, list] = defaultdict(list)
            for f in self.flows:
                d[(f.client, f.server)].append(f)
            self._flows_by_pair = d
        return self._flows_by_pair

    def server_apps(self) -> dict[str, set]:
        """server address -> application protocols it served."""
        if self._servers_of is None:
            d: dict[str, set] = defaultdict(set)
            for f in self.flows:
                if f.app:
                    d[f.server].add(f.app)
            self._servers_of = d
        return self._servers_of

    def is_ot(self, ip: str | None) -> bool:
        """An OT device: an OT role, an address in an OT zone, or a server of an industrial protocol."""
        if not ip:
            return False
        a = self.asset(ip)
        if a is not None and getattr(a, "role", None) in OT_ROLES:
            return True
        if self.site is not None:
            z = self.site.zone_of(ip)
            if z is not None and z.is_ot:
                return True
        return bool(self.server_apps().get(ip, set()) & INDUSTRIAL_PROTOCOLS)

    def is_controller(self, ip: str | None, proto: str | None = None) -> bool:
        a = self.asset(ip)
        if a is not None and getattr(a, "role", None) in CONTROLLER_ROLES:
            return True
        return proto in INDUSTRIAL_PROTOCOLS

    def label(self, ip: str | None, mac: str | None = None) -> str:
        """'10.10.1.10 (plc, CPU 315-2 PN/DP)' — the address with what we know of the device."""
        key = ip or mac or "?"
        a = self.asset(ip, mac)
        if a is None:
            return key
        parts = []
        if getattr(a, "role", "unknown") not in ("unknown", None):
            parts.append(a.role)
        ident = getattr(a, "identity", None) or {}
        what = ident.get("product") or ident.get("model") or ident.get("name")
        declared = getattr(a, "declared", None) or {}
        what = declared.get("name") or what
        if what:
            parts.append(str(what)[:60])
        return f"{key} ({', '.join(parts)})" if parts else key


def index(ctx: AssessContext) -> Index:
    """The Index of this context (built on first use, then cached on the context)."""
    idx = getattr(ctx, "_plantguard_index", None)
    if idx is None or idx.ctx is not ctx:
        idx = Index(ctx)
        try:
            ctx._plantguard_index = idx
        except AttributeError:  # a context that takes no attributes: rebuild each time
            pass
    return idx


class EvidenceLog:
    """Collects evidence up to a cap while counting every event (folded repeats included)."""
    __slots__ = ("items", "events", "first", "last")

    def __init__(self):
        self.items: list[Evidence] = []
        self.events = 0
        self.first: float | None = None
        self.last: float | None = None

    def add_obs(self, o, detail: str) -> None:
        n = getattr(o, "count", 1) or 1
        self.events += n
        self._times(o.ts, o.last_ts or o.ts)
        if len(self.items) < EVIDENCE_CAP:
            if n > 1:
                detail += f" (x{n}, last frame {o.last_frame})" if o.last_frame else f" (x{n})"
            self.items.append(Evidence.of(o, detail))

    def add_flow(self, f, detail: str, events: int | None = None) -> None:
        self.events += events if events is not None else 1
        self._times(f.first, f.last)
        if len(self.items) < EVIDENCE_CAP:
            self.items.append(Evidence(f.capture or None, f.first_frame or None, f.first, detail))

    def _times(self, a, b) -> None:
        if a is not None and (self.first is None or a < self.first):
            self.first = a
        if b is not None and (self.last is None or b > self.last):
            self.last = b


def flow_detail(f) -> str:
    app = f" ({f.app})" if f.app else ""
    vlan = f" vlan {f.vlan}" if f.vlan is not None else ""
    return f"{f.client} -> {f.server} {f.l4}/{f.port}{app}{vlan}, {f.packets} packets"


@lru_cache(maxsize=262144)
def mask(secret) -> str:
    """A secret fit to print: all but the first and last character hidden ('p****c')."""
    if secret is None:
        return "(not visible)"
    s = str(secret)
    if s == "":
        return "(empty)"
    if len(s) <= 2:
        return "*" * len(s)
    return s[0] + "*" * (len(s) - 2) + s[-1]


def skey(key) -> tuple:
    """A sort key for group keys that may mix None, numbers and text."""
    if isinstance(key, tuple):
        return tuple("" if k is None else str(k) for k in key)
    return ("" if key is None else str(key),)


def top(groups: dict, weight, cap: int = MAX_FINDINGS) -> tuple[list, list]:
    """(kept, rest) items of `groups`: all of them in key order when there are at most `cap`,
    else the `cap` heaviest (by `weight(group)`) in key order and the others apart."""
    if len(groups) <= cap:
        return sorted(groups.items(), key=lambda kv: skey(kv[0])), []
    ranked = sorted(groups.items(), key=lambda kv: -weight(kv[1]))
    return sorted(ranked[:cap], key=lambda kv: skey(kv[0])), ranked[cap:]


def rest_finding(meta, rest: list, assets_of, events_of, noun: str):
    """One fail summing up the groups `top` left out, so the totals stay right."""
    from plantguard.checks.base import Finding
    assets = sorted({a for _, g in rest for a in assets_of(_, g) if a})
    events = sum(events_of(g) for _, g in rest)
    return Finding.from_meta(meta, "fail", f"{len(rest)} more {noun} not listed one by one "
                                           f"({len(assets)} addresses, {events} events)",
                             assets[:LIST_CAP], [], summarised=len(rest), events=events,
                             assets_total=len(assets))


def text(value) -> str | None:
    """A data value as text when it is a scalar, else None (decoders' values are not trusted)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def capped(items: Iterable, cap: int = LIST_CAP) -> list:
    out = []
    for i, x in enumerate(items):
        if i >= cap:
            break
        out.append(x)
    return out


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"
