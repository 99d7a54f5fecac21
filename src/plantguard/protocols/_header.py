"""Fixed protocol headers declared as data, the way dpkt declares fields: a name, a byte order
and (field, struct format) pairs, compiled once into a struct.Struct and a namedtuple type.

    ENCAP = header("EncapHeader", "<", ("command", "H"), ("length", "H"), ...)
    h = ENCAP.unpack_from(buf, off)      # -> EncapHeader(command=..., length=..., ...)
    if len(buf) - off < ENCAP.size: ...  # bytes the header takes
    ENCAP.offset.length                  # 2: byte offset of a field (routine recognisers index
                                         # byte matrices with it)

Decoders on hot paths pay one precompiled Struct unpack and one tuple construction per header;
nothing is built per call. Only explicit byte orders are accepted ("<", ">", "!"): with native
alignment the offsets would depend on the machine."""
from __future__ import annotations

import struct
from collections import namedtuple

BYTE_ORDERS = ("<", ">", "!")


class Header:
    """One fixed-size header layout; build it with header()."""
    __slots__ = ("byte_order", "layout", "name", "offset", "size", "struct", "type", "unpack_from")

    def __init__(self, name: str, byte_order: str, layout: tuple[tuple[str, str], ...]):
        if byte_order not in BYTE_ORDERS:
            raise ValueError(f"header {name}: byte order must be one of {' '.join(BYTE_ORDERS)}")
        offsets, at = [], 0
        for field, fmt in layout:
            size = struct.calcsize(byte_order + fmt)
            if len(struct.unpack(byte_order + fmt, bytes(size))) != 1:
                raise ValueError(f"header {name}: field {field!r} format {fmt!r} must give one value")
            offsets.append(at)
            at += size
        self.name, self.byte_order, self.layout = name, byte_order, tuple(layout)
        self.type = namedtuple(name, [field for field, _fmt in layout])
        self.struct = struct.Struct(byte_order + "".join(fmt for _field, fmt in layout))
        self.size = self.struct.size
        self.offset = self.type(*offsets)
        cls, new, unpack = self.type, tuple.__new__, self.struct.unpack_from

        def unpack_from(buf, offset: int = 0):
            """The header's fields at `offset` of `buf` as a namedtuple (struct.error when short)."""
            return new(cls, unpack(buf, offset))   # _make without its length check: Struct is exact

        self.unpack_from = unpack_from

    def extend(self, name: str, *fields: tuple[str, str]) -> Header:
        """This layout followed by more fields (an S7 ack header is the job header + error)."""
        return Header(name, self.byte_order, self.layout + fields)

    def through(self, name: str, last: str) -> Header:
        """The leading fields up to and including `last` (what framing needs to read)."""
        names = [field for field, _fmt in self.layout]
        return Header(name, self.byte_order, self.layout[:names.index(last) + 1])

    def __repr__(self) -> str:
        fields = ", ".join(f"{field}:{fmt}" for field, fmt in self.layout)
        return f"<header {self.name} {self.byte_order} {self.size} bytes: {fields}>"


def header(name: str, byte_order: str, *fields: tuple[str, str]) -> Header:
    """A header of `fields` ((name, struct format) pairs, one value each) in `byte_order`."""
    return Header(name, byte_order, fields)
