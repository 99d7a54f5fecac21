"""CIP device identity: the Identity object's attributes as identity keys, read from the CIP
Identity items of a ListIdentity reply and from replies to Get_Attributes_All /
Get_Attribute_Single / Get_Attribute_List on the Identity object; plus the shipped CIP name
tables (vendors, device types, and the status and class names cip.py looks up)."""
from __future__ import annotations

import csv
from functools import cache
from importlib import resources

from plantguard.protocols._header import header
from plantguard.protocols.base import printable, u16le, u32le
from plantguard.protocols.enip.encap import ITEM_IDENTITY, cpf_items

# A ListIdentity CIP Identity item: encapsulation version, then a socket address (sockaddr_in,
# big-endian), then the Identity attributes.
IDENTITY_ITEM = header("IdentityItem", "<", ("version", "H"))
SOCKET_ADDRESS = header("SocketAddress", ">", ("family", "H"), ("port", "H"), ("address", "4s"), ("zero", "8s"))
# The Identity attributes 1-7 as Get_Attributes_All and ListIdentity give them (the product
# name's bytes follow, then the state byte when present).
IDENTITY_CORE = header("IdentityCore", "<", ("vendor_id", "H"), ("device_type_id", "H"), ("product_code", "H"),
                       ("major", "B"), ("minor", "B"), ("status", "H"), ("serial", "I"), ("name_length", "B"))
MIN_IDENTITY_ITEM = 34

# Identity object attributes: id -> identity key
IDENTITY_ATTRS = {1: "vendor_id", 2: "device_type_id", 3: "product_code", 4: "revision", 5: "status",
                  6: "serial", 7: "product", 8: "state"}
_IDENTITY_SIZES = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 4, 8: 1, 9: 2, 10: 1}
IDENTIFYING_KEYS = frozenset({"vendor_id", "device_type_id", "product_code", "firmware", "serial", "product"})


# --- data tables ---------------------------------------------------------------------------

@cache
def _table(filename: str) -> dict[int, str]:
    text = resources.files("plantguard.data").joinpath(filename).read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {int(r["id"]): r["name"] for r in rows}


def vendor_name(vendor_id: int) -> str | None:
    return _table("cip_vendors.csv").get(vendor_id)


def device_type_name(type_id: int) -> str | None:
    return _table("cip_device_types.csv").get(type_id)


# --- identity --------------------------------------------------------------------------------

def parse_list_identity(data: bytes) -> list[dict]:
    """Identity keys from the CIP Identity items of a ListIdentity reply."""
    out = []
    for typ, item in cpf_items(data):
        if typ != ITEM_IDENTITY or len(item) < MIN_IDENTITY_ITEM:
            continue
        version = IDENTITY_ITEM.unpack_from(item).version
        sock = SOCKET_ADDRESS.unpack_from(item, IDENTITY_ITEM.size)
        ip = ".".join(str(b) for b in sock.address)
        ident = _identity_core(item[IDENTITY_ITEM.size + SOCKET_ADDRESS.size:])
        if ident is None:
            continue
        ident.update(ip=ip, port=sock.port, encapsulation_version=version)
        out.append(ident)
    return out


def _identity_core(b: bytes) -> dict | None:
    """vendor, type, product code, revision, status, serial, product name [, state]."""
    if len(b) < IDENTITY_CORE.size:
        return None
    h = IDENTITY_CORE.unpack_from(b)
    ident = _named_identity(h.vendor_id, h.device_type_id)
    ident.update(product_code=h.product_code, firmware=f"{h.major}.{h.minor}", status=f"0x{h.status:04x}",
                 serial=f"0x{h.serial:08x}")
    end = IDENTITY_CORE.size + h.name_length
    name = printable(b[IDENTITY_CORE.size:end])
    if name:
        ident["product"] = name
    if len(b) > end:
        ident["state"] = f"0x{b[end]:02x}"
    return ident


def _named_identity(vendor: int, dtype: int) -> dict:
    ident: dict = {"vendor_id": vendor, "device_type_id": dtype}
    vname, tname = vendor_name(vendor), device_type_name(dtype)
    if vname:
        ident["vendor"] = vname
    if tname:
        ident["device_type"] = tname
    return ident


def identity_from_reply(req, data: bytes) -> dict:
    """Identity keys from a successful reply to `req` (a CipMessage), a read of the Identity
    object."""
    if req.service == 0x01:
        return _identity_core(data) or {}
    if req.service == 0x0E and req.attribute_id is not None:
        return _identity_attrs([(req.attribute_id, data)])
    if req.service == 0x03:
        return _identity_attrs(_attribute_list_reply(data))
    return {}


def _attribute_list_reply(data: bytes) -> list[tuple[int, bytes]]:
    """(attribute, value bytes) from a Get_Attribute_List reply to the Identity object; stops at
    an attribute whose size is not known (its value cannot be skipped)."""
    if len(data) < 2:
        return []
    count = u16le(data, 0)[0]
    off, out = 2, []
    for _ in range(min(count, 64)):
        if off + 4 > len(data):
            break
        attr, status = u16le(data, off)[0], u16le(data, off + 2)[0]
        off += 4
        if status != 0:
            continue
        if attr == 7:
            size = 1 + data[off] if off < len(data) else 0
        else:
            size = _IDENTITY_SIZES.get(attr, -1)
        if size <= 0 or off + size > len(data):
            break
        out.append((attr, data[off:off + size]))
        off += size
    return out


def _identity_attrs(pairs: list[tuple[int, bytes]]) -> dict:
    raw: dict = {}
    for attr, value in pairs:
        key = IDENTITY_ATTRS.get(attr)
        if key is None:
            continue
        if attr in (1, 2, 3) and len(value) >= 2:
            raw[key] = u16le(value, 0)[0]
        elif attr == 4 and len(value) >= 2:
            raw["firmware"] = f"{value[0]}.{value[1]}"
        elif attr == 5 and len(value) >= 2:
            raw["status"] = f"0x{u16le(value, 0)[0]:04x}"
        elif attr == 6 and len(value) >= 4:
            raw["serial"] = f"0x{u32le(value, 0)[0]:08x}"
        elif attr == 7 and value:
            name = printable(value[1:1 + value[0]])
            if name:
                raw["product"] = name
        elif attr == 8 and value:
            raw["state"] = f"0x{value[0]:02x}"
    if "vendor_id" in raw and vendor_name(raw["vendor_id"]):
        raw["vendor"] = vendor_name(raw["vendor_id"])
    if "device_type_id" in raw and device_type_name(raw["device_type_id"]):
        raw["device_type"] = device_type_name(raw["device_type_id"])
    return raw
