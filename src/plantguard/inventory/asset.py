"""The Asset record: one device on the plant network as plantguard sees it."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

SEEN_CAP = 16              # distinct values a list below keeps per asset, with their counts
SEEN_DISTINCT_CAP = 4096   # distinct values past the cap still counted (by hash) per list
BACNET_OBJECTS_CAP = 256   # BACnet objects (type, instance, name) kept per asset
# The bounded, counted lists of an asset: what it said or was reached by, every distinct value;
# bacnet_objects: the named objects (points) a BACnet device serves; opcua_applications: every
# distinct OPC UA application (client or server) seen at the address.
SEEN_LISTS = ("user_agents", "banners", "tls_server_names", "certificates", "mqtt_client_ids",
              "http_hosts", "opcua_endpoints", "bacnet_objects", "opcua_applications")
SEEN_CAPS = {"bacnet_objects": BACNET_OBJECTS_CAP}   # lists kept longer than SEEN_CAP


class Tally:
    """Distinct values seen, bounded: the first `cap` (SEEN_CAP unless told) are kept, each with
    how often it was seen (observations, repeats included) and where first; later distinct
    values are only counted (`distinct`)."""
    __slots__ = ("cap", "items", "overflow")

    def __init__(self, cap: int = SEEN_CAP):
        self.cap = cap
        self.items: dict[Hashable, dict[str, Any]] = {}
        self.overflow: set[int] = set()

    def add(self, key: Hashable, entry: dict[str, Any], count: int = 1) -> None:
        kept = self.items.get(key)
        if kept is not None:
            kept["count"] += count
        elif len(self.items) < self.cap:
            self.items[key] = {**entry, "count": count}
        elif len(self.overflow) < SEEN_DISTINCT_CAP:
            self.overflow.add(hash(key))

    @property
    def distinct(self) -> int:
        return len(self.items) + len(self.overflow)

    def as_list(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.items.values()]


@dataclass
class Service:
    proto: str               # "tcp" | "udp"
    port: int
    name: str | None = None  # application ("modbus", "http", ...)
    banner: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {"proto": self.proto, "port": self.port, "name": self.name}
        if self.banner:
            d["banner"] = self.banner
        return d


@dataclass
class Asset:
    ip: str | None                       # primary IP (None for layer-2-only devices)
    mac: str | None = None               # primary MAC
    ips: set[str] = field(default_factory=set)
    macs: set[str] = field(default_factory=set)
    vendor: str | None = None            # from the MAC's OUI
    role: str = "unknown"                # plc, rtu, hmi, engineering-workstation, historian,
                                         # sensor, gateway, broker, switch, router, it-host, ...
    role_reasons: list[str] = field(default_factory=list)
    zone: str | None = None
    vlans: set[int] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)          # application protocols spoken
    services: dict[tuple, Service] = field(default_factory=dict)  # (proto, port) -> Service
    identity: dict[str, Any] = field(default_factory=dict)    # vendor, product, firmware, serial,
                                                              # name, model, order_number, ...
    # identity key -> where it came from: {"via": "observation", "proto", "capture", "frame"} for
    # a device's own statement; "derived" (with "derived_from", and the source's proto / capture /
    # frame), "fingerprint" (with "fingerprint") or "site file" otherwise
    identity_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    hostnames: set[str] = field(default_factory=set)
    seen: dict[str, Tally] = field(default_factory=lambda: {name: Tally(SEEN_CAPS.get(name, SEEN_CAP))
                                                            for name in SEEN_LISTS})
    peers: set[str] = field(default_factory=set)
    first_seen: float | None = None
    last_seen: float | None = None
    is_router: bool = False              # one MAC fronting many IPs
    public: bool = False                 # a public (internet) address
    declared: dict[str, Any] | None = None  # the site file's entry, when declared there

    @property
    def key(self) -> str:
        return self.ip or self.mac or "?"

    @property
    def is_ot(self) -> bool:
        return self.role in OT_ROLES

    def as_dict(self) -> dict[str, Any]:
        from plantguard.util.timefmt import iso
        return {
            "ip": self.ip, "mac": self.mac, "vendor": self.vendor, "role": self.role,
            "role_reasons": self.role_reasons, "zone": self.zone, "vlans": sorted(self.vlans),
            "protocols": sorted(self.protocols),
            "services": [s.as_dict() for _, s in sorted(self.services.items())],
            "identity": dict(self.identity),
            "identity_sources": {k: dict(v) for k, v in self.identity_sources.items()},
            **{name: self.seen[name].as_list() for name in SEEN_LISTS},
            "distinct_values": {name: t.distinct for name, t in self.seen.items() if t.distinct},
            "hostnames": sorted(self.hostnames),
            "ips": sorted(self.ips), "macs": sorted(self.macs),
            "peers": len(self.peers), "first_seen": iso(self.first_seen), "last_seen": iso(self.last_seen),
            "declared": dict(self.declared) if self.declared else None,
        }


OT_ROLES = frozenset({"plc", "rtu", "hmi", "engineering-workstation", "historian", "sensor",
                      "gateway", "io-device", "drive", "safety-controller", "ied", "broker",
                      "scada-server"})
CONTROLLER_ROLES = frozenset({"plc", "rtu", "safety-controller", "ied", "io-device", "drive"})
