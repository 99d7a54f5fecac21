"""The address binder: which IP addresses are devices, which MAC is each address's own, which
MACs are routers', and on which VLANs a device lives (the first rules of inventory/build.py):
- an IP address is a device, unless it is multicast, broadcast or unspecified: by its text
  (net.address_class), or because every frame that named it went to a group MAC address, or
  because it is the broadcast address of a network the site file declares;
- its own MAC comes from ARP/DHCP bindings first, else from the frames that carried it, leaving
  out the MACs of routers (see _Wire.find_routers); the addresses behind a router keep no MAC;
- a VLAN belongs to an address only through frames that carry the address's own MAC;
- one MAC with a few addresses (DHCP renumbering) is one device with several addresses;
- layer-2-only devices join the IP device with the same MAC or with the address they announce,
  else stand alone keyed by MAC.
`AddressBook` holds the asset table this makes (by key, address and MAC); the builder fills in
the rest of each asset."""
from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict

from plantguard import net
from plantguard.inventory.asset import Asset
from plantguard.model import AnalysisResult
from plantguard.net import ip_sort_key  # noqa: F401 (build.py sorts assets with it)

ROUTER_MIN_IPS = 4          # distinct addresses behind one MAC that make it a router
MAX_ASSETS = 250_000


_INVENTORY_CLASS = {"public": "public", "private": "device", "other": "skip"}


def address_class(ip: str) -> str:
    """'device', 'public' or 'skip' (multicast, broadcast, unspecified, link-local noise)."""
    return _INVENTORY_CLASS[net.address_class(ip)]


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
                self.reason[mac] = (f"its MAC address (that of {', '.join(sorted(own, key=ip_sort_key)[:2])}) "
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


class AddressBook:
    """The asset table the binder makes (key -> asset, by address, by MAC), and the VLAN each frame
    naming a device gives it. `hints` (asset key -> [(role, why)]) and `notes` are the builder's:
    the binder adds its router statements and its remarks to them."""

    def __init__(self, result: AnalysisResult, site, hints: dict[str, list], notes: list[str]):
        self.result = result
        self.site = site
        self.assets: dict[str, Asset] = {}          # key (ip or mac) -> Asset
        self.by_ip: dict[str, Asset] = {}
        self.by_mac: dict[str, Asset] = {}
        self.hints = hints
        self.notes = notes
        self.wire = _Wire()

    def bind(self) -> None:
        w = self.wire
        self._macs_on_the_wire()
        self._announced_bindings()
        w.find_routers()
        ips = self._cap_assets(self._device_addresses())
        for ip in sorted(ips, key=ip_sort_key):
            mac = w.own_mac(ip)
            if mac in w.routers and w.bound.get(ip) != mac:
                mac = w.own[ip] = None
            self._place_address(ip, mac, w.routers)
        self._mark_routers()
        unsure = sorted(w.unsure & ips, key=ip_sort_key)
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
        """Past the asset limit (the run's memory budget: result.limits["max_assets"], else
        MAX_ASSETS), keep the addresses with identity or declared in the site file, then those
        with the most traffic: packets of their flows plus their layer-2/ARP/DHCP observations.
        Layer-2-only devices (no address) count against the limit too. Says so, and counts the
        addresses left out in result.counters["assets_dropped"]."""
        limit = (getattr(self.result, "limits", None) or {}).get("max_assets") or MAX_ASSETS
        l2_only = {o.subject_mac for o in self.result.observations
                   if o.subject_ip is None and o.subject_mac and not o.data.get("ip")}
        if len(ips) + len(l2_only) <= limit:
            return ips
        weight = Counter()
        for f in self.result.flows:
            weight[f.client] += f.packets
            weight[f.server] += f.packets
        must = set()
        for o in self.result.observations:
            if o.src:
                weight[o.src] += o.count
            ip = o.data.get("ip")
            if ip:
                weight[ip] += o.count
            if o.kind == "identity":
                must.add(o.subject_ip or ip)
        for a in getattr(self.site, "assets", None) or ():
            if a.get("ip"):
                must.add(str(a["ip"]))
        must &= ips
        room = max(0, limit - len(l2_only) - len(must))
        ranked = sorted(ips - must, key=lambda ip: (-weight[ip], ip_sort_key(ip)))
        keep = must | set(ranked[:room])
        dropped = len(ips) - len(keep)
        self.result.counters["assets_dropped"] = dropped
        self.notes.append(f"asset table capped at {limit:,} (memory budget; {len(l2_only):,} layer-2-only "
                          f"devices counted, devices with identity or in the site file always kept): "
                          f"assets dropped: {dropped:,} addresses with the least traffic were left out")
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

    def vlan_seen(self, ip: str | None, mac: str | None, vlan: int | None, asset: Asset | None) -> None:
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

    # -- what a frame says of the device it names ---------------------------------------------
    def observed_on_vlan(self, o, a: Asset) -> None:
        """The VLAN of an observation's frame, for the device it is about (see vlan_seen): by
        the address the device was found by and the MAC the frame gave that address, else (a
        layer-2 device, or an address that is no device) by the frame's MAC."""
        if o.vlan is None:
            return
        ip = o.data.get("ip") if o.kind == "hostname" and o.data.get("ip") else o.subject_ip
        if ip and self.by_ip.get(ip) is a:
            if ip in (o.src, o.dst):
                self.vlan_seen(ip, o.src_mac if ip == o.src else o.dst_mac, o.vlan, a)
            return
        self.vlan_seen(None, o.subject_mac, o.vlan, a)

    def subject_of(self, o) -> Asset | None:
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
