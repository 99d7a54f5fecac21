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

Deciding is this module's job; writing the draft out as commented YAML is site/draft_yaml.py's."""
from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from plantguard.inventory.asset import CONTROLLER_ROLES
from plantguard.model import AnalysisResult
from plantguard.net import address_class, ip_sort_key
from plantguard.site.draft_yaml import (  # noqa: F401 (HEADER, LIMITS, ...: importable from here as before)
    HEADER,
    LIMITS,
    NOT_DRAFTED,
    REVIEW,
    asset_mapping,
    render,
)
from plantguard.site.draft_yaml import plural as _plural
from plantguard.site.draft_yaml import quote as _quote  # noqa: F401 (importable from here)
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
        return sorted(seen, key=ip_sort_key)

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
            ips = sorted((ip for k in members for ip in unit_hosts[k]), key=ip_sort_key)
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
            g["examples"].append((-f.packets, ip_sort_key(f.client), ip_sort_key(f.server),
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
    # -- egress --------------------------------------------------------------------------------
    def egress(self, site: Site, conduits: list[DraftConduit]) -> list[DraftEgress]:
        held_pairs = {(c.src, c.dst) for c in conduits if c.held}
        ot = {z.name for z in site.zones if z.is_ot}
        reached = self.reached(site, ot)
        return [DraftEgress(z.name, _egress_entries(z, reached[z.name], held_pairs))
                for z in site.zones if z.name in ot]

    def reached(self, site: Site, ot: set[str]) -> dict[str, dict]:
        """Per OT zone, the destinations outside it its clients reached: server -> the services
        reached on it, the clients, the server's zone."""
        names = protocol_names()
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
        return reached


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
        for ip in sorted(sent, key=ip_sort_key):
            g = sent[ip]
            cats = g["cats"]
            ctrl = sorted(g["controllers"], key=ip_sort_key)
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
        for a in sorted(self.assets, key=lambda a: (ip_sort_key(a.ip) if a.ip else (8, 0), a.mac or "")):
            if a.ip is not None and not _zonable(a.ip):
                continue
            if a.ip is None and not a.mac:
                continue
            mac = None
            if a.mac and a.mac not in macs:
                macs.add(a.mac)
                mac = a.mac
            elif a.ip is None:
                continue
            ident = a.identity or {}
            name = ident.get("name") or (min(a.hostnames) if a.hostnames else None)
            role = a.role if a.role in ASSET_ROLES and a.role not in ("unknown", "internet-host") else None
            out.append(DraftEntry(asset_mapping(a.ip, mac, name, role, ident.get("vendor") or a.vendor,
                                                ident.get("product") or ident.get("model")), ""))
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


def _collapsible(zone: Zone, dests: dict, held_pairs: set) -> dict:
    """The private destinations an egress rule may allow by network: drafted network -> those in
    it, for the zones whose conduit from `zone` is not held back."""
    collapsible: dict = defaultdict(list)
    for ip, g in dests.items():
        zs = g["zone"]
        if zs is not None and (zone.name, zs.name) not in held_pairs and address_class(ip) == "private":
            net = next((n for n in zs.networks if ipaddress.ip_address(ip) in n), None)
            if net is not None:
                collapsible[net].append(ip)
    return collapsible


def _egress_entries(zone: Zone, dests: dict, held_pairs: set) -> list[DraftEntry]:
    """An OT zone's egress allow list: one entry per destination, or per drafted network when more
    than EGRESS_COLLAPSE of its addresses were reached; public addresses and destinations whose
    conduit is held back are held back too."""
    collapsible = _collapsible(zone, dests, held_pairs)
    collapsed = {ip: net for net, ips in collapsible.items() if len(ips) > EGRESS_COLLAPSE for ip in ips}
    entries = []
    done_nets = set()
    for ip in sorted(dests, key=ip_sort_key):
        g = dests[ip]
        zs = g["zone"]
        what = (f"{', '.join(sorted(g['services'], key=_allow_key))} from "
                f"{_plural(len(g['clients']), 'host')}")
        where = f"zone {zs.name}" if zs is not None else (
            "a public address" if address_class(ip) == "public" else "no zone")
        if address_class(ip) == "public":
            entries.append(DraftEntry(ip, f"{where}: {what}",
                                      "an OT zone reaching the internet (egress.internet)"))
        elif zs is not None and (zone.name, zs.name) in held_pairs:
            entries.append(DraftEntry(ip, f"{where}: {what}", "its conduit is held back too"))
        elif ip in collapsed:
            net = collapsed[ip]
            if net not in done_nets:
                done_nets.add(net)
                n = len(collapsible[net])
                entries.append(DraftEntry(str(net), f"{where}: {n} destinations in it"))
        else:
            entries.append(DraftEntry(ip, f"{where}: {what}"))
    return entries
