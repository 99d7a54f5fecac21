"""The site file's fixed vocabularies: zone kinds, asset roles, attestation statuses and ids,
the protocol names an `allow` entry may use, the value formats and the size limits. Shared by the
model (site/model.py), the validator (site/load.py) and the JSON Schema (site/schema.py)."""
from __future__ import annotations

import re

from plantguard.compliance.attestations import ATTESTATION_IDS  # noqa: F401 (the ids a site file may state)

ZONE_KINDS = ("it", "guest", "dmz", "ot-control", "ot-sensing", "ot-safety", "ot-supervisory")
OT_ZONE_KINDS = frozenset({"ot-control", "ot-sensing", "ot-safety", "ot-supervisory"})
IT_ZONE_KINDS = frozenset({"it", "guest"})
ORGANIZATION_SIZES = ("small", "medium", "large")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS = {"daily": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:]}
CRITICALITIES = ("low", "medium", "high", "critical")
ATTESTATION_STATUSES = ("yes", "no", "partial")
ASSET_ROLES = ("plc", "rtu", "hmi", "engineering-workstation", "historian", "sensor", "gateway",
               "io-device", "drive", "safety-controller", "ied", "broker", "scada-server", "switch",
               "router", "firewall", "wireless-ap", "server", "workstation", "it-host", "printer",
               "camera", "internet-host", "unknown")

# Names an `allow` entry may use besides the protocol modules' own NAMEs, with their usual ports.
# Names an `allow` entry may use besides the protocols plantguard decodes (whose names and
# ports come from their ProtocolSpec, see protocol_names()).
COMMON_PROTOCOLS: dict[str, tuple[tuple[str, int], ...]] = {
    "https": (("tcp", 443), ("tcp", 8443)), "tftp": (("udp", 69),), "ntp": (("udp", 123),),
    "syslog": (("udp", 514), ("tcp", 514), ("tcp", 6514)), "rdp": (("tcp", 3389),),
    "vnc": (("tcp", 5900),), "smb": (("tcp", 445),), "ldap": (("tcp", 389),), "ldaps": (("tcp", 636),),
    "mqtts": (("tcp", 8883),), "icmp": (),
}
# Names that mean "TLS on this port": they match by port whatever the flow's application says.
PORT_ONLY_NAMES = frozenset({"https", "mqtts", "ldaps"})

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_NODES = 200_000

# Value formats shared by the validator and the JSON Schema.
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$", re.I)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

TOP_KEYS = ("site", "organization_size", "timezone", "description", "zones", "conduits", "egress",
            "engineering_workstations", "assets", "maintenance_windows", "attestations", "sboms",
            "remote_access", "suppressions", "probe")


def protocol_names() -> set[str]:
    """Protocol names an `allow` entry may use: every decoded protocol plus the common names."""
    from plantguard.protocols.registry import (
        protocol_names as decoded,  # the site model sits above protocols
    )
    return set(COMMON_PROTOCOLS) | decoded()


def _ports_of(name: str) -> set[tuple[str, int]]:
    """(l4, port) pairs a protocol name in an `allow` entry stands for."""
    from plantguard.protocols.registry import spec_of
    spec = spec_of(name)
    return set(COMMON_PROTOCOLS.get(name, ())) | (spec.l4_ports if spec is not None else set())

