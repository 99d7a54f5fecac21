"""ADS command ids, ADS states, reserved index groups and error codes, as Beckhoff's ADS
specification numbers them (command ids, error codes and transmission modes as tshark's `ams`
dissector names them), with the operation category each command falls in (model.OP_CATEGORIES).

Categories: reading data and subscribing to notifications is `read`; reading the device's
name, version or state (ReadDeviceInfo, ReadState) is `diagnostic`, as identification and status
reads are for the other controller protocols (an engineering tool online with a TwinCAT system
polls its state; an HMI polls data);
Write is `write`; ReadWrite is `write` unless its index group is one where the written bytes are
only the question (a symbol name to look up, a list of reads, a registry key to read): then
`read` (READWRITE_READS). On the system service (AMS port 10000) Write and ReadWrite take the
category of what the index group does to the host: `file` for its file functions, `config` for
the registry, the clock and the AMS NetId, `control` for starting a process. WriteControl is `control` (run, stop, reset, ...) or `config` for the
configuration states (CONFIG, RECONFIG, SAVECFG, LOADCFG)."""
from __future__ import annotations

READ_DEVICE_INFO, READ, WRITE, READ_STATE, WRITE_CONTROL = 1, 2, 3, 4, 5
ADD_NOTIFICATION, DELETE_NOTIFICATION, NOTIFICATION, READ_WRITE = 6, 7, 8, 9

# command id -> (name, category); the names as tshark's ams.cmdid value strings give them
COMMANDS: dict[int, tuple[str, str]] = {
    READ_DEVICE_INFO: ("ADS Read Device Info", "diagnostic"),
    READ: ("ADS Read", "read"),
    WRITE: ("ADS Write", "write"),
    READ_STATE: ("ADS Read State", "diagnostic"),
    WRITE_CONTROL: ("ADS Write Control", "control"),
    ADD_NOTIFICATION: ("ADS Add Device Notification", "read"),
    DELETE_NOTIFICATION: ("ADS Delete Device Notification", "read"),
    NOTIFICATION: ("ADS Device Notification", "read"),
    READ_WRITE: ("ADS Read Write", "write"),
}

# ADSSTATE (the state WriteControl asks for, ReadState reports); tshark 4.0 has no value
# strings for ams.ads_state, these are the specification's
ADS_STATES = {
    0: "INVALID", 1: "IDLE", 2: "RESET", 3: "INIT", 4: "START", 5: "RUN", 6: "STOP", 7: "SAVECFG",
    8: "LOADCFG", 9: "POWERFAILURE", 10: "POWERGOOD", 11: "ERROR", 12: "SHUTDOWN", 13: "SUSPEND",
    14: "RESUME", 15: "CONFIG", 16: "RECONFIG", 17: "STOPPING", 18: "INCOMPATIBLE", 19: "EXCEPTION",
}
# WriteControl into these states changes the configuration, not the running program
CONFIG_STATES = frozenset({7, 8, 15, 16})

# ams.ads_transmode value strings (AddDeviceNotification)
TRANS_MODES = {0: "NO TRANS", 1: "CLIENT CYCLE", 2: "CLIENT ON CHANGE", 3: "SERVER CYCLE",
               4: "SERVER ON CHANGE", 10: "CLIENT FIRST REQUEST"}

# reserved index groups of the ADS specification (ADSIGRP_*), and the system service's (AMS
# port 10000) groups the captures use
INDEX_GROUPS: dict[int, str] = {
    0x4020: "PLC memory %M", 0x4021: "PLC memory bits %MX", 0x4025: "PLC memory size",
    0x4030: "PLC retain data", 0x4040: "PLC data", 0xF003: "symbol handle by name",
    0xF004: "symbol value by name", 0xF005: "symbol value by handle", 0xF006: "release symbol handle",
    0xF007: "symbol info by name", 0xF008: "symbol version", 0xF009: "symbol info by name (extended)",
    0xF00A: "symbol download", 0xF00B: "symbol upload", 0xF00C: "symbol upload info",
    0xF00E: "data type upload", 0xF00F: "symbol upload info 2", 0xF010: "symbol notification",
    0xF020: "input image (bytes)", 0xF021: "input image (bits)", 0xF025: "input image size",
    0xF030: "output image (bytes)", 0xF031: "output image (bits)", 0xF035: "output image size",
    0xF040: "clear inputs", 0xF050: "clear outputs", 0xF060: "input/output image",
    0xF080: "sum read", 0xF081: "sum write", 0xF082: "sum read/write", 0xF083: "sum read (extended)",
    0xF084: "sum read (extended 2)", 0xF085: "sum add notifications", 0xF086: "sum delete notifications",
    0xF100: "device data",
}
SYSTEM_SERVICE_PORT = 10000
SYSTEM_GROUPS: dict[int, str] = {
    100: "file open/create", 101: "file open read", 102: "file open write", 110: "create file",
    111: "close handle", 120: "fopen", 121: "fclose", 122: "fread", 123: "fwrite", 124: "fseek",
    125: "ftell", 126: "fgets", 127: "fputs", 128: "fscanf", 129: "fprintf", 130: "feof",
    131: "file delete", 132: "file rename", 200: "registry HKEY_LOCAL_MACHINE", 300: "send e-mail",
    400: "time services", 500: "start process", 600: "change AMS NetId",
}
REGISTRY = 200
# ReadWrite to these groups writes only what it asks for (a name to resolve, the sub-reads of a
# sum read, a registry key to read): the device's data is read, not changed
READWRITE_READS = frozenset({0xF003, 0xF004, 0xF007, 0xF008, 0xF009, 0xF00B, 0xF00C, 0xF00E, 0xF00F,
                             0xF080, 0xF083, 0xF084, 0xF085, 0xF086})
# ... and these on the system service (registry read, fopen for reading, fread, fgets, feof, ftell)
SYSTEM_READWRITE_READS = frozenset({REGISTRY, 101, 122, 125, 126, 130})
# Write / ReadWrite to the system service: what the group does to the host (file access, the
# registry, the clock, starting a process, the AMS NetId) decides the category
_FILE_GROUPS = frozenset({100, 101, 102, 110, 111, *range(120, 133)})
SYSTEM_WRITE_CATEGORIES = {REGISTRY: "config", 300: "other", 400: "config", 500: "control", 600: "config"}
# groups whose written bytes start with a name (symbol name, registry key): shown in the detail
NAMED_GROUPS = frozenset({0xF003, 0xF004, 0xF007, 0xF009})

# AMS error codes (in the AMS header) and ADS return codes (the result of a response), as
# tshark's ams.errorcode and ams.adsresult value strings name them; 0 = no error
ERRORS: dict[int, str] = {
    0x001: "INTERNAL", 0x002: "NO RTIME", 0x003: "ALLOC LOCKED MEM", 0x004: "INSERT MAILBOX",
    0x005: "WRONGRECEIVEHMSG", 0x006: "TARGET PORT NOT FOUND", 0x007: "TARGET MACHINE NOT FOUND",
    0x008: "UNKNOWN CMDID", 0x009: "BAD TASKID", 0x00A: "NOIO", 0x00B: "UNKNOWN AMSCMD",
    0x00C: "WIN32 ERROR", 0x00D: "PORT NOT CONNECTED", 0x00E: "INVALID AMS LENGTH",
    0x00F: "INVALID AMS NETID", 0x010: "LOW INST LEVEL", 0x011: "NO DEBUG INT AVAILABLE",
    0x012: "PORT DISABLED", 0x013: "PORT ALREADY CONNECTED", 0x014: "AMSSYNC_W32ERROR",
    0x015: "AMSSYNC_TIMEOUT", 0x016: "AMSSYNC_AMSERROR", 0x017: "AMSSYNC_NOINDEXINMAP",
    0x018: "INVALID AMSPORT", 0x019: "NO MEMORY", 0x01A: "TCP SEND", 0x01B: "HOST UNREACHABLE",
    0x500: "ROUTERERR_NOLOCKEDMEMORY", 0x501: "ROUTERERR_RESIZEMEMORY", 0x502: "ROUTERERR_MAILBOXFULL",
    0x503: "ROUTERERR_DEBUGBOXFULL", 0x504: "ROUTERERR_UNKNOWNPORTTYPE", 0x505: "ROUTERERR_NOTINITIALIZED",
    0x506: "ROUTERERR_PORTALREADYINUSE", 0x507: "ROUTERERR_NOTREGISTERED", 0x508: "ROUTERERR_NOMOREQUEUES",
    0x509: "ROUTERERR_INVALIDPORT", 0x50A: "ROUTERERR_NOTACTIVATED", 0x700: "ERROR", 0x701: "SRV NOT SUPP",
    0x702: "INVALID GRP", 0x703: "INVALID OFFSET", 0x704: "INVALID ACCESS", 0x705: "INVALID SIZE",
    0x706: "INVALID DATA", 0x707: "NOT READY", 0x708: "BUSY", 0x709: "INVALID CONTEXT", 0x70A: "NO MEMORY",
    0x70B: "INVALID PARM", 0x70C: "NOT FOUND", 0x70D: "SYNTAX", 0x70E: "INCOMPATIBLE", 0x70F: "EXISTS",
    0x710: "SYMBOL NOT FOUND", 0x711: "SYMBOL VERSION INVALID", 0x712: "INVALID STATE",
    0x713: "TRANS MODE NOT SUPP", 0x714: "NOTIFY HND INVALID", 0x715: "CLIENT UNKNOWN",
    0x716: "NO MORE HDLS", 0x717: "INVALID WATCHSIZE", 0x718: "NOT INIT", 0x719: "TIMEOUT",
    0x71A: "NO INTERFACE", 0x71B: "INVALID INTERFACE", 0x71C: "INVALID CLSID", 0x71D: "INVALID OBJID",
    0x71E: "PENDING", 0x71F: "ABORTED", 0x720: "WARNING", 0x721: "INVALID ARRAY IDX", 0x740: "CLIENT ERROR",
    0x741: "CLIENT INVALID PARM", 0x742: "CLIENT LIST EMPTY", 0x743: "CLIENT VAR USED",
    0x744: "CLIENT DUPL INVOKEID", 0x745: "CLIENT SYNC TIMEOUT", 0x746: "CLIENT W32ERROR",
    0x747: "CLIENT TIMEOUT INVALID", 0x748: "CLIENT PORT NOT OPEN", 0x749: "CLIENT NO AMS ADDR",
    0x750: "CLIENT SYNC INTERNAL", 0x751: "CLIENT ADD HASH", 0x752: "CLIENT REMOVE HASH",
    0x753: "CLIENT NO MORE SYM", 0x754: "CLIENT SYNC RES INVALID", 0x755: "CLIENT SYNC PORT LOCKED",
}


def command_name(cmd: int) -> str:
    entry = COMMANDS.get(cmd)
    return entry[0] if entry else f"AMS command {cmd}"


def error_name(code: int) -> str:
    name = ERRORS.get(code)
    if name:
        return name
    if 0x2000 <= code < 0x2100:
        return f"I/O error 0x{code:04X}"
    return f"error 0x{code:X}"


def group_name(port: int, group: int) -> str:
    if port == SYSTEM_SERVICE_PORT and group in SYSTEM_GROUPS:
        return SYSTEM_GROUPS[group]
    return INDEX_GROUPS.get(group, "")


def readwrite_category(port: int, group: int) -> str:
    """ReadWrite: `read` when the group only takes a question (see READWRITE_READS); on the system
    service `file` for its file functions and the group's own category for the others; else `write`."""
    if port == SYSTEM_SERVICE_PORT:
        if group in _FILE_GROUPS:
            return "file"
        if group in SYSTEM_READWRITE_READS:
            return "read"
        return SYSTEM_WRITE_CATEGORIES.get(group, "write")
    return "read" if group in READWRITE_READS else "write"


def write_category(port: int, group: int) -> str:
    """Write: `write` (data) except on the system service, where it writes a file, the registry,
    the clock, starts a process or changes the AMS NetId."""
    if port == SYSTEM_SERVICE_PORT:
        if group in _FILE_GROUPS:
            return "file"
        return SYSTEM_WRITE_CATEGORIES.get(group, "write")
    return "write"


def control_category(state: int) -> str:
    return "config" if state in CONFIG_STATES else "control"
