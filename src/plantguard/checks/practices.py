"""The good practices the checks judge: one key per practice, with its plain title and what it
means. A check's `practice` (CheckMeta.practice, attestations.yaml `practice`) must be one of
these keys; there are no synonyms. Not a check module (the registry skips it)."""
from __future__ import annotations

# practice key -> (plain title, what it means)
PRACTICES: dict[str, tuple[str, str]] = {
    "inventory": ("Know every device", "every device on the plant network is known and identified"),
    "default-credentials": ("No factory passwords",
                            "no device accepts its vendor's default login, no password travels in clear"),
    "unnecessary-services": ("Only the services needed", "no Telnet, FTP, plain HTTP or old SNMP left running"),
    "segmentation": ("Separated networks", "traffic between zones follows the declared conduits"),
    "vlan-separation": ("Separate VLANs", "sensing and control devices do not share VLANs"),
    "deny-all-outbound": ("Outbound traffic restricted", "plant zones reach only the destinations they need"),
    "air-gap": ("No direct internet", "plant devices do not talk to the internet"),
    "encrypted-communications": ("Encrypted communication", "telemetry and management traffic use sound TLS"),
    "rbac-plc-changes": ("Authorised controller changes",
                         "only engineering stations write to or reprogram controllers"),
    "zero-trust": ("Authenticated control traffic", "control commands crossing zones are authenticated"),
    "patch-management": ("Patched devices", "no device runs firmware with published vulnerabilities"),
    "sbom-procurement": ("Software bills of materials",
                         "every device has a complete SBOM without vulnerable components"),
    "monitoring": ("Monitoring", "the plant network is watched for attacks"),
    "remote-access": ("Secure remote access", "remote access into the plant needs more than a password"),
    "incident-response": ("Incident response", "a rehearsed plan says how to act when production is hit"),
    "awareness": ("Trained staff", "plant staff know the threats and the rules"),
    "physical-security": ("Physical ports locked", "unused USB and network ports cannot be used"),
    "device-integrity": ("Device integrity", "devices start only genuine firmware"),
    "backup-recovery": ("Backups that restore",
                        "controller programs and configurations are backed up and restores are tested"),
}


def practice_title(key: str) -> str:
    """The plain title of a practice key (the key itself when it is not one)."""
    return PRACTICES[key][0] if key in PRACTICES else key
