"""Identity learnt by probing (`plantguard probe --send`, kept in the store) merged into the
passive inventory: a key passive traffic already stated keeps its passive value (the device's own
words on the wire, first stated, win — as everywhere in identity merging); a key only the probe
learnt is added with provenance `active`, its time, and the evidence pcap and frame it was read
from. A probed device passive traffic never showed becomes an asset of its own."""
from __future__ import annotations

from plantguard.inventory.asset import Asset


def merge_active(assets: list[Asset], engine, site=None) -> int:
    """Merge the store's probe identities into `assets` (in place); returns the devices touched."""
    if engine is None:
        return 0
    from plantguard.probe.store import latest
    probed = latest(engine)
    by_ip = {ip: a for a in assets for ip in ({a.ip} | set(a.ips)) if ip}
    touched = 0
    for ip, fields in sorted(probed.items()):
        a = by_ip.get(ip)
        if a is None:
            a = Asset(ip=ip, ips={ip})
            zone = site.zone_of(ip) if site is not None else None
            a.zone = zone.name if zone is not None else None
            assets.append(a)
            by_ip[ip] = a
        added = False
        for key, (value, source) in fields.items():
            if key in a.identity or value in (None, "", []):
                continue
            a.identity[key] = value
            a.identity_sources[key] = source
            added = True
            if source.get("proto"):
                a.protocols.add(source["proto"])
        if added:
            srcs = a.identity.setdefault("sources", [])
            if "probe" not in srcs:
                srcs.append("probe")
            touched += 1
    return touched
