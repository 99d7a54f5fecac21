"""CODESYS V3 layer-7 service groups and the services whose numbers the runtime's public
interface headers define, with the operation category (model.OP_CATEGORIES) each falls in.

Sources (facts only): service groups from CmpSrvItf.m4 ("Service Groups", SG_DEVICE = 0x01 ..
SG_MONITORING2 = 0x1B); device services from CmpDeviceItf ("Online services", SRV_DEV_*);
application services from CmpAppItf.h ("Online services", SRV_LOGIN_APP = 0x01 ..
SRV_CLAIM_EXECPOINTS_FOR_APP = 0x40); monitoring 2 services from CmpMonitor2Itf
(SRV_MONITORING2_READ / WRITE / FORCE = 1 / 2 / 3). A service of another group is named by
its group, with the group's category where the group's purpose fixes it (file transfer)."""
from __future__ import annotations

SG_DEVICE, SG_APPLICATION, SG_FILE_TRANSFER, SG_MONITORING2 = 0x01, 0x02, 0x08, 0x1B

GROUPS: dict[int, str] = {
    0x01: "Device", 0x02: "Application", 0x03: "Monitoring", 0x04: "Visualisation", 0x05: "Log",
    0x06: "Settings", 0x07: "EtherCAT", 0x08: "File transfer", 0x09: "IEC variable access",
    0x0A: "Component manager", 0x0B: "I/O manager", 0x0C: "User management", 0x0D: "Online parameters",
    0x0E: "SoftVision", 0x0F: "Trace manager", 0x10: "FDT", 0x11: "PLC shell", 0x12: "Application breakpoints",
    0x13: "Application force", 0x14: "Redundancy", 0x15: "Visualisation autotest", 0x16: "IO-Link",
    0x17: "ETC server", 0x18: "Alarm manager", 0x19: "PROFINET", 0x1A: "SIL2", 0x1B: "Monitoring 2",
    0x1C: "Sub-node communication",
}

# (group, service) -> (name, category)
SERVICES: dict[tuple[int, int], tuple[str, str]] = {
    # CmpDevice
    (1, 0x01): ("Get target identification", "diagnostic"),
    (1, 0x02): ("Device login", "auth"),
    (1, 0x03): ("Device logout", "auth"),
    (1, 0x04): ("Reset origin", "program"),          # deletes every application and its files
    (1, 0x05): ("Echo", "diagnostic"),
    (1, 0x06): ("Set operation mode", "control"),
    (1, 0x07): ("Get operation mode", "read"),
    (1, 0x08): ("Interactive login", "auth"),
    (1, 0x09): ("Set node name", "config"),
    # CmpApp
    (2, 0x01): ("Application login", "auth"),
    (2, 0x02): ("Application logout", "auth"),
    (2, 0x03): ("Create application", "program"),
    (2, 0x04): ("Delete application", "program"),
    (2, 0x05): ("Download", "program"),
    (2, 0x06): ("Online change", "program"),
    (2, 0x07): ("Device download", "program"),
    (2, 0x08): ("Create device application", "program"),
    (2, 0x10): ("Start", "control"),
    (2, 0x11): ("Stop", "control"),
    (2, 0x12): ("Reset", "control"),
    (2, 0x13): ("Set breakpoint", "control"),
    (2, 0x14): ("Read status", "read"),
    (2, 0x15): ("Delete breakpoint", "control"),
    (2, 0x16): ("Read call stack", "read"),
    (2, 0x17): ("Get area offset", "read"),
    (2, 0x18): ("Read application list", "read"),
    (2, 0x19): ("Set next statement", "control"),
    (2, 0x20): ("Release force list", "write"),
    (2, 0x21): ("Upload force list", "read"),
    (2, 0x22): ("Single cycle", "control"),
    (2, 0x23): ("Create boot project", "program"),
    (2, 0x24): ("Reinitialise application", "control"),
    (2, 0x25): ("Read application state list", "read"),
    (2, 0x26): ("Load boot application", "program"),
    (2, 0x27): ("Register boot application", "program"),
    (2, 0x28): ("Check file consistency", "diagnostic"),
    (2, 0x29): ("Read application info", "read"),
    (2, 0x30): ("Download compact", "program"),
    (2, 0x31): ("Read project info", "read"),
    (2, 0x32): ("Define flow", "read"),
    (2, 0x33): ("Read flow values", "read"),
    (2, 0x34): ("Download encrypted", "program"),
    (2, 0x35): ("Read application content", "read"),
    (2, 0x36): ("Save retains", "file"),
    (2, 0x37): ("Restore retains", "write"),
    (2, 0x38): ("Get area address", "read"),
    (2, 0x39): ("Leave execution points active", "control"),
    (2, 0x40): ("Claim execution points for application", "control"),
    # CmpMonitor2
    (0x1B, 1): ("Read variables", "read"),
    (0x1B, 2): ("Write variables", "write"),
    (0x1B, 3): ("Force variables", "write"),
}

# groups whose every service is of one category by the group's purpose
GROUP_CATEGORY = {SG_FILE_TRANSFER: "file"}


def describe(group: int, service: int) -> tuple[str, str]:
    """(name, category) of a layer-7 service."""
    entry = SERVICES.get((group, service))
    if entry is not None:
        return entry
    gname = GROUPS.get(group, f"Service group 0x{group:02X}")
    return f"{gname} service 0x{service:02X}", GROUP_CATEGORY.get(group, "other")
