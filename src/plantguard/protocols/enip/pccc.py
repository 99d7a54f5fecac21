"""PCCC (the DF1 command set of PLC-5 / SLC 500 / MicroLogix) tunnelled in CIP: the Execute
PCCC service of the PCCC object carries a requestor id, then the PCCC command, status,
transaction number and function code; this names the command and gives its category."""
from __future__ import annotations

CLASS_PCCC = 0x67          # the PCCC object
EXECUTE_PCCC = 0x4B        # its Execute PCCC service

# PCCC (command, function) inside Execute PCCC: (name, category)
PCCC = {
    (0x06, 0x03): ("Diagnostic Status", "diagnostic"),
    (0x0F, 0x11): ("Get Edit Resource", "program"),
    (0x0F, 0x12): ("Return Edit Resource", "program"),
    (0x0F, 0x80): ("Change Mode", "control"),
    (0x0F, 0x67): ("Typed Write", "write"),
    (0x0F, 0x68): ("Typed Read", "read"),
    (0x0F, 0xA1): ("Protected Typed Logical Read (2 address fields)", "read"),
    (0x0F, 0xA2): ("Protected Typed Logical Read (3 address fields)", "read"),
    (0x0F, 0xA9): ("Protected Typed Logical Write (2 address fields)", "write"),
    (0x0F, 0xAA): ("Protected Typed Logical Write (3 address fields)", "write"),
    (0x0F, 0xAB): ("Protected Typed Logical Masked Write", "write"),
}
# After the requestor id: command, status, transaction number (2 bytes), then the function.
CMD_AT, FNC_AT = 0, 4
MIN_REQUESTOR_ID = 7       # the requestor id's length byte counts itself


def pccc_command(data: bytes) -> tuple[str, str, str]:
    """(name, category, reason) of the PCCC command in an Execute PCCC request's data."""
    if not data:
        return "Execute PCCC", "other", "PCCC"
    off = data[0]                     # requestor id length includes its own byte
    if off < MIN_REQUESTOR_ID or off + FNC_AT + 1 > len(data):
        return "Execute PCCC", "other", "PCCC"
    cmd, fnc = data[off + CMD_AT], data[off + FNC_AT]
    name, category = PCCC.get((cmd, fnc), (f"PCCC 0x{cmd:02x}/0x{fnc:02x}", "other"))
    return f"PCCC {name}" if not name.startswith("PCCC") else name, category, \
        f"PCCC command 0x{cmd:02x} function 0x{fnc:02x}"
