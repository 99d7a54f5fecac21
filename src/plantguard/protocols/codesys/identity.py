"""The name service Identification reply (package type 0xC280): the runtime's node name,
device name, vendor name, firmware version, target id and serial number.

Layout after the 8-byte name service header, as nmap's `codesys3.lua` NameServiceResponse and
Microsoft's `NsClientDeviceInfo` both read it (they agree on every field used here): max
channels u16, byte order u8 (1 = Intel / little-endian), parent address difference u8, parent
address size u16 (bytes), node / device / vendor name lengths u16 each (UTF-16 characters),
target type u32, target id u32, target version u32 (the firmware, most significant byte first
when printed: 0x03050F00 is 3.5.15.0), flags u32, serial length u8, OEM data length u8, block
driver type u8, 9 reserved bytes: 48 bytes from the package type on. Then the parent address,
each name in UTF-16 followed by a 2-byte NUL, the serial number in ASCII and a NUL, the OEM data."""
from __future__ import annotations

import struct

from plantguard.protocols.base import printable

FIXED = 48


def identity_from_ns_reply(p: bytes) -> dict:
    """Identity keys from a name service Identification payload; {} when it does not fit."""
    if len(p) < FIXED:
        return {}
    intel = p[10] == 1
    e = "<" if intel else ">"
    parent, node_len, dev_len, vendor_len = struct.unpack_from(e + "HHHH", p, 12)
    target_type, target_id, version, _flags = struct.unpack_from(e + "IIII", p, 20)
    serial_len = p[36]
    enc = "utf-16-le" if intel else "utf-16-be"
    off = FIXED + parent
    names = []
    for n in (node_len, dev_len, vendor_len):
        if off + 2 * n > len(p):
            return {}
        names.append(printable(p[off:off + 2 * n].decode(enc, "replace").encode("utf-8")))
        off += 2 * n + 2
    node, device, vendor = names
    ident: dict = {"firmware": f"{version >> 24}.{(version >> 16) & 0xFF}.{(version >> 8) & 0xFF}.{version & 0xFF}",
                   "device_id": target_id}
    if vendor:
        ident["vendor"] = vendor
    if device:
        ident["product"] = device
    if node:
        ident["name"] = node
    if serial_len and off + serial_len <= len(p):
        serial = printable(p[off:off + serial_len].split(b"\x00")[0])
        if serial:
            ident["serial"] = serial
    if target_type:
        ident["device_type_id"] = target_type
    return ident
