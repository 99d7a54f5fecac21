"""Which devices a probe may ask, in which protocols: the --targets given (addresses, networks,
files of them), each kept only where the site's allow-list (probe.policy) admits its zone and
the protocol, and — when the store's inventory knows the device — only in the protocols it was
seen serving. Broadcast, network and multicast addresses are never targets."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from plantguard.probe.query import Query, Target
from plantguard.probe.session import Plan

MAX_TARGETS = 4096


class TargetError(ValueError):
    """A --targets value that cannot be used (one line)."""


def expand(specs: list[str]) -> list[str]:
    """Addresses from IPs, CIDR networks (their hosts: no network or broadcast address) and files
    of either (one per line, '#' comments)."""
    out: list[str] = []
    for spec in specs:
        for item in _items(spec):
            try:
                net = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise TargetError(f"--targets: {item[:80]!r} is not an address, a network or a file") from None
            if net.version != 4:
                raise TargetError(f"--targets: {item}: only IPv4 targets are probed")
            if net.is_multicast or net.network_address.is_unspecified:
                raise TargetError(f"--targets: {item} is not a unicast address")
            hosts = [net.network_address] if net.prefixlen == 32 else list(_hosts(net))
            out.extend(str(h) for h in hosts if str(h) != "255.255.255.255")
            if len(out) > MAX_TARGETS:
                raise TargetError(f"--targets: more than {MAX_TARGETS} addresses; probe a smaller range")
    return list(dict.fromkeys(out))


def _hosts(net):
    if net.num_addresses > 2 * MAX_TARGETS:
        raise TargetError(f"--targets: {net} has {net.num_addresses:,} addresses; probe a smaller range")
    return net.hosts()


def _items(spec: str) -> list[str]:
    p = Path(spec)
    if not p.is_file():
        return [s for s in spec.replace(",", " ").split()]
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"--targets: cannot read {spec}: {exc}") from None
    return [w for line in text.splitlines() for w in line.split("#", 1)[0].replace(",", " ").split()]


def known_devices(db_url: str | None) -> dict[str, dict]:
    """What the store's inventory says per address: {ip: {"mac", "protocols", "zone", "name"}}."""
    if not db_url:
        return {}
    from sqlalchemy import select

    from plantguard.store.db import open_engine, session_factory
    from plantguard.store.inventory_tables import AssetRow
    engine = open_engine(db_url)
    out: dict[str, dict] = {}
    with session_factory(engine)() as s:
        for row in s.scalars(select(AssetRow).where(AssetRow.ip.is_not(None))):
            data = row.data or {}
            out[row.ip] = {"mac": row.mac, "name": (data.get("identity") or {}).get("name"),
                           "protocols": {sv.get("proto") for sv in data.get("services") or []}}
    return out


def build_plan(addresses: list[str], queries: list[Query], site=None, known: dict | None = None) -> Plan:
    """Every allowed (target, query) pair, and every refused one with its reason."""
    known = known or {}
    policy = getattr(site, "probe", None)
    plan = Plan([])
    neighbours = _neighbours() if any("mac" in q.needs for q in queries) else {}
    for ip in addresses:
        zone = site.zone_of(ip) if site is not None else None
        dev = known.get(ip, {})
        target = Target(ip=ip, mac=dev.get("mac") or neighbours.get(ip), zone=zone.name if zone else None,
                        name=dev.get("name"))
        allowed = _allowed_protocols(policy, ip, target.zone)
        for q in queries:
            if policy is not None and q.protocol not in allowed:
                why = (f"the site's probe allow-list admits no {q.protocol} in zone {target.zone}"
                       if target.zone else "the address is in no zone of the site")
                plan.skipped.append((target, q, why))
            elif dev.get("protocols") and q.protocol not in dev["protocols"]:
                plan.skipped.append((target, q, f"the inventory never saw {ip} serve {q.protocol}"))
            else:
                plan.items.append((target, q))
    return plan


def _neighbours() -> dict[str, str]:
    """The kernel's neighbour table: the MAC of a device the store does not know (layer-2 queries
    need it; reading it sends nothing, and nothing is sent to find a missing one)."""
    from plantguard.probe.layer2 import neighbour_macs
    return neighbour_macs()


def _allowed_protocols(policy, ip: str, zone: str | None) -> set[str]:
    if policy is None or zone is None:
        return set()
    addr = ipaddress.ip_address(ip)
    out: set[str] = set()
    for entry in policy.allow:
        if zone in entry.zones and (not entry.hosts or any(addr in ipaddress.ip_network(h, strict=False)
                                                             for h in entry.hosts)):
            out.update(entry.protocols)
    return out
