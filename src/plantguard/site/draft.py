"""A site file drafted from traffic (`plantguard site init`): what the captures show of zones,
conduits, egress and engineering stations, written as commented YAML for a person to review.

- zones: every private address seen is placed in the /24 (IPv6: /64) around it; a subnet belongs
  to the VLAN most of its hosts were seen on (routers aside), and the subnets of one VLAN make one
  zone. Untagged subnets of the same kind make one zone. The kind comes from the roles inside:
  controllers -> ot-control (only safety controllers: ot-safety); a broker served to other zones
  with no field device beside it -> dmz; sensors, gateways, brokers -> ot-sensing; HMIs,
  historians, SCADA servers, engineering stations -> ot-supervisory; office hosts -> it.
- engineering stations: the hosts in OT zones that sent program, firmware or configuration
  changes to controllers (run/stop alone, data writes alone, or from an IT zone: written
  commented out, for the reader to decide);
- conduits: the zone-to-zone flows seen, one allow entry per protocol (tcp/PORT when the
  protocol has no name a site file knows, or is TLS, whose name would admit any TLS service);
- egress, for every OT zone: the destinations outside the zone its clients reached.

What the zone model itself forbids is written commented out rather than allowed, so that
`assess` with the draft still reports it: a conduit between an office zone and a control or
sensing zone (the path bypasses a DMZ), an OT zone's traffic to public addresses, a station in an
IT zone. Everything else observed is allowed as observed: a draft cannot know which conduits were
intended, so an unwanted flow between two OT zones becomes a conduit until someone removes it.

The text is emitted here (PyYAML cannot write comments), plainly and deterministically: the same
captures give the same bytes. Every string that came from the wire is reduced to printable ASCII
and quoted; the result loads with `plantguard.site.load_site`."""
from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from plantguard.inventory.asset import CONTROLLER_ROLES
from plantguard.model import AnalysisResult
from plantguard.net import address_class
from plantguard.site.model import Site, Zone
from plantguard.site.vocabulary import ASSET_ROLES, protocol_names

# roles -> the zone kind they vote for (routers, switches, unknown devices do not vote)
CONTROL_ROLES = CONTROLLER_ROLES - {"safety-controller"}
SENSING_ROLES = frozenset({"sensor", "gateway", "broker"})
SUPERVISORY_ROLES = frozenset({"hmi", "historian", "scada-server", "engineering-workstation"})
IT_ROLES = frozenset({"it-host", "workstation", "server", "printer", "camera"})
FIELD_ROLES = CONTROLLER_ROLES | {"sensor", "gateway", "hmi", "engineering-workstation"}

KIND_ORDER = ("ot-control", "ot-safety", "ot-sensing", "ot-supervisory", "dmz", "it")
BASE_NAMES = {"ot-control": "control", "ot-safety": "safety", "ot-sensing": "sensing",
              "ot-supervisory": "supervisory", "dmz": "dmz", "it": "office"}
# kinds between which the zone model wants a DMZ: a conduit there is written commented out
BRIDGED_OT_KINDS = frozenset({"ot-control", "ot-safety", "ot-sensing"})
IT_KINDS = frozenset({"it", "guest"})

# operations that make their sender an engineering station (PROGRAM_CATEGORIES without run/stop,
# which alone is what a rogue STOP looks like, plus configuration changes)
STATION_CATEGORIES = frozenset({"program", "firmware", "config"})
CHANGE_CATEGORIES = frozenset({"program", "firmware", "config", "control", "write"})
# protocols named by port in an allow entry: the name would admit the protocol on any port
CARRIER_PROTOCOLS = frozenset({"tls"})

# organization_size from the number of plant devices (a guess: the size is not on the wire)
SMALL_MAX, MEDIUM_MAX = 50, 500
EGRESS_COLLAPSE = 16        # destinations in one drafted network: allow the network instead
EXAMPLES_SHOWN = 3

REVIEW = "observed, review before use"


@dataclass
class DraftZone:
    name: str
    kind: str
    networks: list                      # ipaddress networks (collapsed)
    vlans: list[int]
    hosts: list[str]
    roles: Counter
    why: str                            # how the kind was chosen


@dataclass
class DraftConduit:
    src: str
    dst: str
    allow: list[str]
    flows: int
    packets: int
    examples: list[str]
    held: str | None = None             # why it is written commented out


@dataclass
class DraftEntry:
    """One line of a list (an egress destination, a station, an asset), maybe held back."""
    value: str
    note: str
    held: str | None = None


@dataclass
class DraftEgress:
    zone: str
    allow: list[DraftEntry]


@dataclass
class Draft:
    name: str
    captures: list[str]
    devices: int
    flows: int
    organization_size: str
    zones: list[DraftZone] = field(default_factory=list)
    conduits: list[DraftConduit] = field(default_factory=list)
    egress: list[DraftEgress] = field(default_factory=list)
    stations: list[DraftEntry] = field(default_factory=list)
    assets: list[DraftEntry] = field(default_factory=list)
    not_zoned: list[str] = field(default_factory=list)   # remarks on addresses left outside zones

    def site(self) -> Site:
        """The drafted zones as a site model (what `assess` will place addresses with)."""
        return Site(name=self.name, zones=[Zone(z.name, z.kind, list(z.networks), list(z.vlans))
                                           for z in self.zones])

    def summary(self) -> str:
        """'5 zones, 2 conduits (2 held back), ...': one line for the person who ran it."""
        held_c = sum(1 for c in self.conduits if c.held)
        held_s = sum(1 for s in self.stations if s.held)
        held_e = sum(1 for e in self.egress for d in e.allow if d.held)
        parts = [_plural(len(self.zones), "zone"),
                 _plural(len(self.conduits) - held_c, "conduit") + (f" ({held_c} held back)" if held_c else ""),
                 _plural(len(self.egress), "egress rule")
                 + (f" ({_plural(held_e, 'destination')} held back)" if held_e else ""),
                 _plural(len(self.stations) - held_s, "engineering station")
                 + (f" ({held_s} held back)" if held_s else ""),
                 f"organization_size {self.organization_size} (a guess)"]
        return ", ".join(parts)


# ------------------------------------------------------------------------------------ drafting

def draft_site(result: AnalysisResult, name: str = "draft") -> Draft:
    """The draft for this analysis: zones, conduits, egress, stations, the observed inventory."""
    from plantguard.inventory.build import build_assets
    assets = build_assets(result, None, [])
    return _Drafter(result, assets, name).draft()


def draft_text(result: AnalysisResult, name: str = "draft") -> tuple[str, Draft]:
    """The draft as site-file text, and the draft itself."""
    d = draft_site(result, name)
    return render(d), d


def _zonable(ip: str | None) -> bool:
    """A private unicast address that a zone can hold (loopback and link-local stay out, as the
    segmentation checks leave them out)."""
    if address_class(ip) != "private":
        return False
    a = ipaddress.ip_address(ip)
    return not (a.is_loopback or a.is_link_local)


def _subnet(ip: str):
    a = ipaddress.ip_address(ip)
    return ipaddress.ip_network(f"{ip}/{24 if a.version == 4 else 64}", strict=False)


def _ip_key(ip: str) -> tuple:
    try:
        a = ipaddress.ip_address(ip)
        return (a.version, int(a))
    except ValueError:
        return (9, 0)


def _net_key(n) -> tuple:
    return (n.version, int(n.network_address), n.prefixlen)


class _Drafter:
    def __init__(self, result: AnalysisResult, assets: list, name: str):
        from plantguard.protocols.registry import names_with_trait
        self.result = result
        self.assets = assets
        self.name = name
        self.flows = list(result.flows)
        self.industrial = names_with_trait("industrial")
        self.by_ip: dict[str, object] = {}
        for a in assets:
            for ip in ([a.ip] if a.ip else []) + sorted(a.ips or ()):
                self.by_ip.setdefault(ip, a)
        self.served: dict[str, set] = defaultdict(set)       # server -> the protocols it served
        self.spoken: dict[str, set] = defaultdict(set)       # client -> the protocols it used
        self.client_vlans: dict[str, set] = defaultdict(set)
        for f in self.flows:
            if f.app:
                self.served[f.server].add(f.app)
                self.spoken[f.client].add(f.app)
            if f.vlan:
                self.client_vlans[f.client].add(f.vlan)

    def role(self, ip: str | None) -> str:
        a = self.by_ip.get(ip)
        return getattr(a, "role", None) or "unknown"

    # -- zones ---------------------------------------------------------------------------------
    def hosts(self) -> list[str]:
        seen = set()
        for f in self.flows:
            for ip in (f.client, f.server):
                if _zonable(ip):
                    seen.add(ip)
        for a in self.assets:
            for ip in ([a.ip] if a.ip else []) + sorted(a.ips or ()):
                if _zonable(ip):
                    seen.add(ip)
        return sorted(seen, key=_ip_key)

    def vlan_votes(self, ip: str) -> tuple[dict[int, float], bool]:
        """The VLANs a host was seen on (as its inventory says), weighted to one vote; whether it
        is a router (whose votes count only where nothing else votes)."""
        a = self.by_ip.get(ip)
        if a is not None:
            vlans = sorted(v for v in (a.vlans or ()) if v)
            router = bool(getattr(a, "is_router", False)) or a.role in ("router", "firewall")
        else:                           # no asset: the VLANs of the flows it opened
            vlans = sorted(self.client_vlans.get(ip, ()))
            router = False
        return ({v: 1 / len(vlans) for v in vlans} if vlans else {}), router

    def draft(self) -> Draft:
        hosts = self.hosts()
        subnets: dict = defaultdict(list)
        for ip in hosts:
            subnets[_subnet(ip)].append(ip)
        # each subnet on the VLAN most of its (non-router) hosts were seen on
        units: dict[tuple, list] = defaultdict(list)
        for net in sorted(subnets, key=_net_key):
            votes: Counter = Counter()
            router_votes: Counter = Counter()
            for ip in subnets[net]:
                v, router = self.vlan_votes(ip)
                (router_votes if router else votes).update(v)
            votes = votes or router_votes
            vlan = min(votes, key=lambda k: (-votes[k], k)) if votes else None
            units[("vlan", vlan) if vlan is not None else ("net", str(net))].append(net)
        unit_of_net = {n: key for key, nets in units.items() for n in nets}
        unit_hosts = {key: [ip for n in nets for ip in subnets[n]] for key, nets in units.items()}
        host_unit = {ip: unit_of_net[_subnet(ip)] for ip in hosts}
        outside: dict[tuple, set] = defaultdict(set)     # unit -> clients of its brokers from elsewhere
        for f in self.flows:
            key = host_unit.get(f.server)
            if key is not None and host_unit.get(f.client) != key and self.role(f.server) == "broker":
                outside[key].add(f.client)
        kinds = {key: self.kind_of_roles(unit_hosts[key], outside.get(key, ())) for key in units}
        # untagged subnets of one kind make one zone
        groups: dict[tuple, list] = defaultdict(list)
        for key in units:
            groups[key if key[0] == "vlan" else ("untagged", kinds[key][0])].append(key)
        zones = []
        for gkey, members in groups.items():
            nets = sorted((n for k in members for n in units[k]), key=_net_key)
            ips = sorted((ip for k in members for ip in unit_hosts[k]), key=_ip_key)
            roles = Counter(self.role(ip) for ip in ips)
            kind, why = kinds[members[0]]
            if len(members) > 1:
                why = f"the roles inside each of its {len(members)} subnets ({_roles_text(roles)})"
            vlans = [gkey[1]] if gkey[0] == "vlan" else []
            zones.append(DraftZone("", kind, _collapse(nets), vlans, ips, roles, why))
        zones.sort(key=lambda z: (KIND_ORDER.index(z.kind), _net_key(z.networks[0])))
        _name_zones(zones)
        d = Draft(self.name, [c.path for c in self.result.captures], len(hosts), len(self.flows),
                  _size(len(hosts)), zones)
        site = d.site()
        d.conduits = self.conduits(site)
        d.egress = self.egress(site, d.conduits)
        d.stations = self.stations(site)
        d.assets = self.inventory()
        d.not_zoned = self.not_zoned()
        return d

    def kind_of_roles(self, ips: list[str], broker_outside) -> tuple[str, str]:
        """The zone kind of a unit of subnets (its hosts; the outside clients of its brokers), and why."""
        roles = Counter(self.role(ip) for ip in ips)
        has = lambda group: sum(n for r, n in roles.items() if r in group)  # noqa: E731
        seen = _roles_text(roles)
        if has(CONTROL_ROLES):
            return "ot-control", f"controllers inside ({seen})"
        if has({"safety-controller"}):
            return "ot-safety", f"safety controllers inside ({seen})"
        if broker_outside and not (roles.keys() & FIELD_ROLES):
            return "dmz", (f"a broker reached from {_plural(len(broker_outside), 'host')} in other "
                           f"zones, no field device beside it ({seen})")
        if has(SENSING_ROLES):
            return "ot-sensing", f"sensors, gateways or brokers inside ({seen})"
        if has(SUPERVISORY_ROLES):
            return "ot-supervisory", f"supervisory hosts inside ({seen})"
        if has(IT_ROLES):
            return "it", f"office hosts inside ({seen})"
        if any((self.served.get(ip, set()) | self.spoken.get(ip, set())) & self.industrial for ip in ips):
            return "ot-control", f"no role recognised, but industrial protocols are spoken ({seen})"
        return "it", f"no role recognised and no industrial protocol ({seen})"

    # -- conduits ------------------------------------------------------------------------------
    def conduits(self, site: Site) -> list[DraftConduit]:
        names = protocol_names()
        pairs: dict[tuple, dict] = {}
        for f in self.flows:
            if address_class(f.server) == "other":
                continue
            zc, zs = site.zone_of(f.client, f.vlan), site.zone_of(f.server, f.vlan)
            if zc is None or zs is None or zc.name == zs.name:
                continue
            entry = _allow_entry(f, names)
            g = pairs.setdefault((zc.name, zs.name), {"allow": set(), "flows": 0, "packets": 0,
                                                      "examples": [], "kinds": (zc.kind, zs.kind)})
            if entry is not None:
                g["allow"].add(entry)
            g["flows"] += 1
            g["packets"] += f.packets
            g["examples"].append((-f.packets, _ip_key(f.client), _ip_key(f.server),
                                  f"{f.client} -> {f.server} {entry or f.l4}"))
        order = {z.name: i for i, z in enumerate(site.zones)}
        out = []
        for (src, dst), g in sorted(pairs.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]])):
            if not g["allow"]:
                continue
            ks, kd = g["kinds"]
            held = None
            if (ks in IT_KINDS and kd in BRIDGED_OT_KINDS) or (kd in IT_KINDS and ks in BRIDGED_OT_KINDS):
                held = (f"an {'office' if ks in IT_KINDS else 'OT'} zone straight to "
                        f"{'an OT' if ks in IT_KINDS else 'an office'} zone, bypassing a DMZ")
            examples = []
            for *_, text in sorted(g["examples"]):
                if text not in examples:
                    examples.append(text)
            out.append(DraftConduit(src, dst, sorted(g["allow"], key=_allow_key), g["flows"], g["packets"],
                                    examples[:EXAMPLES_SHOWN], held))
        return out

    # -- egress --------------------------------------------------------------------------------
    def egress(self, site: Site, conduits: list[DraftConduit]) -> list[DraftEgress]:
        held_pairs = {(c.src, c.dst) for c in conduits if c.held}
        names = protocol_names()
        ot = {z.name for z in site.zones if z.is_ot}
        reached: dict[str, dict] = {name: {} for name in ot}
        for f in self.flows:
            if address_class(f.server) == "other":
                continue
            zc = site.zone_of(f.client, f.vlan)
            if zc is None or zc.name not in ot:
                continue
            addr = ipaddress.ip_address(f.server)
            if any(addr.version == n.version and addr in n for n in zc.networks):
                continue                # inside the zone: not outbound
            g = reached[zc.name].setdefault(f.server, {"services": set(), "clients": set(),
                                                       "zone": site.zone_of(f.server)})
            g["services"].add(_allow_entry(f, names) or f.l4)
            g["clients"].add(f.client)
        out = []
        for z in site.zones:
            if z.name not in ot:
                continue
            dests = reached[z.name]
            entries = []
            collapsible: dict = defaultdict(list)
            for ip, g in dests.items():
                zs = g["zone"]
                if zs is not None and (z.name, zs.name) not in held_pairs and address_class(ip) == "private":
                    net = next((n for n in zs.networks if ipaddress.ip_address(ip) in n), None)
                    if net is not None:
                        collapsible[net].append(ip)
            collapsed = {ip: net for net, ips in collapsible.items() if len(ips) > EGRESS_COLLAPSE for ip in ips}
            done_nets = set()
            for ip in sorted(dests, key=_ip_key):
                g = dests[ip]
                zs = g["zone"]
                what = (f"{', '.join(sorted(g['services'], key=_allow_key))} from "
                        f"{_plural(len(g['clients']), 'host')}")
                where = f"zone {zs.name}" if zs is not None else (
                    "a public address" if address_class(ip) == "public" else "no zone")
                if address_class(ip) == "public":
                    entries.append(DraftEntry(ip, f"{where}: {what}",
                                              "an OT zone reaching the internet (egress.internet)"))
                elif zs is not None and (z.name, zs.name) in held_pairs:
                    entries.append(DraftEntry(ip, f"{where}: {what}", "its conduit is held back too"))
                elif ip in collapsed:
                    net = collapsed[ip]
                    if net not in done_nets:
                        done_nets.add(net)
                        n = len(collapsible[net])
                        entries.append(DraftEntry(str(net), f"{where}: {n} destinations in it"))
                else:
                    entries.append(DraftEntry(ip, f"{where}: {what}"))
            out.append(DraftEgress(z.name, entries))
        return out

    # -- engineering stations ------------------------------------------------------------------
    def stations(self, site: Site) -> list[DraftEntry]:
        sent: dict[str, dict] = {}
        for o in self.result.observations:
            if o.kind != "operation":
                continue
            cat = str(o.data.get("category") or "")
            if cat not in CHANGE_CATEGORIES or not o.src or not o.dst:
                continue
            if not (self.role(o.dst) in CONTROLLER_ROLES or o.proto in self.industrial):
                continue
            g = sent.setdefault(o.src, {"cats": Counter(), "names": Counter(), "controllers": set(),
                                        "protocols": set(), "vlan": o.vlan})
            g["cats"][cat] += o.count
            g["names"][str(o.data.get("name") or cat)[:40]] += o.count
            g["controllers"].add(o.dst)
            g["protocols"].add(o.proto)
        out = []
        for ip in sorted(sent, key=_ip_key):
            g = sent[ip]
            cats = g["cats"]
            ctrl = sorted(g["controllers"], key=_ip_key)
            names = ", ".join(f"{n} x{c}" for n, c in sorted(g["names"].items(), key=lambda nc: (-nc[1], nc[0]))[:4])
            note = (f"sent {', '.join(f'{c} {k}' for k, c in sorted(cats.items()))} ({names}) to "
                    f"{', '.join(ctrl[:EXAMPLES_SHOWN])}{' ...' if len(ctrl) > EXAMPLES_SHOWN else ''} "
                    f"over {', '.join(sorted(g['protocols']))}")
            if address_class(ip) == "private" and not _zonable(ip):
                continue                # loopback, link-local: no station
            z = site.zone_of(ip, g["vlan"]) if _zonable(ip) else None
            held = None
            if not _zonable(ip):
                held = "a public address, in no zone"
            elif z is None:
                held = "in no drafted zone"
            elif not z.is_ot:
                held = f"in {z.kind} zone {z.name}: a station belongs in an OT zone"
            elif self.role(ip) in CONTROLLER_ROLES or self.served.get(ip, set()) & self.industrial:
                held = "a controller itself"
            elif not cats.keys() & STATION_CATEGORIES:
                held = ("run/stop only, no program or configuration change" if "control" in cats
                        else "data writes only (an HMI?), no program or configuration change")
            out.append(DraftEntry(ip, note, held))
        return out

    # -- the observed inventory ----------------------------------------------------------------
    def inventory(self) -> list[DraftEntry]:
        out = []
        macs = set()
        for a in sorted(self.assets, key=lambda a: (_ip_key(a.ip) if a.ip else (8, 0), a.mac or "")):
            if a.ip is not None and not _zonable(a.ip):
                continue
            if a.ip is None and not a.mac:
                continue
            parts = []
            if a.ip:
                parts.append(f"ip: {a.ip}")
            if a.mac and a.mac not in macs:
                macs.add(a.mac)
                parts.append(f'mac: "{a.mac}"')
            elif a.ip is None:
                continue
            ident = a.identity or {}
            name = ident.get("name") or (min(a.hostnames) if a.hostnames else None)
            if isinstance(name, str) and _clean(name):
                parts.append(f"name: {_quote(name)}")
            if a.role in ASSET_ROLES and a.role not in ("unknown", "internet-host"):
                parts.append(f"role: {a.role}")
            vendor = ident.get("vendor") or a.vendor
            if isinstance(vendor, str) and _clean(vendor):
                parts.append(f"vendor: {_quote(vendor)}")
            product = ident.get("product") or ident.get("model")
            if isinstance(product, str) and _clean(product):
                parts.append(f"product: {_quote(product)}")
            out.append(DraftEntry("{" + ", ".join(parts) + "}", ""))
        return out

    def not_zoned(self) -> list[str]:
        """Remarks on the addresses left out of every zone: public addresses that speak industrial
        protocols (a plant numbered in public space, or a device reached from the internet)."""
        public_ot: dict = defaultdict(set)
        for f in self.flows:
            if (f.app or "") not in self.industrial:
                continue
            for ip in (f.client, f.server):
                if address_class(ip) == "public":
                    public_ot[_subnet(ip)].add(ip)
        if not public_ot:
            return []
        nets = sorted(public_ot, key=_net_key)
        n = sum(len(v) for v in public_ot.values())
        shown = ", ".join(str(x) for x in nets[:6]) + (" ..." if len(nets) > 6 else "")
        return [f"{_plural(n, 'public address', 'public addresses')} speak industrial protocols ({shown}):",
                "they are left out of every zone (a public address is only zoned by a network you declare).",
                "If the plant is numbered in that address space, add those networks to a zone."]


def _roles_text(roles: Counter) -> str:
    return ", ".join(f"{n} {r}" for r, n in sorted(roles.items(), key=lambda rn: (-rn[1], rn[0])))


def _collapse(nets: list) -> list:
    out = []
    for version in (4, 6):
        out.extend(ipaddress.collapse_addresses([n for n in nets if n.version == version]))
    return sorted(out, key=_net_key)


def _name_zones(zones: list[DraftZone]) -> None:
    count = Counter(BASE_NAMES[z.kind] for z in zones)
    used = set()
    for z in zones:
        base = BASE_NAMES[z.kind]
        name = base
        if count[base] > 1 and z.vlans:
            name = f"{base}-vlan{z.vlans[0]}"
        i = 2
        while name in used:
            name = f"{base}-{i}"
            i += 1
        used.add(name)
        z.name = name


def _size(devices: int) -> str:
    return "small" if devices <= SMALL_MAX else "medium" if devices <= MEDIUM_MAX else "large"


def _allow_entry(f, names: set[str]) -> str | None:
    """The allow entry that admits this flow: its protocol's name, else tcp/PORT or udp/PORT."""
    app = (f.app or "").lower()
    if app and app in names and app not in CARRIER_PROTOCOLS:
        return app
    if f.l4 in ("tcp", "udp") and f.port and 1 <= int(f.port) <= 65535:
        return f"{f.l4}/{int(f.port)}"
    if f.l4 in ("icmp", "icmpv6"):
        return "icmp"
    return None


def _allow_key(text: str) -> tuple:
    l4, _, port = text.partition("/")
    return (1, l4, int(port), "") if port.isdigit() else (0, "", 0, text)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


# ------------------------------------------------------------------------------------ writing

def _clean(text: str, limit: int = 80) -> str:
    """Printable ASCII on one line (what came from the wire or a file name)."""
    s = "".join(ch if " " <= ch <= "~" else " " for ch in str(text))
    return " ".join(s.split())[:limit]


def _quote(text: str, limit: int = 80) -> str:
    """A double-quoted YAML scalar of the cleaned text."""
    s = _clean(text, limit)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str, indent: str = "", width: int = 99) -> list[str]:
    """Comment lines (wrapped) of the cleaned text."""
    words = _clean(text, 2000).split()
    lines, cur = [], ""
    for w in words:
        if cur and len(indent) + 2 + len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return [f"{indent}# {ln}" for ln in lines]


HEADER = (
    "plantguard site file DRAFT, written by `plantguard site init` from the traffic of {captures}: "
    "{devices}, {flows}. Everything here is {review}: it says what the captures show, not what is "
    "intended.")
LIMITS = (
    "What a draft cannot know: which conduits are intended. Every zone-to-zone flow seen is "
    "written as a conduit, so traffic that should not happen at all (a rogue host in one OT zone "
    "reaching another) is allowed below until you remove it; `assess` with this file will not "
    "report it as a violation. Only what the zone model itself forbids is written commented out "
    "(HELD BACK), so `assess` still reports it: conduits between an office zone and a control or "
    "sensing zone, OT traffic to public addresses, engineering stations outside OT zones or that "
    "only started/stopped a controller. Networks are the /24 (IPv6 /64) around the hosts seen, as "
    "captures do not carry masks; an office zone may really be a guest network (kind: guest); "
    "untagged subnets of one kind are drafted as one zone (split them if they are separated).")
NOT_DRAFTED = (
    "Not drafted (traffic cannot show them; see examples/site.yaml): timezone, "
    "maintenance_windows, attestations, sboms, remote_access, criticality of assets. "
    "Check the file with `plantguard site check FILE`.")


def render(d: Draft) -> str:
    """The draft as site-file text (YAML with comments); same draft, same bytes."""
    caps = [c.rsplit("/", 1)[-1] for c in d.captures]
    cap_text = (f"{_plural(len(caps), 'capture')} ({', '.join(caps[:3])}{' ...' if len(caps) > 3 else ''})"
                if caps else "no capture")
    L: list[str] = []
    L += _comment(HEADER.format(captures=cap_text, devices=_plural(d.devices, "plant address", "plant addresses"),
                                flows=_plural(d.flows, "flow"), review=REVIEW))
    L += ["#"] + _comment(LIMITS) + ["#"] + _comment(NOT_DRAFTED)
    L.append(f"site: {_quote(d.name, 200)}")
    L.append(f"organization_size: {d.organization_size}"
             f"{' ' * max(1, 14 - len(d.organization_size))}# a guess from {d.devices} plant addresses: "
             "small | medium | large; it shapes the roadmap")
    L.append("")
    # zones
    L += _comment(f"Zones ({REVIEW}): the subnets seen, by VLAN; kinds guessed from the roles inside.")
    if d.zones:
        L.append("zones:")
        for z in d.zones:
            where = f"VLAN {', '.join(map(str, z.vlans))}" if z.vlans else "untagged"
            L += _comment(f"{z.name}: {where}, {_plural(len(z.hosts), 'host')}; kind {z.kind} from {z.why}", "  ")
            nets = ", ".join(str(n) for n in z.networks)
            vl = f", vlans: [{', '.join(map(str, z.vlans))}]" if z.vlans else ""
            line = f"  - {{name: {z.name}, kind: {z.kind}, networks: [{nets}]{vl}}}"
            if len(line) <= 100:
                L.append(line)
                continue
            L += [f"  - name: {z.name}", f"    kind: {z.kind}"]
            if z.vlans:
                L.append(f"    vlans: [{', '.join(map(str, z.vlans))}]")
            L.append("    networks:")
            L += [f"      - {n}" for n in z.networks]
    else:
        L.append("zones: []                    # no private address was seen")
    for line in d.not_zoned:
        L += _comment(line)
    L.append("")
    # conduits
    L += _comment(f"Conduits ({REVIEW}): every zone-to-zone flow seen, client zone -> server zone. "
                  "Remove what is not intended: a draft cannot tell.")
    active = [c for c in d.conduits if not c.held]
    L.append("conduits:" if active or any(c.held for c in d.conduits) else "conduits: []")
    for c in d.conduits:
        note = (f"{c.src} -> {c.dst}: {_plural(c.flows, 'flow')}, {_plural(c.packets, 'packet')}; "
                f"e.g. {'; '.join(c.examples)}")
        line = f"- {{from: {c.src}, to: {c.dst}, allow: [{', '.join(c.allow)}]}}"
        if c.held:
            L += _comment(f"HELD BACK, {c.held} (segmentation.it-ot-bridge); uncomment only if intended. {note}", "  ")
            L.append(f"  # {line}")
        else:
            L += _comment(note, "  ")
            L.append(f"  {line}")
    L.append("")
    # egress
    L += _comment(f"Egress ({REVIEW}): deny-all outbound for the OT zones, except the destinations "
                  "outside the zone they reached.")
    if d.egress:
        L.append("egress:")
        for e in d.egress:
            L.append(f"  - zone: {e.zone}")
            if not e.allow:
                L.append("    allow: []                # nothing outside the zone was reached")
                continue
            L.append("    allow:")
            L += _list_lines(e.allow, "      ")
    else:
        L.append("egress: []                     # no OT zone was drafted")
    L.append("")
    # engineering stations
    L += _comment(f"Engineering stations ({REVIEW}): the hosts in OT zones that sent program, firmware "
                  "or configuration changes to controllers. Writes or run/stop from any other host "
                  "will be reported as unauthorised.")
    L.append("engineering_workstations:" if d.stations else "engineering_workstations: []")
    L += _list_lines(d.stations, "  ")
    L.append("")
    # inventory
    L += _comment(f"Declared inventory ({REVIEW}), commented out: every device seen, including any "
                  "that should not be there. Remove those, add names and criticality, then uncomment "
                  "it: devices seen later but not listed are reported (inventory.unknown-asset).")
    if d.assets:
        L.append("# assets:")
        for a in d.assets:
            L.append(f"#   - {a.value}")
    return "\n".join(L) + "\n"


def _list_lines(items: list[DraftEntry], indent: str) -> list[str]:
    """A list's entries, each with its note: the drafted ones, then the held-back ones commented
    out under one line per reason."""
    out = [ln for item in items if not item.held for ln in _entry_lines(item, indent)]
    reasons: dict[str, list] = {}
    for item in items:
        if item.held:
            reasons.setdefault(item.held, []).append(item)
    for reason, held in reasons.items():
        out += _comment(f"HELD BACK ({_plural(len(held), 'entry', 'entries')}), {reason}; "
                        "uncomment only if intended:", indent)
        for item in held:
            out += _entry_lines(item, indent)
    return out


def _entry_lines(item: DraftEntry, indent: str, width: int = 99) -> list[str]:
    """An entry with its note: on the same line when it fits, else above it; commented out when
    held back."""
    lead = f"{indent}# - " if item.held else f"{indent}- "
    note = _clean(item.note, 300)
    line = f"{lead}{item.value}{'':<{max(1, 22 - len(item.value))}}# {note}"
    if len(line) <= width:
        return [line]
    return _comment(note, indent) + [f"{lead}{item.value}"]
