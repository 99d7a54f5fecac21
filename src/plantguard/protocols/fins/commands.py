"""Omron FINS command codes (MRC/SRC), end codes (MRES/SRES) and memory area codes, as the
FINS command reference for CS/CJ/CP/NJ controllers numbers them, with the operation category
each command falls in (model.OP_CATEGORIES)."""
from __future__ import annotations

# (MRC << 8 | SRC) -> (name, category)
COMMANDS: dict[int, tuple[str, str]] = {
    0x0101: ("Memory Area Read", "read"),
    0x0102: ("Memory Area Write", "write"),
    0x0103: ("Memory Area Fill", "write"),
    0x0104: ("Multiple Memory Area Read", "read"),
    0x0105: ("Memory Area Transfer", "write"),
    0x0201: ("Parameter Area Read", "read"),
    0x0202: ("Parameter Area Write", "config"),
    0x0203: ("Parameter Area Clear", "config"),
    0x0220: ("Data Link Table Read", "read"),
    0x0221: ("Data Link Table Write", "config"),
    0x0304: ("Program Area Protect", "config"),
    0x0305: ("Program Area Protect Clear", "config"),
    0x0306: ("Program Area Read", "read"),
    0x0307: ("Program Area Write", "program"),
    0x0308: ("Program Area Clear", "program"),
    0x0401: ("Run", "control"),
    0x0402: ("Stop", "control"),
    0x0403: ("Reset", "control"),
    0x0501: ("Controller Data Read", "diagnostic"),
    0x0502: ("Connection Data Read", "diagnostic"),
    0x0601: ("Controller Status Read", "diagnostic"),
    0x0602: ("Network Status Read", "diagnostic"),
    0x0603: ("Data Link Status Read", "diagnostic"),
    0x0620: ("Cycle Time Read", "diagnostic"),
    0x0701: ("Clock Read", "read"),
    0x0702: ("Clock Write", "config"),
    0x0801: ("Loop-Back Test", "diagnostic"),
    0x0802: ("Broadcast Test Results Read", "diagnostic"),
    0x0803: ("Broadcast Test Data Send", "diagnostic"),
    0x0920: ("Message Read / Message Clear / FAL/FALS Read", "diagnostic"),
    0x0C01: ("Access Right Acquire", "auth"),
    0x0C02: ("Access Right Forced Acquire", "auth"),
    0x0C03: ("Access Right Release", "auth"),
    0x2101: ("Error Clear", "config"),
    0x2102: ("Error Log Read", "diagnostic"),
    0x2103: ("Error Log Clear", "config"),
    0x2201: ("File Name Read", "file"),
    0x2202: ("Single File Read", "file"),
    0x2203: ("Single File Write", "file"),
    0x2204: ("Memory Card Format", "file"),
    0x2205: ("File Delete", "file"),
    0x2206: ("Volume Label Create/Delete", "file"),
    0x2207: ("File Copy", "file"),
    0x2208: ("File Name Change", "file"),
    0x2209: ("File Data Check", "file"),
    0x220A: ("Memory Area File Transfer", "file"),
    0x220B: ("Parameter Area File Transfer", "file"),
    0x220C: ("Program Area File Transfer", "program"),
    0x220F: ("File Memory Index Read", "file"),
    0x2210: ("File Memory Read", "file"),
    0x2211: ("File Memory Write", "file"),
    0x2301: ("Forced Set/Reset", "write"),
    0x2302: ("Forced Set/Reset Cancel", "write"),
    0x230A: ("Multiple Forced Status Read", "read"),
    0x2601: ("Name Set", "config"),
    0x2602: ("Name Delete", "config"),
    0x2603: ("Name Read", "diagnostic"),
}

# Commands that read or write a memory area: the area code, a 3-byte address (word, bit) and a
# count follow the command code.
MEMORY_AREA_COMMANDS = frozenset({0x0101, 0x0102, 0x0103})

# end code (MRES & 0x7F) << 8 | SRES & 0x3F -> its meaning
END_CODES: dict[int, str] = {
    0x0000: "Normal completion", 0x0001: "Service canceled",
    0x0101: "Local node not in network", 0x0102: "Token timeout", 0x0103: "Retries failed",
    0x0104: "Too many send frames", 0x0105: "Node address range error", 0x0106: "Node address duplication",
    0x0201: "Destination node not in network", 0x0202: "Unit missing", 0x0203: "Third node missing",
    0x0204: "Destination node busy", 0x0205: "Response timeout",
    0x0301: "Communications controller error", 0x0302: "CPU Unit error", 0x0303: "Controller error",
    0x0304: "Unit number error",
    0x0401: "Undefined command", 0x0402: "Not supported by model/version",
    0x0501: "Destination address setting error", 0x0502: "No routing tables", 0x0503: "Routing table error",
    0x0504: "Too many relays",
    0x1001: "Command too long", 0x1002: "Command too short", 0x1003: "Elements/data don't match",
    0x1004: "Command format error", 0x1005: "Header error",
    0x1101: "Area classification missing", 0x1102: "Access size error", 0x1103: "Address range error",
    0x1104: "Address range exceeded", 0x1106: "Program missing", 0x1109: "Relational error",
    0x110A: "Duplicate data access", 0x110B: "Response too long", 0x110C: "Parameter error",
    0x2002: "Protected", 0x2003: "Table missing", 0x2004: "Data missing", 0x2005: "Program missing",
    0x2006: "File missing", 0x2007: "Data mismatch",
    0x2101: "Read-only", 0x2102: "Protected, cannot write data link table", 0x2103: "Cannot register",
    0x2105: "Program missing", 0x2106: "File missing", 0x2107: "File name already exists",
    0x2108: "Cannot change",
    0x2201: "Not possible during execution", 0x2202: "Not possible while running",
    0x2203: "Wrong PLC mode (PROGRAM)", 0x2204: "Wrong PLC mode (DEBUG)", 0x2205: "Wrong PLC mode (MONITOR)",
    0x2206: "Wrong PLC mode (RUN)", 0x2207: "Specified node not polling node", 0x2208: "Step cannot be executed",
    0x2301: "File device missing", 0x2302: "Memory missing", 0x2303: "Clock missing",
    0x2401: "Table missing",
    0x2502: "Memory error", 0x2503: "I/O setting error", 0x2504: "Too many I/O points",
    0x2505: "CPU bus error", 0x2506: "I/O duplication", 0x2507: "I/O bus error",
    0x2509: "SYSMAC BUS/2 error", 0x250A: "CPU Bus Unit error", 0x250D: "SYSMAC BUS number duplication",
    0x250F: "Memory error", 0x2510: "SYSMAC BUS terminator missing",
    0x2601: "No protection", 0x2602: "Incorrect password", 0x2604: "Protected",
    0x2605: "Service already executing", 0x2606: "Service stopped", 0x2607: "No execution right",
    0x2608: "Settings not complete", 0x2609: "Necessary items not set", 0x260A: "Number already defined",
    0x260B: "Error will not clear",
    0x3001: "No access right",
    0x4001: "Service aborted",
}

# CS/CJ memory area codes (bit and word access); CV-mode codes for the older series
MEMORY_AREAS: dict[int, str] = {
    0x30: "CIO bit", 0xB0: "CIO word", 0x31: "WR bit", 0xB1: "WR word", 0x32: "HR bit", 0xB2: "HR word",
    0x33: "AR bit", 0xB3: "AR word", 0x02: "DM bit", 0x82: "DM word", 0x09: "TIM/CNT flag",
    0x89: "TIM/CNT PV", 0x06: "TK bit", 0x46: "TK status", 0x07: "IR/DR", 0xDC: "IR", 0xBC: "DR",
    0x98: "EM current bank word", 0x00: "CIO bit (CV)", 0x80: "CIO word (CV)", 0x01: "TIM/CNT flag (CV)",
    0x81: "TIM/CNT PV (CV)", 0x03: "Transition flag (CV)", 0x04: "Step flag (CV)",
    0x05: "Forced status (CV)", 0x9C: "DR (CV)",
}
for _bank in range(16):
    MEMORY_AREAS[0xA0 + _bank] = f"EM bank {_bank} word"
    MEMORY_AREAS[0x20 + _bank] = f"EM bank {_bank} bit"

# FINS/TCP commands (the 4-byte command after "FINS" and the length)
TCP_COMMANDS = {0: "Node Address Data Send (client)", 1: "Node Address Data Send (server)",
                2: "Frame Send", 3: "Frame Send Error Notification", 6: "Connection Confirmation"}
TCP_NODE_CLIENT, TCP_NODE_SERVER, TCP_FRAME = 0, 1, 2


def end_code(mres: int, sres: int) -> int:
    """The end code without its flag bits (MRES bit 7: relay error; SRES bits 6-7: fatal /
    non-fatal CPU error)."""
    return (mres & 0x7F) << 8 | (sres & 0x3F)


def command_name(code: int) -> str:
    entry = COMMANDS.get(code)
    return entry[0] if entry else f"Command 0x{code:04X}"
