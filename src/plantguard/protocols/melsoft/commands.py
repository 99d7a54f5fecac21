"""MELSOFT command codes: the names the published Lua dissector gives (Nozomi Networks, Black
Hat MEA 2023) where it names them, otherwise a name from what the captures show the command
doing, and the operation category each falls in (model.OP_CATEGORIES).

Categories are this project's reading of the payloads, not the vendor's: 0x0410, which the Lua
dissector calls "Modify Value", is the watch window's cyclic device read in every capture (the
request names devices and a count, the response carries their values), so it is a read; 0x1410
carries the values and its response none, so it is the write. Remote RUN/STOP/PAUSE/RESET and the
safety mode change are control (the PLC change timeline); user registration changes the
controller's account table, so it is config; the login steps and the user table reads are auth."""
from __future__ import annotations

# code -> (name, category)
COMMANDS: dict[int, tuple[str, str]] = {
    0x0121: ("Open Initial", "diagnostic"),
    0x0131: ("Username Login", "auth"),
    0x0132: ("Password Login", "auth"),
    0x0133: ("Read User Information from PLC A", "auth"),
    0x0134: ("Read User Information from PLC B", "auth"),
    0x0150: ("Safety Run Mode Read", "read"),
    0x0162: ("Status Read", "diagnostic"),
    0x01A0: ("Session Check", "other"),
    0x0410: ("Device Read (Watch / Modify Value)", "read"),
    0x0411: ("Device Read (Multiple)", "read"),
    0x0413: ("Device Read (Monitor)", "read"),
    0x0701: ("Clock Read", "read"),
    0x1001: ("Remote Control Run", "control"),
    0x1002: ("Remote Control Stop", "control"),
    0x1003: ("Remote Control Pause", "control"),
    0x1005: ("Remote Latch Clear", "control"),
    0x1006: ("Remote Reset Ex", "control"),
    0x1120: ("Safety Run Mode Change", "control"),
    0x1133: ("User Information Registration", "config"),
    0x1410: ("Device Write", "write"),
    0x1859: ("File List Read", "read"),
    0x185F: ("File Information Read", "read"),
    0x1867: ("File Open", "file"),
    0x1868: ("File Read", "read"),
    0x1869: ("File Write", "program"),
    0x186A: ("File Close", "file"),
    0x187E: ("File Search", "file"),
}

CONTROL_MODES = {0x1001: "RUN", 0x1002: "STOP", 0x1003: "PAUSE", 0x1005: "latch clear", 0x1006: "RESET"}
LOGIN_USER, LOGIN_PASSWORD = 0x0131, 0x0132
OPEN_INITIAL = 0x0121
USER_REGISTRATION = 0x1133
# Password Login statuses the Lua dissector calls a wrong password; others with a failed login
# it reads as a wrong password on a locked PLC
WRONG_PASSWORD = frozenset({0x0844, 0x0944, 0x0A44})
FOOTER_TYPES = {0x42: "authorisation token", 0x81: "command data CRC32",
                0x82: "command header type + command data + footer CRC32"}
ACCESS_LEVELS = {0x0001: "Administrators", 0x1000: "Developers", 0x0800: "Assistant Developers",
                 0x0100: "Users"}
DISCOVERY = {0x01: "Address Query", 0x11: "Address Query (other network)", 0x22: "Address Query (set)",
             0xFF: "CPU Search"}


def command_name(code: int | None) -> str:
    entry = COMMANDS.get(code) if code is not None else None
    return entry[0] if entry else f"Command 0x{code or 0:04X}"
