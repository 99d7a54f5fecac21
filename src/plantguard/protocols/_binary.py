"""The one bounds-checked reader over a message held in memory, shared by the decoders that walk
binary structures field by field: OPC UA (little-endian integers, built on in opcua.encoding)
and TLS (big-endian integers and length-prefixed vectors).

A read past the end raises Truncated. It is a Malformed, which is a ValueError, so callers that
catch ValueError (TLS) or the protocol's Malformed (OPC UA) both stop at short data."""
from __future__ import annotations

import struct

_U16LE = struct.Struct("<H").unpack
_U32LE = struct.Struct("<I").unpack
_I32LE = struct.Struct("<i").unpack


class Malformed(ValueError):
    """Bytes that do not read as the protocol says."""


class Truncated(Malformed):
    """A read ran past the end of the data."""


class Reader:
    """Reads forward from `off` through `b`; every read checks the bounds first."""
    __slots__ = ("b", "off")

    def __init__(self, b: bytes, off: int = 0):
        self.b, self.off = b, off

    def take(self, n: int) -> bytes:
        if n < 0 or self.off + n > len(self.b):
            raise Truncated("past end")
        out = self.b[self.off:self.off + n]
        self.off += n
        return out

    def left(self) -> int:
        return len(self.b) - self.off

    def u8(self) -> int:
        return self.take(1)[0]

    # little-endian fixed-size integers
    def u16le(self) -> int:
        return _U16LE(self.take(2))[0]

    def u32le(self) -> int:
        return _U32LE(self.take(4))[0]

    def i32le(self) -> int:
        return _I32LE(self.take(4))[0]

    # big-endian integers of any width and vectors with a big-endian length prefix
    def num(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, n: int) -> bytes:
        """A vector whose length is the `n`-byte big-endian number in front of it."""
        return self.take(self.num(n))
