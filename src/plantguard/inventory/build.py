"""Observations and flows -> assets. Merge rules:
- an IP address is a device, unless it is multicast, broadcast or unspecified: by its text
  (net.address_class), or because every frame that named it went to a group MAC address (the
  directed broadcast of a subnet whose mask the capture does not say), or because it is the
  broadcast address of a network the site file declares;
- its own MAC comes from ARP/DHCP bindings first, else from the frames that carried it, leaving
  out the MACs of routers: a MAC in front of many IP addresses (or any public one), a MAC that
  the bindings give to another address, and a MAC that carries several addresses each seen
  with another MAC on another VLAN (a router on a mirrored trunk, where every routed packet is
  seen once per VLAN). The addresses behind a router keep no MAC;
- a VLAN belongs to an address only through frames that carry the address's own MAC: a routed
  leg carries the router's MAC, so it says nothing of where the address lives. An address seen
  as often with one MAC on one VLAN as with another on another, and no binding to tell them
  apart, keeps its VLAN unknown (and a note says so);
- one MAC with a few addresses (DHCP renumbering) is one device with several addresses;
- layer-2-only devices (PROFINET DCP, LLDP, CDP) join the IP device with the same MAC or with the
  address they announce, else stand alone keyed by MAC;
- a public address is zone "internet" unless a network the site file declares holds it: never
  a zone by its VLAN, never an OT zone inferred from where it was seen;
- what the site file declares of a device (`assets:`) is kept with it (`declared`); its declared
  name names it when the device announced none;
- every identity key records where it came from (`identity_sources`): the protocol, capture and
  frame of the observation that first stated it, or what it was derived from (a product from a
  model, ...), the fingerprint that concluded it, or the site file;
- besides the first value of each identity key, an asset keeps every distinct User-Agent it sent,
  server banner it gave, TLS server name it was asked for and certificate it presented, MQTT
  client id it connected with, HTTP Host name and OPC UA endpoint URL it was reached by: up to
  SEEN_CAP of each with how often and where first, and how many distinct there were
  (`Asset.seen`).
"""
from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import ClassVar

from plantguard import net
from plantguard.inventory.asset import Asset, Service
from plantguard.inventory.roles import INDUSTRIAL_APPS, infer_role
from plantguard.inventory.vendors import vendor_of_mac
from plantguard.knowledge.families import identity_family
from plantguard.model import AnalysisResult
from plantguard.protocols.registry import names_with_trait

ROUTER_MIN_IPS = 4          # distinct addresses behind one MAC that make it a router
MAX_SERVICES_PER_ASSET = 256
MAX_ASSETS = 250_000
# observation kinds whose protocol the device is taken to speak
_PROTOCOL_KINDS = frozenset({"identity", "service", "role", "session", "tls", "certificate"})


_INVENTORY_CLASS = {"public": "public", "private": "device", "other": "skip"}


def address_class(ip: str) -> str:
    """'device', 'public' or 'skip' (multicast, broadcast, unspecified, link-local noise)."""
    return _INVENTORY_CLASS[net.address_class(ip)]


CONTROLLER_PROTOCOLS = names_with_trait("controller-server")  # whose servers count as controllers


def plural_addresses(n: int) -> str:
    return f"{n} address" if n == 1 else f"{n} addresses"


def _usable_mac(mac: str | None) -> bool:
    return bool(mac) and not (int(mac[:2], 16) & 1) and mac != "00:00:00:00:00:00"


def _group_mac(mac: str | None) -> bool:
    """A broadcast or multicast MAC: frames to it go to everyone (or a group), not to a device."""
    return bool(mac) and bool(int(mac[:2], 16) & 1)


def _subnet(ip: str):
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return ipaddress.ip_network(f"{ip}/{24 if addr.version == 4 else 64}", strict=False)


class _Wire:
    """What the frames say about addresses and MACs, and which MACs are routers'."""

    def __init__(self):
        self.ip_macs: dict[str, Counter] = defaultdict(Counter)  # address -> MAC -> packets
        self.ip_mac_vlans: dict[tuple, set] = defaultdict(set)   # (address, MAC) -> VLANs seen
        self.mac_ips: dict[str, set] = defaultdict(set)          # MAC -> addresses (frames, bindings)
        self.bound: dict[str, str] = {}                          # address -> MAC (ARP/DHCP)
        self.bound_ips: dict[str, set] = defaultdict(set)        # MAC -> addresses bound to it
        self.routers: set[str] = set()
        self.reason: dict[str, str] = {}                         # router MAC -> why
        self.own: dict[str, str | None] = {}                     # address -> its own MAC
        self.unsure: set[str] = set()                            # addresses whose own MAC is a tie

    def foreign(self, ip: str, mac: str) -> bool:
        """The MAC is not this address's own: a router's (unless bound to it), or bound to others."""
        if self.bound.get(ip) == mac:
            return False
        return mac in self.routers or bool(self.bound_ips.get(mac)) and ip not in self.bound_ips[mac]

    def find_routers(self) -> None:
        for mac, ips in self.mac_ips.items():
            if len(ips) >= ROUTER_MIN_IPS:
                self.reason[mac] = f"one MAC address fronts {len(ips)} IP addresses"
            elif any(address_class(i) == "public" for i in ips):
                self.reason[mac] = "its MAC address carries traffic of public addresses"
        for mac, ips in self.mac_ips.items():
            if mac in self.reason:
                continue
            relayed = sorted(ip for ip in ips if self._relayed(ip, mac))
            if len(relayed) >= 2:
                self.reason[mac] = (f"its MAC address carries {', '.join(relayed[:3])}, each seen at least as "
                                    "often with a MAC of its own (routed traffic, seen on both legs)")
                continue
            own = self.bound_ips.get(mac) or set()
            if not own:
                continue
            # a gateway: bound to its interface addresses, it carries frames of addresses that
            # the bindings give to other MACs, or of addresses in other subnets
            nets = {_subnet(i) for i in own}
            behind = sorted(ip for ip in ips - own if self.ip_macs.get(ip, {}).get(mac)
                            and (self.bound.get(ip, mac) != mac or _subnet(ip) not in nets))
            if behind:
                self.reason[mac] = (f"its MAC address (that of {', '.join(sorted(own, key=_ip_sort_key)[:2])}) "
                                    f"carries the traffic of {', '.join(behind[:3])}")
        self.routers = set(self.reason)

    def _relayed(self, ip: str, mac: str) -> bool:
        """The MAC carried the address's frames, and another MAC carried at least as many: a
        router seen on the leg where it forwards them (a mirror that sees both legs of a routed
        packet counts it once per leg)."""
        macs = self.ip_macs.get(ip, {})
        n = macs.get(mac, 0)
        return n > 0 and any(m != mac and k >= n for m, k in macs.items())

    def own_mac(self, ip: str) -> str | None:
        """The address's MAC: its ARP/DHCP binding, else the MAC, not foreign to it, that carried
        most of its packets. A tie between MACs seen on different VLANs (a routed address seen
        once per VLAN, with no binding to tell) leaves the address in `unsure`."""
        mac = self.bound.get(ip)
        if mac is None and ip in self.ip_macs:
            # most packets; on a tie, the MAC that fronts fewer addresses
            cands = sorted(((n, -len(self.mac_ips[m]), m) for m, n in self.ip_macs[ip].items()
                            if not self.foreign(ip, m)), reverse=True)
            if len(cands) >= 2 and cands[0][:2] == cands[1][:2] and \
                    self.ip_mac_vlans.get((ip, cands[0][2])) != self.ip_mac_vlans.get((ip, cands[1][2])):
                self.unsure.add(ip)
            mac = cands[0][2] if cands else None
        self.own[ip] = mac
        return mac

    def frame_is_own(self, ip: str, mac: str | None) -> bool:
        """A frame naming `ip` carried the address's own MAC (so its VLAN is the address's)."""
        if ip in self.unsure:
            return False
        own = self.own.get(ip)
        if own is not None:
            return mac == own
        # no MAC of its own: only frames without a MAC, and only if no frame ever showed one
        return not _usable_mac(mac) and ip not in self.ip_macs


class _Builder:
    def __init__(self, result: AnalysisResult, site=None):
        self.result = result
        self.site = site
        self.assets: dict[str, Asset] = {}          # key (ip or mac) -> Asset
        self.by_ip: dict[str, Asset] = {}
        self.by_mac: dict[str, Asset] = {}
        self.client_ops: dict[str, Counter] = defaultdict(Counter)
        self.server_ops: dict[str, Counter] = defaultdict(Counter)
        self.client_apps: dict[str, set] = defaultdict(set)
        self.client_ports: dict[str, set] = defaultdict(set)   # (l4, port) each device connected to
        self.server_apps: dict[str, set] = defaultdict(set)
        self.hints: dict[str, list] = defaultdict(list)
        self.notes: list[str] = []
        self.wire = _Wire()

    # -- addresses -------------------------------------------------------------------------
    def bind_addresses(self) -> None:
        w = self.wire
        self._macs_on_the_wire()
        self._announced_bindings()
        w.find_routers()
        ips = self._cap_assets(self._device_addresses())
        for ip in sorted(ips, key=_ip_sort_key):
            mac = w.own_mac(ip)
            if mac in w.routers and w.bound.get(ip) != mac:
                mac = w.own[ip] = None
            self._place_address(ip, mac, w.routers)
        self._mark_routers()
        unsure = sorted(w.unsure & ips, key=_ip_sort_key)
        if unsure:
            self.notes.append(
                f"{plural_addresses(len(unsure))} ({', '.join(unsure[:5])}{' ...' if len(unsure) > 5 else ''}) "
                "were seen as often with one MAC address on one VLAN as with another on another VLAN "
                "(routed traffic on a mirrored trunk) and no ARP or DHCP binding says which MAC is "
                "theirs: their VLAN is left unknown")

    def _macs_on_the_wire(self) -> None:
        """Per address, the MACs its frames carried (weighted by packets) and on which VLANs;
        per MAC, its addresses."""
        w = self.wire
        for f in self.result.flows:
            for ip, mac in ((f.client, f.client_mac), (f.server, f.server_mac)):
                if _usable_mac(mac) and address_class(ip) != "skip":
                    w.ip_macs[ip][mac] += f.packets
                    w.ip_mac_vlans[(ip, mac)].add(f.vlan)
                    w.mac_ips[mac].add(ip)

    def _announced_bindings(self) -> None:
        """address -> MAC from ARP/DHCP ('address' observations); the last statement wins."""
        w = self.wire
        for o in self.result.observations:
            if o.kind == "address":
                ip, mac = o.data.get("ip"), o.data.get("mac")
                if ip and _usable_mac(mac) and address_class(ip) != "skip":
                    w.bound[ip] = mac
                    w.mac_ips[mac].add(ip)
        for ip, mac in w.bound.items():
            w.bound_ips[mac].add(ip)

    def _device_addresses(self) -> set[str]:
        w = self.wire
        ips = set(w.ip_macs) | set(w.bound)
        for f in self.result.flows:
            ips.add(f.client)
            ips.add(f.server)
        for o in self.result.observations:
            # a name resolved in DNS is not a device on the wire; an address a device announces is
            for ip in (o.src, o.dst, o.data.get("ip") if o.kind == "identity" else None):
                if ip:
                    ips.add(ip)
        return {ip for ip in ips if address_class(ip) != "skip"} - self._broadcasts()

    def _broadcasts(self) -> set[str]:
        """Addresses that are broadcasts though their text does not say so: every frame that
        named them went to a group MAC address, or (frames without MACs) the site file declares
        a network whose broadcast address they are. An address that sent anything, or that a
        binding names, is a device."""
        w = self.wire
        group: set[str] = set()
        unicast = set(w.ip_macs) | set(w.bound)
        for f in self.result.flows:
            for ip, mac, sent in ((f.client, f.client_mac, f.packets_to_server),
                                  (f.server, f.server_mac, f.packets - f.packets_to_server)):
                if sent:
                    unicast.add(ip)
                elif _group_mac(mac):
                    group.add(ip)
        for o in self.result.observations:
            if o.src:
                unicast.add(o.src)
        site_bcast = set()
        for z in getattr(self.site, "zones", None) or ():
            for n in getattr(z, "networks", ()):
                if n.version == 4 and n.prefixlen <= 30:
                    site_bcast.add(str(n.broadcast_address))
        return (group | site_bcast) - unicast

    def _cap_assets(self, ips: set[str]) -> set[str]:
        """Past MAX_ASSETS addresses, keep those with the most traffic (and say so)."""
        if len(ips) <= MAX_ASSETS:
            return ips
        weight = Counter()
        for f in self.result.flows:
            weight[f.client] += f.packets
            weight[f.server] += f.packets
        keep = {ip for ip, _ in weight.most_common(MAX_ASSETS)}
        self.notes.append(f"asset table capped at {MAX_ASSETS}: {len(ips) - len(keep)} addresses "
                          "with the least traffic were left out")
        return ips & keep

    def _place_address(self, ip: str, mac: str | None, routers: set[str]) -> None:
        """One address joins the asset of its MAC, else becomes an asset of its own.
        A router's own interfaces (ARP-bound to its MAC) stay one asset per address: each sits
        in its own zone, and zone checks must see them there."""
        asset = self.by_mac.get(mac) if mac and mac not in routers else None
        if asset is None:
            asset = Asset(ip=ip, mac=mac)
            asset.public = address_class(ip) == "public"
            self.assets[ip] = asset
            if mac and mac not in routers:
                self.by_mac[mac] = asset
        asset.ips.add(ip)
        if mac:
            asset.macs.add(mac)
        self.by_ip[ip] = asset

    def _mark_routers(self) -> None:
        """A router is its ARP-bound interfaces, or else one layer-2 asset keyed by its MAC."""
        w = self.wire
        for mac in sorted(w.routers):
            owned = [self.by_ip[ip] for ip, m in w.bound.items() if m == mac and ip in self.by_ip]
            if not owned:
                owned = [Asset(ip=None, mac=mac)]
                self.assets[mac] = owned[0]
            for a in owned:
                a.is_router = True
                a.mac = mac
                a.macs.add(mac)
                self.hints[a.key].append(("router", w.reason[mac]))
            self.by_mac[mac] = owned[0]

    def _vlan_seen(self, ip: str | None, mac: str | None, vlan: int | None, asset: Asset | None) -> None:
        """A frame on `vlan` named `ip` (or, for a layer-2 device, came from `mac`): the VLAN is
        the device's only when the frame carried its own MAC. A router's layer-2 asset is on
        every VLAN its MAC routes."""
        if vlan is None or asset is None:
            return
        if ip is None:
            if mac is not None and mac in asset.macs:
                asset.vlans.add(vlan)
        elif self.wire.frame_is_own(ip, mac):
            asset.vlans.add(vlan)
        elif mac in self.wire.routers:
            router = self.by_mac.get(mac)
            if router is not None and router.ip is None:
                router.vlans.add(vlan)

    def asset_for(self, ip: str | None, mac: str | None) -> Asset | None:
        if ip:
            a = self.by_ip.get(ip)
            if a is not None:
                return a
        if mac and _usable_mac(mac):
            a = self.by_mac.get(mac)
            if a is None:
                a = Asset(ip=None, mac=mac)
                a.macs.add(mac)
                self.assets[mac] = a
                self.by_mac[mac] = a
            return a
        return None

    # -- traffic ---------------------------------------------------------------------------
    def add_flows(self) -> None:
        for f in self.result.flows:
            c, s = self.by_ip.get(f.client), self.by_ip.get(f.server)
            for a, ts in ((c, f.first), (s, f.first), (c, f.last), (s, f.last)):
                if a is not None:
                    _seen(a, ts)
            self._vlan_seen(f.client, f.client_mac, f.vlan, c)
            self._vlan_seen(f.server, f.server_mac, f.vlan, s)
            if c is not None and s is not None:
                c.peers.add(s.key)
                s.peers.add(c.key)
            if c is not None and f.port and f.l4 in ("tcp", "udp"):
                self.client_ports[c.key].add((f.l4, f.port))
            if f.app:
                if c is not None:
                    c.protocols.add(f.app)
                    self.client_apps[c.key].add(f.app)
                if s is not None:
                    s.protocols.add(f.app)
                    self.server_apps[s.key].add(f.app)
            if f.operations and f.app in INDUSTRIAL_APPS:   # an SNMP set is no PLC change
                if c is not None:
                    self.client_ops[c.key].update(f.operations)
                if s is not None:
                    self.server_ops[s.key].update(f.operations)
            answered = f.packets > f.packets_to_server
            if s is not None and f.l4 in ("tcp", "udp") and (f.app or answered):
                key = (f.l4, f.port)
                if key not in s.services and len(s.services) < MAX_SERVICES_PER_ASSET:
                    s.services[key] = Service(f.l4, f.port, f.app)

    def add_observations(self) -> None:
        for o in self.result.observations:
            if o.kind == "address":
                self._address_seen(o)
                continue
            a = self._subject_of(o)
            if a is None:
                continue
            _seen(a, o.ts)
            if o.last_ts:
                _seen(a, o.last_ts)
            self._observed_on_vlan(o, a)
            handler = self._OBSERVATION_HANDLERS.get(o.kind)
            if handler is not None:
                handler(self, a, o)
            if o.kind in _PROTOCOL_KINDS and o.proto:
                a.protocols.add(o.proto)

    def _address_seen(self, o) -> None:
        """An ARP/DHCP binding (already applied by bind_addresses) dates the device it names, and
        puts it on the frame's VLAN when the frame itself carried the device's MAC (an ARP
        request or reply it sent; not a DHCP answer relayed from another VLAN)."""
        ip = o.data.get("ip") or ""
        a = self.by_ip.get(ip)
        if a is not None:
            _seen(a, o.ts)
            _seen(a, o.last_ts)
            if o.subject_mac == o.data.get("mac"):
                self._vlan_seen(ip, o.subject_mac, o.vlan, a)

    def _observed_on_vlan(self, o, a: Asset) -> None:
        """The VLAN of an observation's frame, for the device it is about (see _vlan_seen): by
        the address the device was found by and the MAC the frame gave that address, else (a
        layer-2 device, or an address that is no device) by the frame's MAC."""
        if o.vlan is None:
            return
        ip = o.data.get("ip") if o.kind == "hostname" and o.data.get("ip") else o.subject_ip
        if ip and self.by_ip.get(ip) is a:
            if ip in (o.src, o.dst):
                self._vlan_seen(ip, o.src_mac if ip == o.src else o.dst_mac, o.vlan, a)
            return
        self._vlan_seen(None, o.subject_mac, o.vlan, a)

    def _subject_of(self, o) -> Asset | None:
        """The asset an observation is about: a hostname or a layer-2 identity may name an address."""
        if o.kind == "hostname" and o.data.get("ip"):
            return self.by_ip.get(o.data["ip"])
        if o.kind == "identity" and o.subject_ip is None and o.data.get("ip"):
            return self._announcer(o)
        return self.asset_for(o.subject_ip, o.subject_mac)

    def _announcer(self, o) -> Asset | None:
        """A layer-2 announcement (LLDP, CDP, DCP) that gives an address names the device's own MAC."""
        a = self.by_ip.get(o.data["ip"])
        mac = o.subject_mac
        if a is not None and a.mac is None and _usable_mac(mac) and mac not in self.by_mac:
            a.mac = mac
            a.macs.add(mac)
            self.by_mac[mac] = a
            if self.wire.own.get(o.data["ip"]) is None and o.data["ip"] not in self.wire.ip_macs:
                self.wire.own[o.data["ip"]] = mac
        return a or self.asset_for(None, mac)

    def _on_identity(self, a: Asset, o) -> None:
        merge_identity(a, o.proto, o.data, o)
        d = o.data
        if d.get("user_agent"):
            _tally(a, "user_agents", str(d["user_agent"]), o)
        if d.get("mqtt_client_id"):
            _tally(a, "mqtt_client_ids", str(d["mqtt_client_id"]), o)
        for ep in d.get("endpoints") or ():
            if isinstance(ep, dict) and ep.get("url"):
                _tally(a, "opcua_endpoints", str(ep["url"]), o, port=o.subject_port or None)
        if o.data.get("role_hint"):
            self.hints[a.key].append((o.data["role_hint"], f"{o.proto} says {o.data['role_hint']}"))

    def _on_service(self, a: Asset, o) -> None:
        if o.l4 and o.subject_port:
            key = (o.l4, o.subject_port)
            svc = a.services.get(key)
            if svc is None and len(a.services) < MAX_SERVICES_PER_ASSET:
                svc = a.services[key] = Service(o.l4, o.subject_port, o.data.get("name") or o.proto)
            if svc is not None:
                svc.name = svc.name or o.data.get("name") or o.proto
                banner = o.data.get("banner") or o.data.get("software")
                if banner and not svc.banner:
                    svc.banner = str(banner)[:200]
        if o.data.get("banner"):
            _tally(a, "banners", str(o.data["banner"]), o, port=o.subject_port or None)
        a.protocols.add(o.data.get("name") or o.proto)

    def _on_hostname(self, a: Asset, o) -> None:
        if o.data.get("name"):
            a.hostnames.add(str(o.data["name"])[:255])

    def _on_role(self, a: Asset, o) -> None:
        role = o.data.get("role")
        if role:
            self.hints[a.key].append((role, o.data.get("reason") or f"{o.proto}: {role}"))

    def _on_operation(self, a: Asset, o) -> None:
        """An HTTP request names the server it asks by its Host header (a is the client)."""
        host = o.data.get("host")
        if host and o.proto == "http":
            server = self.by_ip.get(o.dst) if o.dst else None
            if server is not None:
                _tally(server, "http_hosts", str(host)[:255], o, port=o.dport or None)

    def _on_session(self, a: Asset, o) -> None:
        if o.data.get("endpoint_url"):
            _tally(a, "opcua_endpoints", str(o.data["endpoint_url"]), o, port=o.subject_port or None)

    def _on_tls(self, a: Asset, o) -> None:
        if o.data.get("sni") and o.subject == "dst":       # the server the client asked for
            _tally(a, "tls_server_names", str(o.data["sni"])[:255], o, port=o.subject_port or None)

    def _on_certificate(self, a: Asset, o) -> None:
        d = o.data
        if d.get("unparsed"):
            return
        key = d.get("fingerprint") or (d.get("subject"), d.get("issuer"), d.get("serial"))
        entry = {k: d.get(k) for k in ("subject", "issuer", "not_before", "not_after", "serial", "fingerprint",
                                       "self_signed", "position")}
        entry.update(port=o.subject_port or None, proto=o.proto, capture=o.capture, frame=o.frame)
        a.seen["certificates"].add(key, entry, o.count)

    _OBSERVATION_HANDLERS: ClassVar[dict[str, Callable]] = {
        "identity": _on_identity, "service": _on_service, "hostname": _on_hostname, "role": _on_role,
        "operation": _on_operation, "session": _on_session, "tls": _on_tls, "certificate": _on_certificate}

    # -- derived ---------------------------------------------------------------------------
    def merge_switch_ports(self) -> None:
        """A switch sends LLDP from each port's own MAC with one chassis id: one device."""
        by_chassis: dict[str, Asset] = {}
        for key, a in list(self.assets.items()):
            chassis = a.identity.get("chassis_id")
            if a.ip is not None or not isinstance(chassis, str) or not chassis:
                continue
            first = by_chassis.setdefault(chassis, a)
            if first is a:
                if not a.identity.get("name") and not _looks_like_mac(chassis):
                    a.identity["name"] = chassis
                    _derived(a, "name", "chassis_id")
                continue
            first.macs |= a.macs
            first.vlans |= a.vlans
            first.protocols |= a.protocols
            first.peers |= a.peers
            _seen(first, a.first_seen)
            _seen(first, a.last_seen)
            if "ports" not in first.identity:
                _derived(first, "ports", "port_id")
            ports = first.identity.setdefault("ports", [first.identity.get("port_id")])
            if a.identity.get("port_id") not in ports:
                ports.append(a.identity.get("port_id"))
            for mac in a.macs:
                self.by_mac[mac] = first
            del self.assets[key]

    def finish(self) -> list[Asset]:
        self.merge_switch_ports()
        out = []
        controllers = set()
        for a in self.assets.values():
            if self.server_apps[a.key] & CONTROLLER_PROTOCOLS:
                controllers.add(a.key)
        for a in self.assets.values():
            a.vendor = vendor_of_mac(a.mac) if a.mac else None
            _name_the_product(a)
            _name_the_family(a)
            if self.site is not None:
                a.declared = _declared(self.site, a)
                a.zone = _zone(self.site, a)
                _name_from_site(a)
            if a.zone is None:
                a.zone = inferred_zone(a)
            n_ctl = len(a.peers & controllers)
            lent = _lend_field_sources(a)
            a.role, a.role_reasons = infer_role(a, self.client_ops[a.key], self.server_ops[a.key],
                                                self.client_apps[a.key], self.server_apps[a.key],
                                                self.hints[a.key], n_ctl,
                                                client_ports=self.client_ports[a.key])
            _return_field_sources(a, lent)
            if self.site is not None and a.ip and _is_ews(self.site, a.ip) and not (a.declared or {}).get("role"):
                a.role, a.role_reasons = "engineering-workstation", ["listed as an engineering workstation in the site file"]
            out.append(a)
        out.sort(key=lambda a: _ip_sort_key(a.ip or "") + (a.mac or "",))
        return out


# identity keys that say how the identity was put together, not what the device is
META_KEYS = frozenset({"sources", "fingerprints", "field_sources"})


def merge_identity(a: Asset, proto: str, data: dict, obs=None) -> None:
    """First non-empty value wins per key (the earliest, most direct statement); record sources
    (the protocol in identity["sources"]; per key, the protocol, capture and frame of `obs`, the
    observation that stated it, in identity_sources). An identity read through the device (a
    CIP route to a module in its chassis) describes that module, not the device: it is kept in
    the device's list of modules."""
    if data.get("route"):
        mods = a.identity.setdefault("modules", [])
        entry = {k: v for k, v in data.items() if v not in (None, "", [], {}) and k != "role_hint"}
        if entry not in mods and len(mods) < 64:
            mods.append(entry)
            a.identity_sources.setdefault("modules", _stated(proto, obs))
        return
    for key, val in data.items():
        if key == "role_hint" or key in META_KEYS or val in (None, "", [], {}):
            continue
        if key not in a.identity:
            a.identity[key] = val
            a.identity_sources[key] = _stated(proto, obs)
    srcs = a.identity.setdefault("sources", [])
    if proto not in srcs:
        srcs.append(proto)


def _tally(a: Asset, name: str, value: str, o, port: int | None = None) -> None:
    """One more sighting of `value` in the asset's list `name` (bounded, counted)."""
    entry = {"value": value, "proto": o.proto, "capture": o.capture, "frame": o.frame}
    if port is not None:
        entry["port"] = port
    a.seen[name].add(value if port is None else (value, port), entry, o.count)


def _stated(proto: str, obs) -> dict:
    return {"via": "observation", "proto": proto, "capture": getattr(obs, "capture", None),
            "frame": getattr(obs, "frame", None)}


def _derived(a: Asset, key: str, source_key: str) -> None:
    """identity[key] was derived from identity[source_key]: its source is that key's, so marked."""
    src = a.identity_sources.get(source_key) or {}
    a.identity_sources[key] = {"via": "derived", "derived_from": source_key,
                               **{k: src[k] for k in ("proto", "capture", "frame") if src.get(k) is not None}}


def _lend_field_sources(a: Asset) -> bool:
    """The fingerprints read which protocol stated each identity field from
    identity["field_sources"] (docs/inventory-accuracy.md, "field provenance"); the contract
    carries it as Asset.identity_sources, so it is only lent to them, for infer_role."""
    if "field_sources" in a.identity:
        return False
    a.identity["field_sources"] = {k: v["proto"] for k, v in a.identity_sources.items() if v.get("proto")}
    return True


def _return_field_sources(a: Asset, lent: bool) -> None:
    """Take the lent field_sources back, and record the source of what the fingerprints added
    (identity["fingerprints"]: key -> fingerprint id)."""
    if lent:
        a.identity.pop("field_sources", None)
    for key, fp in (a.identity.get("fingerprints") or {}).items():
        if key in a.identity and key not in a.identity_sources:
            a.identity_sources[key] = {"via": "fingerprint", "fingerprint": str(fp)}


def _name_the_product(a: Asset) -> None:
    """Some protocols only give a model or a textual product code (Modbus 43/14 object 1): use it
    as the product name, so reports and advisory matching have one."""
    ident = a.identity
    if ident.get("product"):
        return
    for key in ("model", "product_code"):
        val = ident.get(key)
        if isinstance(val, str) and val.strip() and not val.strip().isdigit():
            ident["product"] = val.strip()
            _derived(a, "product", key)
            return


def _name_the_family(a: Asset) -> None:
    """The product line, from the order / catalogue number or the product name the device gave
    ("SIMATIC S7-300" from 6ES7 315-..., "CompactLogix 5370" from 1769-L33ER)."""
    if a.identity.get("family"):
        return
    found = identity_family(a.identity)
    if found:
        a.identity["family"], key = found
        _derived(a, "family", key)


def _looks_like_mac(text: str) -> bool:
    return len(text) == 17 and text.count(":") == 5


def _seen(a: Asset, ts: float | None) -> None:
    if ts is None:
        return
    if a.first_seen is None or ts < a.first_seen:
        a.first_seen = ts
    if a.last_seen is None or ts > a.last_seen:
        a.last_seen = ts


def _ip_sort_key(ip: str) -> tuple:
    try:
        a = ipaddress.ip_address(ip)
        return (a.version, int(a))
    except ValueError:
        return (9, 0)


def inferred_zone(a: Asset) -> str:
    """Without a site file: public addresses, else the VLAN, else the /24 (or /64) subnet."""
    if a.public:
        return "internet"
    if a.vlans:
        return f"vlan-{min(a.vlans)}"
    if a.ip:
        try:
            addr = ipaddress.ip_address(a.ip)
            net = ipaddress.ip_network(f"{a.ip}/{24 if addr.version == 4 else 64}", strict=False)
            return str(net)
        except ValueError:
            pass
    return "layer-2"


def _zone(site, a: Asset) -> str | None:
    """The site zone of a device: by its addresses, else by its VLAN. A public address is in a
    zone only when a network the site declares holds it; its VLAN places it nowhere."""
    ips = ([a.ip] if a.ip else []) + sorted(a.ips - {a.ip})
    vlan = min(a.vlans) if a.vlans and not a.public else None
    for ip in ips:
        z = site.zone_of(ip, None)
        if z is not None:
            return z.name
    if a.public:
        return "internet"
    if vlan is not None:
        z = site.zone_of(None, vlan)
        if z is not None:
            return z.name
    return None


def _declared(site, a: Asset):
    """The site file's entry for the device: by any of its addresses, else any of its MACs."""
    finder = getattr(site, "declared_asset", None)
    if finder is None:
        return None
    for ip in ([a.ip] if a.ip else []) + sorted(a.ips - {a.ip}):
        d = finder(ip=ip)
        if d:
            return d
    for mac in ([a.mac] if a.mac else []) + sorted(a.macs - {a.mac}):
        d = finder(mac=mac)
        if d:
            return d
    return None


def _name_from_site(a: Asset) -> None:
    """A device that announced no name of its own takes the name the site file gives it."""
    name = (a.declared or {}).get("name")
    if name and not a.identity.get("name"):
        a.identity["name"] = name
        a.identity_sources["name"] = {"via": "site file"}
        srcs = a.identity.setdefault("sources", [])
        if "site file" not in srcs:
            srcs.append("site file")


def _is_ews(site, ip: str) -> bool:
    try:
        return bool(site.is_engineering_workstation(ip))
    except AttributeError:
        return False


def build_assets(result: AnalysisResult, site=None, notes: list[str] | None = None) -> list[Asset]:
    b = _Builder(result, site)
    b.bind_addresses()
    b.add_flows()
    b.add_observations()
    assets = b.finish()
    if notes is not None:
        notes.extend(b.notes)
    return assets
