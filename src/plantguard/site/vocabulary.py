"""The site file's fixed vocabularies: zone kinds, asset roles, attestation statuses and ids,
the protocol names an `allow` entry may use, the value formats and the size limits. Shared by the
model (site/model.py), the validator (site/load.py) and the JSON Schema (site/schema.py)."""
from __future__ import annotations

import re

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

# Value formats shared by the validator and the JSON Schema.
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$", re.I)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

TOP_KEYS = ("site", "organization_size", "timezone", "description", "zones", "conduits", "egress",
            "engineering_workstations", "assets", "maintenance_windows", "attestations", "sboms",
            "remote_access")


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

