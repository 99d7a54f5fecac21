"""How exposed a device is, measured from the traffic and the site model: which zones its
clients sit in, whether any of them is on the internet or in an office/guest zone, and whether
the traffic crossed a zone boundary that a conduit allows or not.

Levels, most exposed first:
  internet     a client with a public address reached it (or the device itself is public)
  it           a client in an office or guest zone (kind it/guest) reached it
  cross-zone   a client in another zone (DMZ or another OT zone) reached it
  zone-local   only clients in its own zone reached it
  not-seen     no client was seen reaching it
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from plantguard.net import is_global as _is_public
from plantguard.site import declared_site

LEVELS = ("not-seen", "zone-local", "cross-zone", "it", "internet")
MAX_EXAMPLES = 5


@dataclass
class Exposure:
    level: str = "not-seen"
    zones: dict[str, str] = field(default_factory=dict)          # client zone -> kind
    crossings: list[dict] = field(default_factory=list)          # examples of zone crossings
    unallowed_crossings: int = 0                                  # crossings no conduit allows
    clients: int = 0

    @property
    def rank(self) -> int:
        return LEVELS.index(self.level)

    def describe(self) -> str:
        if self.level == "not-seen":
            return "no client was seen reaching it"
        if self.level == "zone-local":
            return "reached only from its own zone"
        ex = next((c for c in self.crossings if c["level"] == self.level), self.crossings[0] if self.crossings else None)
        where = {"internet": "from the internet", "it": "from an office/guest zone",
                 "cross-zone": "from another zone"}[self.level]
        text = where
        if ex:
            text += f" ({ex['client']} in {ex['zone']} -> {ex['l4']}/{ex['port']}" + \
                    (f" {ex['app']}" if ex.get("app") else "") + ")"
        if self.unallowed_crossings:
            text += f"; {self.unallowed_crossings} crossing(s) no conduit allows"
        elif self.crossings and self.level != "internet":
            text += "; through declared conduits"
        return text

    def as_dict(self) -> dict:
        return {"level": self.level, "summary": self.describe(), "client_zones": dict(self.zones),
                "crossings": self.crossings[:MAX_EXAMPLES], "unallowed_crossings": self.unallowed_crossings,
                "clients": self.clients}




class ExposureMap:
    """Exposure of every server address in one assessment (computed once from the flows)."""

    def __init__(self, flows, site=None):
        from plantguard.site import inferred_site
        self.site = site if site is not None else inferred_site()
        self.declared = declared_site(site) is not None
        self._by_server: dict[str, list] = defaultdict(list)
        for f in flows or ():
            if getattr(f, "server", None):
                self._by_server[f.server].append(f)
        self._cache: dict[str, Exposure] = {}

    def _zone(self, ip, vlan):
        try:
            return self.site.zone_of(ip, vlan)
        except Exception:  # noqa: BLE001 - an odd address has no zone
            return None

    def of_asset(self, asset) -> Exposure:
        ips = ({asset.ip} if getattr(asset, "ip", None) else set()) | set(getattr(asset, "ips", ()) or ())
        best = Exposure()
        for ip in sorted(ips):
            e = self.of_ip(ip)
            if e.rank > best.rank or (e.rank == best.rank and e.unallowed_crossings > best.unallowed_crossings):
                best = e
        if getattr(asset, "public", False) and best.rank < LEVELS.index("internet"):
            best = Exposure("internet", dict(best.zones), list(best.crossings), best.unallowed_crossings,
                            best.clients)
        return best

    def of_ip(self, ip: str) -> Exposure:
        if ip in self._cache:
            return self._cache[ip]
        exp = Exposure()
        clients = set()
        for f in self._by_server.get(ip, ()):
            clients.add(f.client)
            dz = self._zone(f.server, f.vlan)
            cz = self._zone(f.client, f.vlan)
            if _is_public(f.client):
                level, zname, kind = "internet", "internet", "internet"
            elif cz is None or dz is None:
                level, zname, kind = "zone-local", getattr(cz, "name", "?"), getattr(cz, "kind", "?")
                if cz is not None and dz is None or cz is None and dz is not None:
                    level = "cross-zone"
            elif cz.name == dz.name:
                level, zname, kind = "zone-local", cz.name, cz.kind
            else:
                zname, kind = cz.name, cz.kind
                level = "it" if cz.kind in ("it", "guest") else "internet" if cz.kind == "internet" else "cross-zone"
            exp.zones.setdefault(zname, kind)
            if level != "zone-local":
                allowed = None
                if self.declared and cz is not None and dz is not None:
                    allowed = self.site.conduit_allows(cz, dz, f.l4, f.port, f.app)
                    if not allowed:
                        exp.unallowed_crossings += 1
                if len(exp.crossings) < 50:
                    exp.crossings.append({"client": f.client, "zone": zname, "kind": kind, "l4": f.l4,
                                          "port": f.port, "app": f.app, "level": level,
                                          "allowed_by_conduit": allowed})
            if LEVELS.index(level) > exp.rank:
                exp.level = level
        exp.clients = len(clients)
        exp.crossings.sort(key=lambda c: -LEVELS.index(c["level"]))
        self._cache[ip] = exp
        return exp
