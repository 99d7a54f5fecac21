"""The site model (ARCHITECTURE §4): zones, conduits, egress rules, authorised engineering
stations, the declared inventory, maintenance windows and attestations, loaded from site.yaml.

Every problem in a site file is reported as one sentence naming the file, the line and the field:
    site.yaml:7: zones[1].networks[0]: '10.10.2.0/33' is not an IP network
The YAML is composed into nodes (which carry line numbers) and validated here, field by field, so
the message can point at the exact line. Scalars are read from their raw text, which sidesteps
YAML 1.1 surprises (`08:00` as a base-60 number, `no` as a boolean).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import yaml

ZONE_KINDS = ("it", "guest", "dmz", "ot-control", "ot-sensing", "ot-safety", "ot-supervisory")
OT_ZONE_KINDS = frozenset({"ot-control", "ot-sensing", "ot-safety", "ot-supervisory"})
IT_ZONE_KINDS = frozenset({"it", "guest"})
ORGANIZATION_SIZES = ("small", "medium", "large")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS = {"daily": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:]}
CRITICALITIES = ("low", "medium", "high", "critical")
ATTESTATION_STATUSES = ("yes", "no", "partial")
ATTESTATION_IDS = ("usb_ports_disabled", "unused_ethernet_ports_disabled", "secure_boot",
                   "hardware_root_of_trust", "incident_response_plan", "patch_schedule",
                   "sbom_procurement_clause", "mssp_or_soc", "backups_tested", "security_training",
                   "remote_access_mfa")
ASSET_ROLES = ("plc", "rtu", "hmi", "engineering-workstation", "historian", "sensor", "gateway",
               "io-device", "drive", "safety-controller", "ied", "broker", "scada-server", "switch",
               "router", "firewall", "wireless-ap", "server", "workstation", "it-host", "printer",
               "camera", "internet-host", "unknown")

# Names an `allow` entry may use besides the protocol modules' own NAMEs, with their usual ports.
COMMON_PROTOCOLS: dict[str, tuple[tuple[str, int], ...]] = {
    "http": (("tcp", 80), ("tcp", 8080)), "https": (("tcp", 443), ("tcp", 8443)),
    "ssh": (("tcp", 22),), "telnet": (("tcp", 23),), "ftp": (("tcp", 21),), "tftp": (("udp", 69),),
    "snmp": (("udp", 161), ("udp", 162)), "dns": (("udp", 53), ("tcp", 53)), "ntp": (("udp", 123),),
    "syslog": (("udp", 514), ("tcp", 514), ("tcp", 6514)), "rdp": (("tcp", 3389),),
    "vnc": (("tcp", 5900),), "smb": (("tcp", 445),), "ldap": (("tcp", 389),), "ldaps": (("tcp", 636),),
    "dhcp": (("udp", 67), ("udp", 68)), "tls": (("tcp", 443),), "mqtt": (("tcp", 1883),),
    "mqtts": (("tcp", 8883),), "modbus": (("tcp", 502),), "s7comm": (("tcp", 102),),
    "enip": (("tcp", 44818), ("udp", 44818), ("udp", 2222)), "dnp3": (("tcp", 20000), ("udp", 20000)),
    "bacnet": (("udp", 47808),), "opcua": (("tcp", 4840),), "iec104": (("tcp", 2404),),
    "profinet": (("udp", 34964),), "icmp": (),
}
# Names that mean "TLS on this port": they match by port whatever the flow's application says.
PORT_ONLY_NAMES = frozenset({"https", "mqtts", "ldaps"})

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_NODES = 200_000


class SiteError(ValueError):
    """A site file problem, as one line: 'FILE:LINE: field: problem'."""


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowRule:
    """One `allow` entry of a conduit: tcp/PORT, udp/PORT (or PORT-PORT), a protocol name or any."""
    text: str
    l4: str | None = None          # for tcp/udp port rules
    ports: tuple[int, int] | None = None
    name: str | None = None        # protocol name

    def matches(self, l4: str, port: int, app: str | None) -> bool:
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
    name: str
    kind: str
    networks: list = field(default_factory=list)   # ipaddress networks
    vlans: list[int] = field(default_factory=list)
    description: str = ""
    line: int = 0

    @property
    def is_ot(self) -> bool:
        return self.kind in OT_ZONE_KINDS

    @property
    def is_it(self) -> bool:
        return self.kind in IT_ZONE_KINDS


@dataclass
class Conduit:
    src: str
    dst: str
    allow: list[AllowRule] = field(default_factory=list)
    bidirectional: bool = False
    description: str = ""
    line: int = 0

    def allows(self, l4: str, port: int, app: str | None) -> bool:
        return any(r.matches(l4, port, app) for r in self.allow)


@dataclass
class Egress:
    zone: str
    allow: list = field(default_factory=list)      # ipaddress networks
    line: int = 0


@dataclass
class Window:
    name: str
    days: list[str]
    start: str                  # "HH:MM", site local time
    hours: float
    zones: list[str] = field(default_factory=list)   # empty = all zones
    line: int = 0

    def contains(self, ts: float, tz=timezone.utc) -> bool:
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
        return self._by_name.get(name)

    def zone_of(self, ip: str | None, vlan: int | None = None) -> Zone | None:
        """The zone an address belongs to: by network, else by VLAN when one zone owns it."""
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
        if vlan is not None:
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
        hit = self._ews_cache.get(ip)
        if hit is None:
            addr = _address(ip)
            hit = addr is not None and any(addr.version == n.version and addr in n for n in self._ews)
            if len(self._ews_cache) < 1_000_000:
                self._ews_cache[ip] = hit
        return hit

    def declared_asset(self, ip: str | None = None, mac: str | None = None) -> dict | None:
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


def protocol_names() -> set[str]:
    """Protocol names an `allow` entry may use: the protocol modules' NAMEs plus common names."""
    names = set(COMMON_PROTOCOLS)
    try:
        from plantguard.protocols.registry import protocol_modules
        names |= {m.NAME for m in protocol_modules()}
    except Exception:  # a broken protocol module must not make every site file invalid
        pass
    return names


def _ports_of(name: str) -> set[tuple[str, int]]:
    ports = set(COMMON_PROTOCOLS.get(name, ()))
    try:
        from plantguard.protocols.registry import by_name
        m = by_name(name)
    except Exception:
        m = None
    if m is not None:
        ports |= {("tcp", p) for p in getattr(m, "TCP_PORTS", ())}
        ports |= {("udp", p) for p in getattr(m, "UDP_PORTS", ())}
    return ports


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------

def declared_site(site) -> "Site | None":
    """The site when it comes from a site file; None when absent or inferred from traffic."""
    return site if site is not None and not getattr(site, "inferred", False) else None


def load_site(path) -> Site:
    """Read and validate a site file. Raises SiteError (one line: FILE:LINE: field: problem);
    OSError when the file cannot be read."""
    p = Path(path)
    data = p.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise SiteError(f"{path}:1: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SiteError(f"{path}:{line}: file is not UTF-8 text") from None
    return parse_site(text, str(path), base_dir=p.parent)


def parse_site(text: str, filename: str = "site.yaml", base_dir: Path | None = None) -> Site:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise SiteError(f"{filename}:{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SiteError(f"{filename}:1: invalid YAML: {str(exc).splitlines()[0]}") from None
    if root is None:
        raise SiteError(f"{filename}:1: the site file is empty")
    return _Validator(filename, base_dir).site(root)


_PORT_RULE = re.compile(r"^(tcp|udp)/(\d{1,5})(?:-(\d{1,5}))?$")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$", re.I)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

TOP_KEYS = ("site", "organization_size", "timezone", "description", "zones", "conduits", "egress",
            "engineering_workstations", "assets", "maintenance_windows", "attestations", "sboms",
            "remote_access")


class _Validator:
    def __init__(self, filename: str, base_dir: Path | None):
        self.fname = filename
        self.base_dir = base_dir
        self.nodes = 0

    # -- primitives ----------------------------------------------------------------------------
    def fail(self, node, path: str, problem: str) -> SiteError:
        line = node.start_mark.line + 1 if node is not None and node.start_mark else 1
        where = f"{path}: " if path else ""
        return SiteError(f"{self.fname}:{line}: {where}{problem}")

    def _count(self, node) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, "", f"too many entries (more than {MAX_NODES:,})")

    def mapping(self, node, path: str, allowed: Iterable[str], required: Iterable[str] = ()):
        self._count(node)
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path, f"expected a mapping (key: value), found {_kind(node)}")
        allowed = tuple(allowed)
        out: dict[str, tuple] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise self.fail(knode, path, "keys must be plain names")
            key = knode.value
            sub = f"{path}.{key}" if path else key
            if key not in allowed:
                hint = _closest(key, allowed)
                raise self.fail(knode, sub, "unknown key" + (f" (did you mean '{hint}'?)" if hint else
                                                             f"; allowed keys: {', '.join(allowed)}"))
            if key in out:
                raise self.fail(knode, sub, f"duplicate key (first given on line {out[key][0].start_mark.line + 1})")
            out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                raise self.fail(node, path, f"missing required key '{key}'")
        return out

    def seq(self, node, path: str, allow_scalar: bool = False) -> list:
        self._count(node)
        if allow_scalar and isinstance(node, yaml.ScalarNode) and node.value != "":
            return [node]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, path, f"expected a list, found {_kind(node)}")
        return list(node.value)

    def text(self, node, path: str, allow_empty: bool = False, max_len: int = 1000) -> str:
        self._count(node)
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, f"expected a value, found {_kind(node)}")
        value = node.value.strip()
        if not value and not allow_empty:
            raise self.fail(node, path, "must not be empty")
        if len(value) > max_len:
            raise self.fail(node, path, f"is longer than {max_len} characters")
        return value

    def choice(self, node, path: str, choices: Iterable[str]) -> str:
        value = self.text(node, path).lower()
        choices = tuple(choices)
        if value not in choices:
            raise self.fail(node, path, f"'{node.value}' is not one of {', '.join(choices)}")
        return value

    def integer(self, node, path: str, lo: int, hi: int, what: str = "a whole number") -> int:
        value = self.text(node, path)
        try:
            n = int(value, 10)
        except ValueError:
            raise self.fail(node, path, f"'{value}' is not {what}") from None
        if not lo <= n <= hi:
            raise self.fail(node, path, f"{n} is not {what} between {lo} and {hi}")
        return n

    def boolean(self, node, path: str) -> bool:
        value = self.text(node, path).lower()
        if value in ("true", "yes", "on"):
            return True
        if value in ("false", "no", "off"):
            return False
        raise self.fail(node, path, f"'{node.value}' is not true or false")

    def network(self, node, path: str, strict: bool = True):
        value = self.text(node, path)
        try:
            return ipaddress.ip_network(value, strict=True)
        except ValueError:
            pass
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise self.fail(node, path, f"'{value}' is not an IP network") from None
        if strict:
            raise self.fail(node, path, f"'{value}' has host bits set (did you mean {net}?)")
        return net

    def address_or_network(self, node, path: str) -> str:
        value = self.text(node, path)
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        return str(self.network(node, path))

    def address(self, node, path: str) -> str:
        value = self.text(node, path)
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise self.fail(node, path, f"'{value}' is not an IP address") from None

    def zone_ref(self, node, path: str, zones: dict) -> str:
        name = self.text(node, path)
        if name not in zones:
            known = ", ".join(zones) or "none declared"
            raise self.fail(node, path, f"'{name}' is not a zone of this site (zones: {known})")
        return name

    # -- the document ----------------------------------------------------------------------------
    def site(self, root) -> Site:
        top = self.mapping(root, "", TOP_KEYS)
        get = lambda k: top[k][1] if k in top else None  # noqa: E731
        kw: dict[str, Any] = {"name": None, "path": self.fname}
        if get("site") is not None:
            kw["name"] = self.text(get("site"), "site", max_len=200)
        elif self.base_dir is not None:
            kw["name"] = Path(self.fname).stem
        if get("organization_size") is not None:
            kw["organization_size"] = self.choice(get("organization_size"), "organization_size", ORGANIZATION_SIZES)
        if get("timezone") is not None:
            kw["timezone"] = self.timezone(get("timezone"))
        if get("description") is not None:
            kw["description"] = self.text(get("description"), "description", allow_empty=True, max_len=5000)
        zones = self.zones(get("zones")) if get("zones") is not None else []
        by_name = {z.name: z for z in zones}
        kw["zones"] = zones
        if get("conduits") is not None:
            kw["conduits"] = self.conduits(get("conduits"), by_name)
        if get("egress") is not None:
            kw["egress"] = self.egress(get("egress"), by_name)
        if get("engineering_workstations") is not None:
            node = get("engineering_workstations")
            kw["engineering_workstations"] = [
                self.address_or_network(n, f"engineering_workstations[{i}]")
                for i, n in enumerate(self.seq(node, "engineering_workstations", allow_scalar=True))]
        if get("assets") is not None:
            kw["assets"] = self.assets(get("assets"), by_name)
        if get("maintenance_windows") is not None:
            kw["maintenance_windows"] = self.windows(get("maintenance_windows"), by_name)
        if get("attestations") is not None:
            kw["attestations"] = self.attestations(get("attestations"))
        if get("sboms") is not None:
            kw["sboms"] = self.sboms(get("sboms"))
        if get("remote_access") is not None:
            kw["remote_access"] = self.remote_access(get("remote_access"))
        return Site(**kw)

    def timezone(self, node) -> str:
        name = self.text(node, "timezone")
        try:
            _tzinfo(name)
        except Exception:
            raise self.fail(node, "timezone", f"'{name}' is not a known time zone "
                                              "(use an IANA name such as Europe/Berlin, or UTC+02:00)") from None
        return name

    def zones(self, node) -> list[Zone]:
        zones: list[Zone] = []
        seen_nets: list[tuple] = []   # (network, zone name, line)
        for i, zn in enumerate(self.seq(node, "zones")):
            p = f"zones[{i}]"
            m = self.mapping(zn, p, ("name", "kind", "networks", "vlans", "description"), ("name", "kind"))
            name = self.text(m["name"][1], f"{p}.name")
            if not _NAME.match(name):
                raise self.fail(m["name"][1], f"{p}.name", f"'{name}' is not a valid zone name "
                                "(letters, digits, '.', '_' or '-', up to 64 characters)")
            for z in zones:
                if z.name == name:
                    raise self.fail(m["name"][1], f"{p}.name", f"zone '{name}' is already declared on line {z.line}")
            kind = self.choice(m["kind"][1], f"{p}.kind", ZONE_KINDS)
            zone = Zone(name, kind, line=zn.start_mark.line + 1)
            if "networks" in m:
                for j, nn in enumerate(self.seq(m["networks"][1], f"{p}.networks", allow_scalar=True)):
                    np_ = f"{p}.networks[{j}]"
                    net = self.network(nn, np_)
                    for other, oname, oline in seen_nets:
                        if other.version == net.version and net.overlaps(other):
                            whose = "of the same zone" if oname == name else f"of zone '{oname}'"
                            raise self.fail(nn, np_, f"{net} overlaps {other} {whose} (line {oline})")
                    seen_nets.append((net, name, nn.start_mark.line + 1))
                    zone.networks.append(net)
            if "vlans" in m:
                for j, vn in enumerate(self.seq(m["vlans"][1], f"{p}.vlans", allow_scalar=True)):
                    v = self.integer(vn, f"{p}.vlans[{j}]", 0, 4095, "a VLAN ID")
                    if v not in zone.vlans:
                        zone.vlans.append(v)
            if not zone.networks and not zone.vlans:
                raise self.fail(zn, p, f"zone '{name}' needs at least one network or VLAN")
            if "description" in m:
                zone.description = self.text(m["description"][1], f"{p}.description", allow_empty=True)
            zones.append(zone)
        return zones

    def allow_rule(self, node, path: str, names: set[str]) -> AllowRule:
        raw = self.text(node, path)
        value = raw.lower()
        if value == "any":
            return AllowRule("any")
        m = _PORT_RULE.match(value)
        if m:
            lo = int(m.group(2))
            hi = int(m.group(3)) if m.group(3) else lo
            if not (1 <= lo <= 65535 and 1 <= hi <= 65535) or hi < lo:
                raise self.fail(node, path, f"'{raw}' is not a valid port (1-65535, or a range LOW-HIGH)")
            return AllowRule(value, m.group(1), (lo, hi))
        if value in names:
            return AllowRule(value, name=value)
        if "/" in value:
            raise self.fail(node, path, f"'{raw}' is not tcp/PORT or udp/PORT")
        hint = _closest(value, names)
        raise self.fail(node, path, f"'{raw}' is not tcp/PORT, udp/PORT, any or a known protocol name"
                        + (f" (did you mean '{hint}'?)" if hint else ""))

    def conduits(self, node, zones: dict) -> list[Conduit]:
        names = protocol_names()
        out = []
        for i, cn in enumerate(self.seq(node, "conduits")):
            p = f"conduits[{i}]"
            m = self.mapping(cn, p, ("from", "to", "allow", "bidirectional", "description"),
                             ("from", "to", "allow"))
            src = self.zone_ref(m["from"][1], f"{p}.from", zones)
            dst = self.zone_ref(m["to"][1], f"{p}.to", zones)
            if src == dst:
                raise self.fail(m["to"][1], f"{p}.to", "a conduit joins two different zones "
                                "(traffic inside a zone is always allowed)")
            rules = [self.allow_rule(an, f"{p}.allow[{j}]", names)
                     for j, an in enumerate(self.seq(m["allow"][1], f"{p}.allow", allow_scalar=True))]
            if not rules:
                raise self.fail(m["allow"][1], f"{p}.allow", "must list at least one entry")
            c = Conduit(src, dst, rules, line=cn.start_mark.line + 1)
            if "bidirectional" in m:
                c.bidirectional = self.boolean(m["bidirectional"][1], f"{p}.bidirectional")
            if "description" in m:
                c.description = self.text(m["description"][1], f"{p}.description", allow_empty=True)
            out.append(c)
        return out

    def egress(self, node, zones: dict) -> list[Egress]:
        out: list[Egress] = []
        for i, en in enumerate(self.seq(node, "egress")):
            p = f"egress[{i}]"
            m = self.mapping(en, p, ("zone", "allow", "description"), ("zone",))
            zone = self.zone_ref(m["zone"][1], f"{p}.zone", zones)
            for e in out:
                if e.zone == zone:
                    raise self.fail(m["zone"][1], f"{p}.zone", f"zone '{zone}' already has an egress rule on line {e.line}")
            allow = []
            if "allow" in m:
                for j, an in enumerate(self.seq(m["allow"][1], f"{p}.allow", allow_scalar=True)):
                    allow.append(_network(self.address_or_network(an, f"{p}.allow[{j}]")))
            out.append(Egress(zone, allow, en.start_mark.line + 1))
        return out

    def assets(self, node, zones: dict) -> list[dict]:
        keys = ("ip", "mac", "name", "role", "vendor", "product", "model", "firmware", "serial",
                "criticality", "sbom", "zone", "notes")
        out: list[dict] = []
        ips: dict[str, int] = {}
        macs: dict[str, int] = {}
        for i, an in enumerate(self.seq(node, "assets")):
            p = f"assets[{i}]"
            m = self.mapping(an, p, keys)
            if "ip" not in m and "mac" not in m:
                raise self.fail(an, p, "an asset needs an 'ip' or a 'mac'")
            line = an.start_mark.line + 1
            a: dict[str, Any] = {}
            if "ip" in m:
                a["ip"] = self.address(m["ip"][1], f"{p}.ip")
                if a["ip"] in ips:
                    raise self.fail(m["ip"][1], f"{p}.ip", f"{a['ip']} is already declared on line {ips[a['ip']]}")
                ips[a["ip"]] = line
            if "mac" in m:
                mac = self.text(m["mac"][1], f"{p}.mac")
                if not _MAC.match(mac):
                    raise self.fail(m["mac"][1], f"{p}.mac", f"'{mac}' is not a MAC address (aa:bb:cc:dd:ee:ff)")
                a["mac"] = mac.lower().replace("-", ":")
                if a["mac"] in macs:
                    raise self.fail(m["mac"][1], f"{p}.mac", f"{a['mac']} is already declared on line {macs[a['mac']]}")
                macs[a["mac"]] = line
            if "role" in m:
                a["role"] = self.choice(m["role"][1], f"{p}.role", ASSET_ROLES)
            if "criticality" in m:
                a["criticality"] = self.choice(m["criticality"][1], f"{p}.criticality", CRITICALITIES)
            if "zone" in m:
                a["zone"] = self.zone_ref(m["zone"][1], f"{p}.zone", zones)
            for k in ("name", "vendor", "product", "model", "firmware", "serial", "notes"):
                if k in m:
                    a[k] = self.text(m[k][1], f"{p}.{k}", allow_empty=True)
            if "sbom" in m:
                a["sbom"] = self._path(self.text(m["sbom"][1], f"{p}.sbom"))
            out.append(a)
        return out

    def windows(self, node, zones: dict) -> list[Window]:
        out = []
        for i, wn in enumerate(self.seq(node, "maintenance_windows")):
            p = f"maintenance_windows[{i}]"
            m = self.mapping(wn, p, ("name", "days", "start", "hours", "zones", "description"),
                             ("days", "start", "hours"))
            name = self.text(m["name"][1], f"{p}.name") if "name" in m else f"window {i + 1}"
            days: list[str] = []
            dnode = m["days"][1]
            if isinstance(dnode, yaml.ScalarNode) and dnode.value.lower() in DAY_GROUPS:
                days = list(DAY_GROUPS[dnode.value.lower()])
            else:
                for j, d in enumerate(self.seq(dnode, f"{p}.days", allow_scalar=True)):
                    day = self.text(d, f"{p}.days[{j}]").lower()[:3]
                    if day not in DAYS:
                        raise self.fail(d, f"{p}.days[{j}]", f"'{d.value}' is not a day "
                                        "(mon, tue, wed, thu, fri, sat, sun, or daily / weekdays / weekends)")
                    if day not in days:
                        days.append(day)
            if not days:
                raise self.fail(dnode, f"{p}.days", "must list at least one day")
            start = self.text(m["start"][1], f"{p}.start")
            sm = _HHMM.match(start)
            if not sm:
                raise self.fail(m["start"][1], f"{p}.start", f"'{start}' is not a time of day HH:MM (quote it: \"02:00\")")
            start = f"{int(sm.group(1)):02d}:{sm.group(2)}"
            hours_text = self.text(m["hours"][1], f"{p}.hours")
            try:
                hours = float(hours_text)
            except ValueError:
                raise self.fail(m["hours"][1], f"{p}.hours", f"'{hours_text}' is not a number of hours") from None
            if not 0 < hours <= 168:
                raise self.fail(m["hours"][1], f"{p}.hours", f"{hours_text} is not between 0 and 168 hours")
            wzones = []
            if "zones" in m:
                wzones = [self.zone_ref(z, f"{p}.zones[{j}]", zones)
                          for j, z in enumerate(self.seq(m["zones"][1], f"{p}.zones", allow_scalar=True))]
            out.append(Window(name, days, start, hours, wzones, wn.start_mark.line + 1))
        return out

    def attestations(self, node) -> dict[str, Attestation]:
        out: dict[str, Attestation] = {}
        m = self.mapping(node, "attestations", ATTESTATION_IDS)
        for key, (knode, vnode) in m.items():
            p = f"attestations.{key}"
            att = Attestation(key, "no", line=knode.start_mark.line + 1)
            if isinstance(vnode, yaml.ScalarNode):
                att.status = self.status(vnode, p)
            else:
                fm = self.mapping(vnode, p, ("status", "evidence", "date", "note"), ("status",))
                att.status = self.status(fm["status"][1], f"{p}.status")
                if "evidence" in fm:
                    att.evidence = self.text(fm["evidence"][1], f"{p}.evidence", allow_empty=True)
                if "note" in fm:
                    att.note = self.text(fm["note"][1], f"{p}.note", allow_empty=True)
                if "date" in fm:
                    att.date = self.date(fm["date"][1], f"{p}.date")
            out[key] = att
        return out

    def status(self, node, path: str) -> str:
        value = self.text(node, path).lower()
        value = {"true": "yes", "on": "yes", "false": "no", "off": "no"}.get(value, value)
        if value not in ATTESTATION_STATUSES:
            raise self.fail(node, path, f"'{node.value}' is not one of yes, no, partial")
        return value

    def date(self, node, path: str) -> str:
        value = self.text(node, path)
        try:
            if not _DATE.match(value):
                raise ValueError
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise self.fail(node, path, f"'{value}' is not a date YYYY-MM-DD") from None
        return value

    def sboms(self, node) -> list[dict]:
        out = []
        for i, sn in enumerate(self.seq(node, "sboms")):
            p = f"sboms[{i}]"
            m = self.mapping(sn, p, ("file", "asset", "product", "description"), ("file",))
            entry: dict[str, Any] = {"file": self._path(self.text(m["file"][1], f"{p}.file"))}
            if "asset" not in m and "product" not in m:
                raise self.fail(sn, p, "an SBOM entry needs 'asset' (an IP or asset name) or 'product'")
            for k in ("asset", "product", "description"):
                if k in m:
                    entry[k] = self.text(m[k][1], f"{p}.{k}")
            out.append(entry)
        return out

    def remote_access(self, node) -> list[RemoteAccess]:
        out = []
        for i, rn in enumerate(self.seq(node, "remote_access")):
            p = f"remote_access[{i}]"
            m = self.mapping(rn, p, ("name", "host", "peers", "mfa", "vendor", "description"),
                             ("name", "host"))
            ra = RemoteAccess(self.text(m["name"][1], f"{p}.name"),
                              self.address_or_network(m["host"][1], f"{p}.host"),
                              line=rn.start_mark.line + 1)
            if "peers" in m:
                ra.peers = [_network(self.address_or_network(x, f"{p}.peers[{j}]"))
                            for j, x in enumerate(self.seq(m["peers"][1], f"{p}.peers", allow_scalar=True))]
            if "mfa" in m:
                ra.mfa = self.boolean(m["mfa"][1], f"{p}.mfa")
            if "vendor" in m:
                ra.vendor = self.text(m["vendor"][1], f"{p}.vendor")
            if "description" in m:
                ra.description = self.text(m["description"][1], f"{p}.description", allow_empty=True)
            out.append(ra)
        return out

    def _path(self, text: str) -> str:
        p = Path(text)
        if not p.is_absolute() and self.base_dir is not None:
            p = self.base_dir / p
        return str(p)


def _kind(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node is None or node.tag.endswith(":null"):
        return "nothing"
    return f"'{node.value}'"


def _closest(word: str, choices: Iterable[str]) -> str | None:
    import difflib
    hit = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return hit[0] if hit else None


# --------------------------------------------------------------------------------------------
# JSON Schema (for editors: data/site.schema.json is this, written out)
# --------------------------------------------------------------------------------------------

def site_schema() -> dict:
    """A JSON Schema of the site file, for editor completion and linting. The validator above
    remains the authority (it also checks overlaps, references between sections and ports)."""
    s = {"type": "string"}
    ip_or_net = {"type": "string", "description": "IP address or network (CIDR)"}
    names = sorted(COMMON_PROTOCOLS)

    def obj(props: dict, required=()) -> dict:
        return {"type": "object", "additionalProperties": False, "properties": props,
                "required": list(required)}

    def lst(item) -> dict:
        return {"type": "array", "items": item}

    allow = {"anyOf": [{"type": "string", "pattern": r"^(?i:(tcp|udp)/\d{1,5}(-\d{1,5})?)$"},
                       {"enum": ["any"] + names}, s]}
    status = {"enum": list(ATTESTATION_STATUSES) + [True, False]}
    attestation = {"anyOf": [status, obj({"status": status, "evidence": s, "note": s,
                                          "date": {"type": "string", "format": "date"}}, ["status"])]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://plantguard.invalid/site.schema.json",
        "title": "plantguard site file",
        **obj({
            "site": s, "description": s, "timezone": s,
            "organization_size": {"enum": list(ORGANIZATION_SIZES)},
            "zones": lst(obj({"name": {"type": "string", "pattern": _NAME.pattern},
                              "kind": {"enum": list(ZONE_KINDS)},
                              "networks": lst(ip_or_net),
                              "vlans": lst({"type": "integer", "minimum": 0, "maximum": 4095}),
                              "description": s}, ["name", "kind"])),
            "conduits": lst(obj({"from": s, "to": s, "allow": lst(allow), "bidirectional": {"type": "boolean"},
                                 "description": s}, ["from", "to", "allow"])),
            "egress": lst(obj({"zone": s, "allow": lst(ip_or_net), "description": s}, ["zone"])),
            "engineering_workstations": lst(ip_or_net),
            "assets": lst({**obj({"ip": s, "mac": {"type": "string", "pattern": _MAC.pattern}, "name": s,
                                  "role": {"enum": list(ASSET_ROLES)}, "vendor": s, "product": s, "model": s,
                                  "firmware": s, "serial": s, "criticality": {"enum": list(CRITICALITIES)},
                                  "sbom": s, "zone": s, "notes": s}),
                           "anyOf": [{"required": ["ip"]}, {"required": ["mac"]}]}),
            "maintenance_windows": lst(obj({
                "name": s, "description": s,
                "days": {"anyOf": [{"enum": list(DAY_GROUPS)}, lst({"enum": list(DAYS)})]},
                "start": {"type": "string", "pattern": _HHMM.pattern},
                "hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 168},
                "zones": lst(s)}, ["days", "start", "hours"])),
            "attestations": obj({k: attestation for k in ATTESTATION_IDS}),
            "sboms": lst({**obj({"file": s, "asset": s, "product": s, "description": s}, ["file"]),
                          "anyOf": [{"required": ["asset"]}, {"required": ["product"]}]}),
            "remote_access": lst(obj({"name": s, "host": ip_or_net, "peers": lst(ip_or_net),
                                      "mfa": {"type": "boolean"}, "vendor": s, "description": s},
                                     ["name", "host"])),
        }),
    }
