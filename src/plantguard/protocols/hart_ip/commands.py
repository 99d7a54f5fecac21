"""HART command numbers with the operation category each falls in (model.OP_CATEGORIES), the
response code classes (error or warning), the HART-IP error codes and the HART manufacturer
and device profile codes this module names.

Command numbers and names are the HART universal and common practice command specifications';
the response code classes are the HART command summary's (codes 8, 14, 24-27, 30-31 and 96-111
are warnings: the command was carried out; every other non-zero code is an error)."""
from __future__ import annotations

# command -> (name, category)
COMMANDS: dict[int, tuple[str, str]] = {
    # universal commands
    0: ("Read Unique Identifier", "diagnostic"),
    1: ("Read Primary Variable", "read"),
    2: ("Read Loop Current and Percent of Range", "read"),
    3: ("Read Dynamic Variables and Loop Current", "read"),
    6: ("Write Polling Address", "config"),
    7: ("Read Loop Configuration", "read"),
    8: ("Read Dynamic Variable Classifications", "read"),
    9: ("Read Device Variables with Status", "read"),
    11: ("Read Unique Identifier Associated with Tag", "diagnostic"),
    12: ("Read Message", "read"),
    13: ("Read Tag, Descriptor, Date", "diagnostic"),
    14: ("Read Primary Variable Transducer Information", "read"),
    15: ("Read Device Information", "read"),
    16: ("Read Final Assembly Number", "read"),
    17: ("Write Message", "write"),
    18: ("Write Tag, Descriptor, Date", "config"),
    19: ("Write Final Assembly Number", "config"),
    20: ("Read Long Tag", "diagnostic"),
    21: ("Read Unique Identifier Associated with Long Tag", "diagnostic"),
    22: ("Write Long Tag", "config"),
    38: ("Reset Configuration Changed Flag", "config"),
    48: ("Read Additional Device Status", "read"),
    # common practice commands
    33: ("Read Device Variables", "read"),
    34: ("Write Primary Variable Damping Value", "config"),
    35: ("Write Primary Variable Range Values", "config"),
    36: ("Set Primary Variable Upper Range Value", "config"),
    37: ("Set Primary Variable Lower Range Value", "config"),
    39: ("EEPROM Control", "config"),
    40: ("Enter/Exit Fixed Current Mode", "control"),
    41: ("Perform Self Test", "control"),
    42: ("Perform Device Reset", "control"),
    43: ("Set Primary Variable Zero", "config"),
    44: ("Write Primary Variable Units", "config"),
    45: ("Trim Loop Current Zero", "config"),
    46: ("Trim Loop Current Gain", "config"),
    47: ("Write Primary Variable Transfer Function", "config"),
    49: ("Write Primary Variable Transducer Serial Number", "config"),
    50: ("Read Dynamic Variable Assignments", "read"),
    51: ("Write Dynamic Variable Assignments", "config"),
    52: ("Set Device Variable Zero", "config"),
    53: ("Write Device Variable Units", "config"),
    54: ("Read Device Variable Information", "read"),
    55: ("Write Device Variable Damping Value", "config"),
    56: ("Write Device Variable Transducer Serial Number", "config"),
    57: ("Read Unit Tag, Descriptor, Date", "read"),
    58: ("Write Unit Tag, Descriptor, Date", "config"),
    59: ("Write Number of Response Preambles", "config"),
    60: ("Read Analog Channel and Percent of Range", "read"),
    62: ("Read Analog Channels", "read"),
    63: ("Read Analog Channel Information", "read"),
    64: ("Write Analog Channel Additional Damping Value", "config"),
    65: ("Write Analog Channel Range Values", "config"),
    66: ("Enter/Exit Fixed Analog Channel Mode", "control"),
    67: ("Trim Analog Channel Zero", "config"),
    68: ("Trim Analog Channel Gain", "config"),
    69: ("Write Analog Channel Transfer Function", "config"),
    70: ("Read Analog Channel Endpoint Values", "read"),
    71: ("Lock Device", "config"),
    72: ("Squawk", "control"),
    73: ("Find Device", "diagnostic"),
    74: ("Read I/O System Capabilities", "read"),
    75: ("Poll Sub-Device", "diagnostic"),
    76: ("Read Lock Device State", "read"),
    77: ("Send Command to Sub-Device", "other"),
    78: ("Read Aggregated Commands", "read"),
    79: ("Write Device Variable", "write"),
    80: ("Read Device Variable Trim Points", "read"),
    81: ("Read Device Variable Trim Guidelines", "read"),
    82: ("Write Device Variable Trim Point", "config"),
    83: ("Reset Device Variable Trim", "config"),
    84: ("Read Sub-Device Identity Summary", "diagnostic"),
    89: ("Set Real-Time Clock", "config"),
    90: ("Read Real-Time Clock", "read"),
    95: ("Read Device Communications Statistics", "diagnostic"),
    103: ("Write Burst Period", "config"),
    104: ("Write Burst Trigger", "config"),
    105: ("Read Burst Mode Configuration", "read"),
    106: ("Flush Delayed Responses", "control"),
    107: ("Write Burst Device Variables", "config"),
    108: ("Write Burst Mode Command Number", "config"),
    109: ("Burst Mode Control", "config"),
    512: ("Read Country Code", "read"),
    513: ("Write Country Code", "config"),
}

# commands whose replies say who the device is (cmd 0's layout: 11 and 21 answer the same way)
IDENTIFY = frozenset({0, 11, 21})
READ_TAG, READ_LONG_TAG = 13, 20
# cyclic process data polls (routine recognition)
POLLS = frozenset({1, 2, 3, 9})

_WARNINGS = frozenset({8, 14, 24, 25, 26, 27, 30, 31, *range(96, 112)})
RESPONSE_CODES: dict[int, str] = {
    0: "Success", 2: "Invalid Selection", 3: "Passed Parameter Too Large", 4: "Passed Parameter Too Small",
    5: "Too Few Data Bytes Received", 6: "Device-Specific Command Error", 7: "In Write Protect Mode",
    8: "Warning (Update Failure / Set to Nearest Possible Value)", 16: "Access Restricted", 32: "Busy",
    33: "Delayed Response Initiated", 34: "Delayed Response Running", 35: "Delayed Response Dead",
    36: "Delayed Response Conflict", 64: "Command Not Implemented",
}
COMM_ERROR = 0x80   # in a reply's first status byte: a communication error summary, not a response code

# HART-IP Error / NAK messages: the status byte
HARTIP_ERRORS = {0: "Session closed", 1: "Primary session unavailable", 2: "Service unavailable"}

# HART manufacturer identification codes named here (only those whose owner is certain; the rest
# stay numeric): 0x11 and 0x26 from the HART manufacturer table, 0xF9 as the FieldComm Group's
# own HART-IP device reports itself in the icsnpp-hart-ip traces
MANUFACTURERS: dict[int, str] = {0x11: "Endress+Hauser", 0x26: "Rosemount", 0xF9: "FieldComm Group"}

# device profile codes (cmd 0 byte 21) named here, and those that make the answering device the
# HART-IP server itself rather than an instrument behind it
DEVICE_PROFILES: dict[int, str] = {65: "HART-IP process automation device", 132: "WirelessHART gateway"}
SERVER_PROFILES = frozenset({65, 132})
FLAG_PROTOCOL_BRIDGE = 0x04     # cmd 0 flags: the device is a protocol bridge (a gateway, a multiplexer)

PHYSICAL_SIGNALING = {0: "Bell 202 current", 1: "Bell 202 voltage", 2: "RS-485", 3: "RS-232", 4: "wireless",
                      6: "special"}


def command_name(command: int) -> str:
    entry = COMMANDS.get(command)
    return entry[0] if entry else f"Command {command}"


def is_error(code: int) -> bool:
    """A response code the device failed the command with (warnings are not errors)."""
    return code != 0 and code not in _WARNINGS


def response_name(code: int) -> str:
    if code in RESPONSE_CODES:
        return RESPONSE_CODES[code]
    return f"Warning {code}" if code in _WARNINGS else f"Response code {code}"
