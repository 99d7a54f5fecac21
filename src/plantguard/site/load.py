"""Loading a site file: `load_site` / `parse_site` compose the YAML into nodes (which carry line
numbers) and `_Validator` checks them section by section into the model, so every problem is one
line naming the file, the line and the field ('FILE:LINE: field: problem', a SiteError).

A site file may come from anywhere, so reading it is bounded: only a regular file is opened (a FIFO
or a device is refused before it can block or stream), at most MAX_FILE_BYTES + 1 bytes are read,
YAML nesting stops at MAX_DEPTH levels (the composer recurses once per level), aliases are not
expanded (the validator reads at most MAX_NODES values through them), and the checks between
entries (duplicate zones, overlapping networks) are linear, not pairwise."""
from __future__ import annotations

import bisect
import os
import re
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from plantguard.site.model import (AllowRule, Attestation, Conduit, Egress, RemoteAccess, Site, Window,
                                   Zone, _network, _tzinfo)
from plantguard.site.nodes import SiteError, _closest, _NodeReader
from plantguard.site.vocabulary import (_HHMM, _MAC, _NAME, ASSET_ROLES, ATTESTATION_IDS,
                                        ATTESTATION_STATUSES, CRITICALITIES, DAY_GROUPS, DAYS,
                                        MAX_FILE_BYTES, ORGANIZATION_SIZES, TOP_KEYS, ZONE_KINDS,
                                        protocol_names)

# Deepest legitimate nesting is 5 (top mapping > zones > zone > networks > value); beyond this
# YAML nesting the file is refused before the recursive composer can exhaust Python's stack.
MAX_DEPTH = 50


def load_site(path) -> Site:
    """Read and validate a site file. Raises SiteError (one line: FILE:LINE: field: problem, or
    FILE: problem when it is not a regular file); OSError when the file cannot be read."""
    p = Path(path)
    data = _read_capped(p, str(path))
    if len(data) > MAX_FILE_BYTES:
        raise SiteError(f"{path}:1: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SiteError(f"{path}:{line}: file is not UTF-8 text") from None
    return parse_site(text, str(path), base_dir=p.parent)


def parse_site(text: str, filename: str = "site.yaml", base_dir: Path | None = None) -> Site:
    """Validate site-file text (errors name `filename`); relative SBOM paths resolve from base_dir."""
    try:
        root = yaml.compose(text, Loader=_BoundedLoader)
    except _TooDeep as exc:
        raise SiteError(f"{filename}:{exc.line}: nested deeper than {MAX_DEPTH} levels "
                        "(a site file needs no more than a few)") from None
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


def _read_capped(p: Path, shown: str) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes of a regular file (enough to tell it is too large).
    Anything else is refused before it is opened for good: a FIFO would block the open or the
    read for ever, /dev/zero or /dev/urandom would stream without end."""
    st = os.stat(p)
    if not stat.S_ISREG(st.st_mode):
        raise SiteError(f"{shown}: cannot read site file ({_file_kind(st.st_mode)}, not a regular file)")
    # O_NONBLOCK: if the path was swapped for a FIFO since the stat, the open does not wait for a writer
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SiteError(f"{shown}: cannot read site file ({_file_kind(st.st_mode)}, not a regular file)")
        return f.read(MAX_FILE_BYTES + 1)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


class _TooDeep(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than MAX_DEPTH (it recurses per level)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Disjoint:
    """The networks declared so far (pairwise disjoint, or loading stopped), sorted by start per IP
    version: whether a new one overlaps any is a bisection, not a comparison with every other."""

    def __init__(self):
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._rows: dict[int, list[tuple]] = {4: [], 6: []}   # (end, network, zone, line, order)

    def overlapping(self, net):
        """The first declared network that overlaps `net`, or None."""
        lo, hi = int(net.network_address), int(net.broadcast_address)
        starts, rows = self._starts[net.version], self._rows[net.version]
        i = bisect.bisect_right(starts, hi) - 1   # disjoint and sorted: only this one can reach lo
        if i < 0 or rows[i][0] < lo:
            return None
        # net overlaps at least one; several when it is a supernet: name the first declared
        j = bisect.bisect_left(starts, lo)
        return min(rows[j:i + 1] if j <= i else rows[i:i + 1], key=lambda r: r[4])[1:4]

    def add(self, net, zone: str, line: int) -> None:
        lo = int(net.network_address)
        starts, rows = self._starts[net.version], self._rows[net.version]
        i = bisect.bisect_left(starts, lo)
        starts.insert(i, lo)
        rows.insert(i, (int(net.broadcast_address), net, zone, line, len(starts)))


_PORT_RULE = re.compile(r"^(tcp|udp)/(\d{1,5})(?:-(\d{1,5}))?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Validator(_NodeReader):
    """The site document, section by section, into the model (references between sections,
    overlaps and duplicates included)."""

    def __init__(self, filename: str, base_dir: Path | None):
        super().__init__(filename)
        self.base_dir = base_dir

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
        if get("suppressions") is not None:
            kw["suppressions"] = self.suppressions(get("suppressions"))
        if get("probe") is not None:
            kw["probe"] = self.probe(get("probe"))
        return Site(**kw)

    def probe(self, node):
        """The probe allow-list (probe/policy.py decides its format)."""
        from plantguard.probe.policy import PolicyError, load_policy
        self._count(node)
        try:
            return load_policy(node, self.fname)
        except PolicyError as exc:
            raise SiteError(str(exc)) from None

    def suppressions(self, node) -> list:
        """Accepted risks, as a --suppress file holds them (suppress.py decides their format)."""
        from plantguard.suppress import SuppressionError, entries
        self._count(node)
        try:
            return entries(node, self.fname, "suppressions entry")
        except SuppressionError as exc:
            raise SiteError(str(exc)) from None

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
        by_name: dict[str, Zone] = {}
        seen_nets = _Disjoint()
        for i, zn in enumerate(self.seq(node, "zones")):
            p = f"zones[{i}]"
            m = self.mapping(zn, p, ("name", "kind", "networks", "vlans", "description"), ("name", "kind"))
            name = self.text(m["name"][1], f"{p}.name")
            if not _NAME.match(name):
                raise self.fail(m["name"][1], f"{p}.name", f"'{name}' is not a valid zone name "
                                "(letters, digits, '.', '_' or '-', up to 64 characters)")
            if name in by_name:
                raise self.fail(m["name"][1], f"{p}.name",
                                f"zone '{name}' is already declared on line {by_name[name].line}")
            kind = self.choice(m["kind"][1], f"{p}.kind", ZONE_KINDS)
            zone = Zone(name, kind, line=zn.start_mark.line + 1)
            if "networks" in m:
                for j, nn in enumerate(self.seq(m["networks"][1], f"{p}.networks", allow_scalar=True)):
                    np_ = f"{p}.networks[{j}]"
                    net = self.network(nn, np_)
                    hit = seen_nets.overlapping(net)
                    if hit is not None:
                        other, oname, oline = hit
                        whose = "of the same zone" if oname == name else f"of zone '{oname}'"
                        raise self.fail(nn, np_, f"{net} overlaps {other} {whose} (line {oline})")
                    seen_nets.add(net, name, nn.start_mark.line + 1)
                    zone.networks.append(net)
            if "vlans" in m:
                vlans = set()
                for j, vn in enumerate(self.seq(m["vlans"][1], f"{p}.vlans", allow_scalar=True)):
                    v = self.integer(vn, f"{p}.vlans[{j}]", 0, 4095, "a VLAN ID")
                    if v not in vlans:
                        vlans.add(v)
                        zone.vlans.append(v)
            if not zone.networks and not zone.vlans:
                raise self.fail(zn, p, f"zone '{name}' needs at least one network or VLAN")
            if "description" in m:
                zone.description = self.text(m["description"][1], f"{p}.description", allow_empty=True)
            zones.append(zone)
            by_name[name] = zone
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
        by_zone: dict[str, Egress] = {}
        for i, en in enumerate(self.seq(node, "egress")):
            p = f"egress[{i}]"
            m = self.mapping(en, p, ("zone", "allow", "description"), ("zone",))
            zone = self.zone_ref(m["zone"][1], f"{p}.zone", zones)
            if zone in by_zone:
                raise self.fail(m["zone"][1], f"{p}.zone",
                                f"zone '{zone}' already has an egress rule on line {by_zone[zone].line}")
            allow = []
            if "allow" in m:
                for j, an in enumerate(self.seq(m["allow"][1], f"{p}.allow", allow_scalar=True)):
                    allow.append(_network(self.address_or_network(an, f"{p}.allow[{j}]")))
            by_zone[zone] = Egress(zone, allow, en.start_mark.line + 1)
            out.append(by_zone[zone])
        return out

    def assets(self, node, zones: dict) -> list[dict]:
        keys = ("ip", "mac", "name", "role", "vendor", "product", "model", "firmware", "serial",
                "criticality", "sbom", "zone", "notes", "owner")
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
            for k in ("name", "vendor", "product", "model", "firmware", "serial", "notes", "owner"):
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
