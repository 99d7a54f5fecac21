"""The site model (the site-file contract, docs/architecture.md): zones, conduits, egress rules, authorised engineering
stations, the declared inventory, maintenance windows and attestations, with the lookups the
checks ask of it (which zone an address is in, whether a conduit allows a flow, ...).
Built by site/load.py from a site file, or by `inferred_site()` when there is none."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from plantguard.site.vocabulary import DAYS, IT_ZONE_KINDS, OT_ZONE_KINDS, PORT_ONLY_NAMES, _ports_of

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowRule:
    """One `allow` entry of a conduit: tcp/PORT, udp/PORT (or PORT-PORT), a protocol name or any."""
    text: str
    l4: str | None = None          # for tcp/udp port rules
    ports: tuple[int, int] | None = None
    name: str | None = None        # protocol name

    def matches(self, l4: str, port: int, app: str | None) -> bool:
        """Whether a flow to a server on (l4, port), of application `app` if known, fits this entry."""
        if self.text == "any":
            return True
        if self.ports is not None:
            return l4 == self.l4 and self.ports[0] <= port <= self.ports[1]
        name = self.name
        if name == "icmp":
            return l4 in ("icmp", "icmpv6", "1", "58")
        if name not in PORT_ONLY_NAMES and app:
            return app == name
        return (l4, port) in _ports_of(name)


@dataclass
class Zone:
    """A named part of the plant network: its kind (it, dmz, ot-control, ...), networks and VLANs."""
    name: str
    kind: str
    networks: list = field(default_factory=list)   # ipaddress networks
    vlans: list[int] = field(default_factory=list)
    description: str = ""
    line: int = 0

    @property
    def is_ot(self) -> bool:
        """True for the OT kinds (control, sensing, safety, supervisory)."""
        return self.kind in OT_ZONE_KINDS

    @property
    def is_it(self) -> bool:
        """True for office IT and guest zones."""
        return self.kind in IT_ZONE_KINDS


@dataclass
class Conduit:
    """A declared path between two zones (clients in src, servers in dst) and what may cross it."""
    src: str
    dst: str
    allow: list[AllowRule] = field(default_factory=list)
    bidirectional: bool = False
    description: str = ""
    line: int = 0

    def allows(self, l4: str, port: int, app: str | None) -> bool:
        """Whether any of the conduit's `allow` entries admits the flow."""
        return any(r.matches(l4, port, app) for r in self.allow)


@dataclass
class Egress:
    """A zone's outbound allow list: the networks outside the zone its clients may reach."""
    zone: str
    allow: list = field(default_factory=list)      # ipaddress networks
    line: int = 0


@dataclass
class Window:
    """A recurring maintenance window: days, local start time, length, and optionally its zones."""
    name: str
    days: list[str]
    start: str                  # "HH:MM", site local time
    hours: float
    zones: list[str] = field(default_factory=list)   # empty = all zones
    line: int = 0

    def contains(self, ts: float, tz=timezone.utc) -> bool:
        """Whether time ts falls in an occurrence of the window (one may start on an earlier day)."""
        local = datetime.fromtimestamp(ts, tz)
        hh, mm = (int(x) for x in self.start.split(":"))
        for back in range(int(self.hours // 24) + 2):
            day = (local - timedelta(days=back)).date()
            if DAYS[day.weekday()] not in self.days:
                continue
            begin = datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz)
            if begin <= local < begin + timedelta(hours=self.hours):
                return True
        return False


@dataclass
class Attestation:
    """The operator's word on a control traffic cannot show (USB ports, backups, ...): yes/no/partial."""
    id: str
    status: str                 # yes | no | partial
    evidence: str | None = None
    date: str | None = None     # YYYY-MM-DD
    note: str | None = None
    line: int = 0


@dataclass
class RemoteAccess:
    """A declared remote-access path (vendor support, VPN): the inside host, the outside peers."""
    name: str
    host: str
    peers: list = field(default_factory=list)      # ipaddress networks outside the plant
    mfa: bool | None = None
    vendor: str | None = None
    description: str = ""
    line: int = 0


@dataclass
class Site:
    """The whole site model, with the cached lookups the checks use on every flow."""
    name: str | None
    organization_size: str = "medium"
    zones: list[Zone] = field(default_factory=list)
    conduits: list[Conduit] = field(default_factory=list)
    egress: list[Egress] = field(default_factory=list)
    engineering_workstations: list[str] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)
    maintenance_windows: list[Window] = field(default_factory=list)
    attestations: dict[str, Attestation] = field(default_factory=dict)
    sboms: list[dict[str, Any]] = field(default_factory=list)
    remote_access: list[RemoteAccess] = field(default_factory=list)
    suppressions: list = field(default_factory=list)    # accepted risks (suppress.Suppression)
    probe: Any = None           # the probe allow-list (probe.policy.ProbePolicy), None: probing refused
    timezone: str = "UTC"
    description: str = ""
    path: str | None = None
    inferred: bool = False      # True: no site file; zones inferred from addresses and VLANs

    def __post_init__(self):
        self._zone_cache: dict[tuple, Zone | None] = {}
        self._egress_cache: dict[tuple, bool] = {}
        self._ews_cache: dict[str | None, bool] = {}
        self._by_name = {z.name: z for z in self.zones}
        nets = [(n, z) for z in self.zones for n in z.networks]
        nets.sort(key=lambda nz: -nz[0].prefixlen)     # most specific first
        self._nets = nets
        vlan_zones: dict[int, list[Zone]] = {}
        for z in self.zones:
            for v in z.vlans:
                vlan_zones.setdefault(v, []).append(z)
        self._vlan_zone = {v: zs[0] for v, zs in vlan_zones.items() if len(zs) == 1}
        self._ews = [_network(x) for x in self.engineering_workstations]
        self._egress = {e.zone: e for e in self.egress}
        self._assets_by_ip = {a["ip"]: a for a in self.assets if a.get("ip")}
        self._assets_by_mac = {a["mac"]: a for a in self.assets if a.get("mac")}
        self._tz = _tzinfo(self.timezone)

    # -- lookups -----------------------------------------------------------------------------
    def zone(self, name: str) -> Zone | None:
        """The zone of that name, or None."""
        return self._by_name.get(name)

    def zone_of(self, ip: str | None, vlan: int | None = None) -> Zone | None:
        """The zone an address belongs to: by network, else by VLAN when one zone owns it (never
        by VLAN for a public address: only a declared network puts one in a zone)."""
        key = (ip, vlan)
        hit = self._zone_cache.get(key, _MISS)
        if hit is not _MISS:
            return hit
        z = self._infer_zone(ip, vlan) if self.inferred else self._lookup_zone(ip, vlan)
        if len(self._zone_cache) < 1_000_000:
            self._zone_cache[key] = z
        return z

    def _lookup_zone(self, ip, vlan) -> Zone | None:
        addr = _address(ip)
        if addr is not None:
            for net, z in self._nets:
                if addr.version == net.version and addr in net:
                    return z
        # a public address routed in from a VLAN does not belong to that VLAN's zone
        if vlan is not None and not (addr is not None and addr.is_global):
            return self._vlan_zone.get(vlan)
        return None

    def _infer_zone(self, ip, vlan) -> Zone | None:
        addr = _address(ip)
        if addr is not None and addr.is_global:
            return _inferred_zone("internet", "internet")
        if vlan is not None:
            return _inferred_zone(f"vlan-{vlan}", "inferred")
        if addr is not None and not addr.is_multicast:
            net = ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 64}", strict=False)
            return _inferred_zone(str(net), "inferred")
        return None

    def conduit_allows(self, src_zone, dst_zone, l4: str, port: int, app: str | None = None) -> bool:
        """True when traffic from a client in src_zone to a server in dst_zone on (l4, port, app)
        is allowed: same zone, or a conduit between them lists it."""
        s = getattr(src_zone, "name", src_zone)
        d = getattr(dst_zone, "name", dst_zone)
        if s == d:
            return True
        for c in self.conduits:
            if (c.src == s and c.dst == d) or (c.bidirectional and c.src == d and c.dst == s):
                if c.allows(l4, port, app):
                    return True
        return False

    def conduits_between(self, src_zone, dst_zone) -> list[Conduit]:
        """The conduits that carry traffic from src_zone to dst_zone (bidirectional ones included)."""
        s = getattr(src_zone, "name", src_zone)
        d = getattr(dst_zone, "name", dst_zone)
        return [c for c in self.conduits
                if (c.src == s and c.dst == d) or (c.bidirectional and c.src == d and c.dst == s)]

    def egress_allows(self, zone_name: str, ip: str) -> bool | None:
        """None when the zone has no egress rule (outbound not restricted); else whether a client
        in the zone may reach `ip`: inside its own zone, or listed in its allow list."""
        e = self._egress.get(getattr(zone_name, "name", zone_name))
        if e is None:
            return None
        key = (e.zone, ip)
        hit = self._egress_cache.get(key)
        if hit is None:
            hit = self._egress_lookup(e, ip)
            if len(self._egress_cache) < 1_000_000:
                self._egress_cache[key] = hit
        return hit

    def _egress_lookup(self, e: Egress, ip: str) -> bool:
        addr = _address(ip)
        if addr is None:
            return False
        z = self.zone(e.zone)
        if z is not None and any(addr.version == n.version and addr in n for n in z.networks):
            return True
        return any(addr.version == n.version and addr in n for n in e.allow)

    def is_engineering_workstation(self, ip: str | None) -> bool:
        """Whether ip is one of the declared (authorised) engineering stations."""
        hit = self._ews_cache.get(ip)
        if hit is None:
            addr = _address(ip)
            hit = addr is not None and any(addr.version == n.version and addr in n for n in self._ews)
            if len(self._ews_cache) < 1_000_000:
                self._ews_cache[ip] = hit
        return hit

    def declared_asset(self, ip: str | None = None, mac: str | None = None) -> dict | None:
        """The site file's `assets` entry for this IP (else MAC), or None."""
        if ip and ip in self._assets_by_ip:
            return self._assets_by_ip[ip]
        if mac and mac.lower() in self._assets_by_mac:
            return self._assets_by_mac[mac.lower()]
        return None

    def maintenance_window_at(self, ts: float, zone: str | None = None) -> Window | None:
        """The maintenance window open at time ts (for `zone`, when given), or None."""
        for w in self.maintenance_windows:
            if w.zones and zone is not None and zone not in w.zones:
                continue
            if w.contains(ts, self._tz):
                return w
        return None


_MISS = object()


def _inferred_zone(name: str, kind: str) -> Zone:
    z = _INFERRED.get(name)
    if z is None:
        z = _INFERRED[name] = Zone(name, kind)
    return z


_INFERRED: dict[str, Zone] = {}


def inferred_site() -> Site:
    """The model used without a site file: zones inferred from public vs private addresses and
    VLANs (names match the inventory's inferred zones); no conduits, egress or stations."""
    return Site(name=None, inferred=True)


def _address(ip) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if ip is None:
        return None
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _network(text: str):
    return ipaddress.ip_network(text, strict=False)


def _tzinfo(name: str):
    if not name or name.upper() == "UTC":
        return timezone.utc
    m = re.fullmatch(r"UTC([+-])(\d{1,2})(?::?(\d\d))?", name)
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return timezone(delta if m.group(1) == "+" else -delta)
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)


def declared_site(site) -> "Site | None":
    """The site when it comes from a site file; None when absent or inferred from traffic."""
    return site if site is not None and not getattr(site, "inferred", False) else None
