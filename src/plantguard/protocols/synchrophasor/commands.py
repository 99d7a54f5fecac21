"""C37.118 command codes (CMD word of a command frame) with the operation category each falls in
(model.OP_CATEGORIES), and the STAT word conditions of a data frame's PMU block that are errors or
anomalies (C37.118.2-2011 Table 7)."""
from __future__ import annotations

# CMD -> (name, category): turning transmission off or on changes what the PMU does (control);
# asking for a header or configuration frame reads it
COMMANDS: dict[int, tuple[str, str]] = {
    0x0001: ("Turn off transmission of data frames", "control"),
    0x0002: ("Turn on transmission of data frames", "control"),
    0x0003: ("Send HDR frame", "read"),
    0x0004: ("Send CFG-1 frame", "read"),
    0x0005: ("Send CFG-2 frame", "read"),
    0x0006: ("Send CFG-3 frame", "read"),
    0x0008: ("Extended frame", "other"),
}


def command(code: int) -> tuple[str, str]:
    entry = COMMANDS.get(code)
    if entry is not None:
        return entry
    if code >= 0x8000:
        return f"User-designated command 0x{code:04X}", "other"
    return f"Reserved command 0x{code:04X}", "other"


# STAT bits 15-14 (data error), 2011 meanings (2005: bit 15 data invalid, bit 14 PMU error)
DATA_ERRORS = {
    1: "PMU error: no information about data",
    2: "PMU in test mode or absent data tags",
    3: "PMU error: data invalid",
}
STAT_SYNC = 0x2000            # bit 13: PMU not synchronised to its time source
STAT_TRIGGER = 0x0800         # bit 11: PMU trigger detected, reason in bits 0-3
STAT_CFG_CHANGE = 0x0400      # bit 10: configuration will change (set for a minute before)
STAT_MODIFIED = 0x0200        # bit 9: data modified by a post-processing device
TRIGGER_REASONS = {0: "manual", 1: "magnitude low", 2: "magnitude high", 3: "phase angle difference",
                   4: "frequency high or low", 5: "df/dt high", 6: "reserved", 7: "digital"}


def stat_conditions(stat: int) -> list[tuple[str, str]]:
    """(code, name) of each error or anomaly a STAT word reports; [] for a clean one. Time quality
    and data sorting bits are not errors."""
    out = []
    err = stat >> 14
    if err:
        out.append((f"stat-data-error-{err}", DATA_ERRORS[err]))
    if stat & STAT_SYNC:
        out.append(("stat-sync-lost", "PMU time synchronisation lost"))
    if stat & STAT_TRIGGER:
        reason = stat & 0x0F
        text = TRIGGER_REASONS.get(reason, f"user-defined reason {reason}")
        out.append((f"stat-trigger-{reason}", f"PMU trigger detected ({text})"))
    if stat & STAT_CFG_CHANGE:
        out.append(("stat-config-change", "PMU configuration change pending"))
    if stat & STAT_MODIFIED:
        out.append(("stat-data-modified", "data modified by a post-processing device"))
    return out
