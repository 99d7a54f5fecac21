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
  address they announce, else stand alone keyed by MAC; a PROFINET station that only ever asks
  for one NameOfStation (DCP Identify), which nobody else answers to, is named by it (its
  own-name uniqueness check; identity_sources says "inferred"), a searched-for name is not; a
  station a DCP Set names, and that refused no Set, is named by it (also "inferred");
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

The address rules are inventory/addresses.py's (the address binder), the identity rules
inventory/identity.py's; this module runs them over the flows and observations and puts each
asset together (services, protocols, peers, operations, role, zone).
"""
from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import ClassVar

from plantguard.inventory.addresses import (
    MAX_ASSETS,
    ROUTER_MIN_IPS,
    AddressBook,
    address_class,
    ip_sort_key,
    plural_addresses,
)
from plantguard.inventory.asset import Asset, Service
from plantguard.inventory.identity import (
    META_KEYS,
    derived,
    inferred,
    lend_field_sources,
    merge_identity,
    name_from_site,
    name_the_family,
    name_the_product,
    record_certificate,
    record_identity,
    return_field_sources,
    tally,
)
from plantguard.inventory.roles import INDUSTRIAL_APPS, infer_role
from plantguard.inventory.vendors import vendor_of_mac
from plantguard.model import AnalysisResult
from plantguard.protocols.registry import names_with_trait

__all__ = ["CONTROLLER_PROTOCOLS", "MAX_ASSETS", "MAX_SERVICES_PER_ASSET", "META_KEYS", "ROUTER_MIN_IPS",
           "address_class", "build_assets", "inferred_zone", "merge_identity", "plural_addresses"]

MAX_SERVICES_PER_ASSET = 256
# observation kinds whose protocol the device is taken to speak
_PROTOCOL_KINDS = frozenset({"identity", "service", "role", "session", "tls", "certificate"})

CONTROLLER_PROTOCOLS = names_with_trait("controller-server")  # whose servers count as controllers


class _Builder:
    def __init__(self, result: AnalysisResult, site=None):
        self.result = result
        self.site = site
        self.client_ops: dict[str, Counter] = defaultdict(Counter)
        self.server_ops: dict[str, Counter] = defaultdict(Counter)
        self.client_apps: dict[str, set] = defaultdict(set)
        self.client_ports: dict[str, set] = defaultdict(set)   # (l4, port) each device connected to
        self.server_apps: dict[str, set] = defaultdict(set)
        self.hints: dict[str, list] = defaultdict(list)
        self.dcp_asked: dict[str, dict] = defaultdict(dict)     # MAC -> NameOfStation it asked for -> obs
        self.dcp_named: dict[str, set] = defaultdict(set)       # NameOfStation -> MACs that answer to it
        self.dcp_set: dict[str, tuple] = {}                     # MAC -> (NameOfStation a DCP Set gave it, obs)
        self.dcp_refused: set[str] = set()                      # MACs that refused a DCP Set
        self.notes: list[str] = []
        self.book = AddressBook(result, site, self.hints, self.notes)
        self.assets = self.book.assets          # key (ip or mac) -> Asset
        self.by_ip = self.book.by_ip
        self.by_mac = self.book.by_mac

    def bind_addresses(self) -> None:
        self.book.bind()

    # -- traffic ---------------------------------------------------------------------------
    def add_flows(self) -> None:
        for f in self.result.flows:
            c, s = self.by_ip.get(f.client), self.by_ip.get(f.server)
            for a, ts in ((c, f.first), (s, f.first), (c, f.last), (s, f.last)):
                if a is not None:
                    _seen(a, ts)
            self.book.vlan_seen(f.client, f.client_mac, f.vlan, c)
            self.book.vlan_seen(f.server, f.server_mac, f.vlan, s)
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
            a = self.book.subject_of(o)
            if a is None:
                continue
            _seen(a, o.ts)
            if o.last_ts:
                _seen(a, o.last_ts)
            self.book.observed_on_vlan(o, a)
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
                self.book.vlan_seen(ip, o.subject_mac, o.vlan, a)

    def _on_identity(self, a: Asset, o) -> None:
        record_identity(a, o)
        if o.proto == "profinet" and o.data.get("name") and o.subject_mac:
            self.dcp_named[str(o.data["name"])].add(o.subject_mac)
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
            tally(a, "banners", str(o.data["banner"]), o, port=o.subject_port or None)
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
        asked = o.data.get("name_of_station")
        if asked and o.proto == "profinet" and o.data.get("code") == "dcp-identify" and o.src_mac \
                and len(self.dcp_asked[o.src_mac]) < 8:
            self.dcp_asked[o.src_mac].setdefault(str(asked), o)
        if asked and o.proto == "profinet" and o.data.get("code") == "dcp-set" and o.dst_mac \
                and len(self.dcp_set) < 4096:
            self.dcp_set[o.dst_mac] = (str(asked), o)      # the last name given is the one it has
        host = o.data.get("host")
        if host and o.proto == "http":
            server = self.by_ip.get(o.dst) if o.dst else None
            if server is not None:
                tally(server, "http_hosts", str(host)[:255], o, port=o.dport or None)

    def _on_session(self, a: Asset, o) -> None:
        if o.data.get("endpoint_url"):
            tally(a, "opcua_endpoints", str(o.data["endpoint_url"]), o, port=o.subject_port or None)

    def _on_tls(self, a: Asset, o) -> None:
        if o.data.get("sni") and o.subject == "dst":       # the server the client asked for
            tally(a, "tls_server_names", str(o.data["sni"])[:255], o, port=o.subject_port or None)

    def _on_certificate(self, a: Asset, o) -> None:
        record_certificate(a, o)

    def _on_error(self, a: Asset, o) -> None:
        """A station that refused a DCP Set keeps no name from a Set."""
        if o.proto == "profinet" and str(o.data.get("name") or "").startswith("DCP Set refused") and o.src_mac:
            self.dcp_refused.add(o.src_mac)

    _OBSERVATION_HANDLERS: ClassVar[dict[str, Callable]] = {
        "identity": _on_identity, "service": _on_service, "hostname": _on_hostname, "role": _on_role,
        "operation": _on_operation, "session": _on_session, "tls": _on_tls, "certificate": _on_certificate,
        "error": _on_error}

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
                    derived(a, "name", "chassis_id")
                continue
            first.macs |= a.macs
            first.vlans |= a.vlans
            first.protocols |= a.protocols
            first.peers |= a.peers
            _seen(first, a.first_seen)
            _seen(first, a.last_seen)
            if "ports" not in first.identity:
                derived(first, "ports", "port_id")
            ports = first.identity.setdefault("ports", [first.identity.get("port_id")])
            if a.identity.get("port_id") not in ports:
                ports.append(a.identity.get("port_id"))
            for mac in a.macs:
                self.by_mac[mac] = first
            del self.assets[key]

    def name_by_dcp_set(self) -> None:
        """A station a DCP Set named (NameOfStation block), and that did not refuse a Set, is
        called that name, unless it announced one itself (the first statement wins)."""
        for mac, (name, o) in self.dcp_set.items():
            if mac in self.dcp_refused:
                continue
            a = self.book.asset_for(None, mac)
            if a is None or a.identity.get("name"):
                continue
            inferred(a, "name", name, o, "assigned by a DCP Set the station did not refuse")

    def name_by_own_search(self) -> None:
        """A PROFINET station checks that its NameOfStation is unique by asking for it (DCP
        Identify filtered on its own name, every minute on SCALANCE switches): a MAC that only
        ever asks for one name, which no other station answers to, is taken to be called that,
        unless it already has a name or acts as an IO controller / supervisor (who search for
        the names of their devices). A MAC asking for several names is searching: none is its."""
        for mac, asked in self.dcp_asked.items():
            if len(asked) != 1:
                continue
            (name, o), = asked.items()
            a = self.by_mac.get(mac)
            if a is None or a.identity.get("name") or self.dcp_named.get(name, set()) - {mac}:
                continue
            if any(role in ("io-controller", "io-supervisor") for role, _ in self.hints[a.key]):
                continue
            inferred(a, "name", name, o, "the only NameOfStation this station asks for in DCP Identify "
                                         "(its own-name check)")

    def finish(self) -> list[Asset]:
        self.name_by_dcp_set()
        self.name_by_own_search()
        self.merge_switch_ports()
        out = []
        controllers = set()
        for a in self.assets.values():
            if self.server_apps[a.key] & CONTROLLER_PROTOCOLS:
                controllers.add(a.key)
        for a in self.assets.values():
            a.vendor = vendor_of_mac(a.mac) if a.mac else None
            name_the_product(a)
            name_the_family(a)
            if self.site is not None:
                a.declared = _declared(self.site, a)
                a.zone = _zone(self.site, a)
                name_from_site(a)
            if a.zone is None:
                a.zone = inferred_zone(a)
            n_ctl = len(a.peers & controllers)
            lent = lend_field_sources(a)
            a.role, a.role_reasons = infer_role(a, self.client_ops[a.key], self.server_ops[a.key],
                                                self.client_apps[a.key], self.server_apps[a.key],
                                                self.hints[a.key], n_ctl,
                                                client_ports=self.client_ports[a.key])
            return_field_sources(a, lent)
            if self.site is not None and a.ip and _is_ews(self.site, a.ip) and not (a.declared or {}).get("role"):
                a.role, a.role_reasons = "engineering-workstation", ["listed as an engineering workstation in the site file"]
            out.append(a)
        out.sort(key=lambda a: ip_sort_key(a.ip or "") + (a.mac or "",))
        return out


def _looks_like_mac(text: str) -> bool:
    return len(text) == 17 and text.count(":") == 5


def _seen(a: Asset, ts: float | None) -> None:
    if ts is None:
        return
    if a.first_seen is None or ts < a.first_seen:
        a.first_seen = ts
    if a.last_seen is None or ts > a.last_seen:
        a.last_seen = ts


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
