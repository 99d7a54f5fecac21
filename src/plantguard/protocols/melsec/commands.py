"""SLMP / MC protocol commands, subcommand forms, device codes and end codes as the SLMP
reference manual numbers them, with the operation category each command falls in
(model.OP_CATEGORIES).

Decisions: remote password unlock / lock (0x1630 / 0x1631) are auth, and an unlock carries the
remote password in clear, so it is also a credential observation; file commands that create,
write, copy, delete or change a file are program (a controller's files are its program and
parameters), directory and file reads are read, open / close are file."""
from __future__ import annotations

# command -> (name, category)
COMMANDS: dict[int, tuple[str, str]] = {
    0x0101: ("Read CPU Model Name", "diagnostic"),
    0x0401: ("Device Read (batch)", "read"),
    0x0403: ("Device Read Random", "read"),
    0x0406: ("Device Read Block", "read"),
    0x0801: ("Entry Monitor Device", "read"),
    0x0802: ("Execute Monitor", "read"),
    0x0601: ("Intelligent Module Buffer Read", "read"),
    0x0613: ("Buffer Memory Read", "read"),
    0x0619: ("Self Test (loopback)", "diagnostic"),
    0x1401: ("Device Write (batch)", "write"),
    0x1402: ("Device Write Random", "write"),
    0x1406: ("Device Write Block", "write"),
    0x1601: ("Intelligent Module Buffer Write", "write"),
    0x1613: ("Buffer Memory Write", "write"),
    0x1617: ("Clear Error", "config"),
    0x1001: ("Remote RUN", "control"),
    0x1002: ("Remote STOP", "control"),
    0x1003: ("Remote PAUSE", "control"),
    0x1005: ("Remote Latch Clear", "control"),
    0x1006: ("Remote RESET", "control"),
    0x1630: ("Remote Password Unlock", "auth"),
    0x1631: ("Remote Password Lock", "auth"),
    0x1810: ("Read Directory/File", "read"),
    0x1811: ("Search Directory/File", "read"),
    0x1820: ("New File", "program"),
    0x1822: ("Delete File", "program"),
    0x1824: ("Copy File", "program"),
    0x1825: ("Change File State", "program"),
    0x1826: ("Change File Date", "program"),
    0x1827: ("Open File", "file"),
    0x1828: ("Read File", "read"),
    0x1829: ("Write File", "program"),
    0x182A: ("Close File", "file"),
}
CONTROL_MODES = {0x1001: "RUN", 0x1002: "STOP", 0x1003: "PAUSE", 0x1005: "latch clear", 0x1006: "RESET"}
# commands whose data starts with a device specification (head device, device code, count)
BATCH = frozenset({0x0401, 0x1401})
RANDOM = frozenset({0x0403, 0x1402, 0x0801})
READ_MODEL, PASSWORD_UNLOCK, PASSWORD_LOCK = 0x0101, 0x1630, 0x1631

# binary device codes (Q/L: one byte; iQ-R subcommands 0x0002/0x0003: the same code in two
# bytes); the devices numbered in hexadecimal are marked
DEVICES: dict[int, tuple[str, bool]] = {
    0x91: ("SM", False), 0xA9: ("SD", False), 0x9C: ("X", True), 0x9D: ("Y", True), 0x90: ("M", False),
    0x92: ("L", False), 0x93: ("F", False), 0x94: ("V", False), 0xA0: ("B", True), 0xA8: ("D", False),
    0xB4: ("W", True), 0xC1: ("TS", False), 0xC0: ("TC", False), 0xC2: ("TN", False), 0xC7: ("SS", False),
    0xC6: ("SC", False), 0xC8: ("SN", False), 0xC4: ("CS", False), 0xC3: ("CC", False), 0xC5: ("CN", False),
    0xA1: ("SB", True), 0xB5: ("SW", True), 0x98: ("S", False), 0xA2: ("DX", True), 0xA3: ("DY", True),
    0xCC: ("Z", False), 0xAF: ("R", False), 0xB0: ("ZR", False), 0x62: ("LZ", False), 0x2C: ("RD", False),
    0x51: ("LTS", False), 0x50: ("LTC", False), 0x52: ("LTN", False), 0x59: ("LSTS", False),
    0x58: ("LSTC", False), 0x5A: ("LSTN", False), 0x55: ("LCS", False), 0x54: ("LCC", False),
    0x56: ("LCN", False),
}

END_CODES: dict[int, str] = {
    0x0000: "Normal completion",
    0xC050: "ASCII data cannot be converted to binary",
    0xC051: "Too many bit devices", 0xC052: "Too many word devices", 0xC053: "Too many bit devices (random)",
    0xC054: "Too many word devices (random)", 0xC056: "Device range exceeded",
    0xC058: "Request data length mismatch", 0xC059: "Command or subcommand not supported",
    0xC05B: "Device cannot be read or written", 0xC05C: "Request content error",
    0xC05F: "Request cannot be executed on the target CPU", 0xC060: "Request content error (bit device)",
    0xC061: "Request data length error", 0xC06F: "Communication data code (binary/ASCII) mismatch",
    0xC0B5: "Data the CPU cannot handle", 0xC200: "Remote password error", 0xC201: "Port locked by remote password",
    0xC204: "Not the device that requested the unlock",
}


def command_name(code: int | None) -> str:
    entry = COMMANDS.get(code) if code is not None else None
    return entry[0] if entry else f"Command 0x{code or 0:04X}"


def end_code_name(code: int) -> str:
    return END_CODES.get(code, f"End code 0x{code:04X}")
