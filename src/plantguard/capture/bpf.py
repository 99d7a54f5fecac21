"""--bpf FILTER: a subset of the tcpdump filter language, parsed here and evaluated on the
decoded packets, a whole chunk at a time (numpy masks over columns.decode's arrays), so that the
packets it drops are gone before flows, classification and the deep tier.

Supported (docs/cli.md, "Packet filter"):
  [src|dst] host ADDR        IPv4 or IPv6; an IPv4 host also matches ARP sender/target
  [src|dst] net CIDR         (ADDR/LEN; an IPv4 net also matches ARP)
  [tcp|udp] [src|dst] port N,  [tcp|udp] [src|dst] portrange A-B
  tcp  udp  icmp  icmp6  ip  ip6  arp  vlan [N]
  ether [src|dst] host MAC,  ether proto N (a number above 1500, or \\ip, \\ip6, \\arp)
  and &&  or ||  not !  ( )  and a bare value after and/or repeats the previous kind
  (`port 502 or 102`, `host 10.0.0.1 or 10.0.0.2`), as tcpdump does.

Where plantguard's decode differs from libpcap's byte offsets: VLAN tags are looked through
(`ip` matches tagged IPv4; `vlan N` checks the outer tag), a tunnelled packet is matched by its
inner packet (what plantguard analyses), and an IP fragment has no ports. Anything else is a
FilterError naming the position.

PacketFilter.chunks() wraps a capture's chunks (engine.analyze and reference.analyze_reference
both use it: the hook is one place each); Fields.from_layers gives the reference its own,
frame-by-frame reading of the same fields."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from plantguard.errors import InputError

ETH_ARP = 0x0806
ETHER_NAMES = {"ip": 0x0800, "ip6": 0x86DD, "arp": ETH_ARP}
# operators, then words; a lone & | < > = is a token too, so the parser names it as unsupported
TOKEN = re.compile(r"\s*(?:(&&|\|\||!=|[!()&|<>=])|([^\s()!&|<>=]+))")
PROTOS = {"tcp": 6, "udp": 17}


class FilterError(InputError):
    """A filter expression that cannot be used: the message names the position."""


# ------------------------------------------------------------------------------ the fields
@dataclass
class Fields:
    """What the filter reads of each packet (one array element per record)."""
    ok: np.ndarray          # bool: link layer decoded
    ethertype: np.ndarray
    vlan: np.ndarray        # -1 untagged
    src_mac: np.ndarray     # int64, -1 none
    dst_mac: np.ndarray
    ip_version: np.ndarray
    ip_proto: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    ports: np.ndarray       # bool: a TCP/UDP packet with ports (not a fragment)
    sport: np.ndarray
    dport: np.ndarray
    arp_spa: np.ndarray     # uint64: ARP sender / target IPv4 address (ARP rows only)
    arp_tpa: np.ndarray

    @classmethod
    def from_columns(cls, arr: np.ndarray, chunk, cols) -> "Fields":
        from plantguard.capture.columns import gather
        n = len(cols)
        arp = cols.ok & (cols.ethertype == ETH_ARP) & (cols.l3 + 28 <= chunk.caplen)
        spa = np.zeros(n, np.uint64)
        tpa = np.zeros(n, np.uint64)
        rows = np.flatnonzero(arp)
        if len(rows):
            g = gather(arr, chunk.offsets[rows].astype(np.int64) + cols.l3[rows], 28).astype(np.uint64)
            spa[rows] = (g[:, 14] << 24) | (g[:, 15] << 16) | (g[:, 16] << 8) | g[:, 17]
            tpa[rows] = (g[:, 24] << 24) | (g[:, 25] << 16) | (g[:, 26] << 8) | g[:, 27]
        ok = cols.ok
        return cls(ok, np.where(ok, cols.ethertype, -1), np.where(ok, cols.vlan, -1), cols.src_mac, cols.dst_mac,
                   cols.ip_version, cols.ip_proto, cols.src_hi, cols.src_lo, cols.dst_hi, cols.dst_lo,
                   (cols.l4 == 6) | (cols.l4 == 17), cols.sport, cols.dport, spa, tpa)

    @classmethod
    def from_layers(cls, lay) -> "Fields":
        """One frame's fields from layers.decode_frame's Layers (None: not decoded)."""
        one = lambda v, t=np.int64: np.array([v], t)  # noqa: E731
        if lay is None:
            z = one(0)
            return cls(one(False, bool), one(-1), one(-1), one(-1), one(-1), z, z, *(one(0, np.uint64),) * 4,
                       one(False, bool), z, z, one(0, np.uint64), one(0, np.uint64))
        hi_lo = [_hi_lo(a) if lay.ip_version else (0, 0) for a in (lay.src, lay.dst)]
        spa = tpa = 0
        l3 = bytes(lay.l3[:28]) if lay.ethertype == ETH_ARP else b""
        if len(l3) >= 28:
            spa, tpa = int.from_bytes(l3[14:18], "big"), int.from_bytes(l3[24:28], "big")
        return cls(one(True, bool), one(lay.ethertype), one(-1 if lay.vlan is None else lay.vlan),
                   one(_mac(lay.src_mac)), one(_mac(lay.dst_mac)), one(lay.ip_version), one(lay.ip_proto),
                   one(hi_lo[0][0], np.uint64), one(hi_lo[0][1], np.uint64),
                   one(hi_lo[1][0], np.uint64), one(hi_lo[1][1], np.uint64),
                   one(lay.l4 in ("tcp", "udp") and not lay.fragment, bool), one(lay.sport), one(lay.dport),
                   one(spa, np.uint64), one(tpa, np.uint64))


def _hi_lo(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 0
    v = int(ipaddress.ip_address(text))
    return v >> 64, v & ((1 << 64) - 1)


def _mac(text: str | None) -> int:
    return -1 if not text else int(text.replace(":", ""), 16)


# ------------------------------------------------------------------------------ the tree
class Node:
    def mask(self, f: Fields) -> np.ndarray:
        raise NotImplementedError


@dataclass
class Not(Node):
    a: Node

    def mask(self, f):
        return ~self.a.mask(f)


@dataclass
class Both(Node):
    a: Node
    b: Node
    any_of: bool        # or (True), and (False)

    def mask(self, f):
        return (self.a.mask(f) | self.b.mask(f)) if self.any_of else (self.a.mask(f) & self.b.mask(f))


def _dirs(direction: str | None, src, dst):
    if direction == "src":
        return src
    if direction == "dst":
        return dst
    return src | dst


@dataclass
class Net(Node):
    """host (a full-length prefix) or net: an IPv4 one also matches ARP's addresses."""
    version: int
    hi: int
    lo: int
    hi_mask: int
    lo_mask: int
    direction: str | None

    def mask(self, f):
        u = np.uint64
        hm, lm, hi, lo = u(self.hi_mask), u(self.lo_mask), u(self.hi), u(self.lo)

        def eq(h, low):
            return ((h & hm) == hi) & ((low & lm) == lo)
        ip = (f.ip_version == self.version) & _dirs(self.direction, eq(f.src_hi, f.src_lo), eq(f.dst_hi, f.dst_lo))
        if self.version != 4:
            return ip
        arp = f.ok & (f.ethertype == ETH_ARP)
        zero = np.zeros_like(f.arp_spa)
        return ip | (arp & _dirs(self.direction, eq(zero, f.arp_spa), eq(zero, f.arp_tpa)))


@dataclass
class Port(Node):
    low: int
    high: int
    direction: str | None
    proto: int | None      # 6, 17 or None (either)

    def mask(self, f):
        def within(p):
            return (p >= self.low) & (p <= self.high)
        m = f.ports & _dirs(self.direction, within(f.sport), within(f.dport))
        return m & (f.ip_proto == self.proto) if self.proto else m


@dataclass
class Proto(Node):
    name: str

    def mask(self, f):
        n = self.name
        if n in ("ip", "ip6", "arp"):
            return f.ok & (f.ethertype == ETHER_NAMES[n])
        if n == "icmp":
            return (f.ip_version == 4) & (f.ip_proto == 1)
        if n == "icmp6":
            return (f.ip_version == 6) & (f.ip_proto == 58)
        return (f.ip_version > 0) & (f.ip_proto == PROTOS[n])


@dataclass
class Vlan(Node):
    vid: int | None

    def mask(self, f):
        return (f.vlan >= 0) if self.vid is None else (f.vlan == self.vid)


@dataclass
class Ether(Node):
    mac: int | None
    proto: int | None
    direction: str | None

    def mask(self, f):
        if self.proto is not None:
            return f.ok & (f.ethertype == self.proto)
        return _dirs(self.direction, f.src_mac == self.mac, f.dst_mac == self.mac)


# ------------------------------------------------------------------------------ the parser
def _tokens(text: str) -> list[tuple[str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterError(f"--bpf: cannot read {text[pos:].strip()[:20]!r} at position {pos + 1}")
        tok = m.group(1) or m.group(2)
        out.append((tok, m.start(m.lastindex) + 1))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.last = None          # (make node from a bare value) of the previous primitive

    def peek(self) -> str | None:
        return self.toks[self.i][0].lower() if self.i < len(self.toks) else None

    def where(self) -> int:
        return self.toks[self.i][1] if self.i < len(self.toks) else len(self.text) + 1

    def error(self, why: str):
        raise FilterError(f"--bpf: {why} at position {self.where()} of {self.text!r}")

    def take(self) -> str:
        if self.i >= len(self.toks):
            self.error("the expression ends too early")
        tok = self.toks[self.i][0]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if not self.toks:
            self.error("empty filter")
        node = self.expr()
        if self.i < len(self.toks):
            self.error(f"unexpected {self.toks[self.i][0]!r}")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in ("or", "||"):
            self.take()
            node = Both(node, self.term(), True)
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.peek() in ("and", "&&"):
            self.take()
            node = Both(node, self.factor(), False)
        return node

    def factor(self) -> Node:
        tok = self.peek()
        if tok in ("not", "!"):
            self.take()
            return Not(self.factor())
        if tok == "(":
            self.take()
            node = self.expr()
            if self.peek() != ")":
                self.error("')' expected")
            self.take()
            return node
        return self.primitive()

    def primitive(self) -> Node:
        tok = self.peek()
        if tok is None:
            self.error("the expression ends too early")
        if tok in ("ip", "ip6", "arp", "icmp", "icmp6"):
            self.take()
            return Proto(tok)
        if tok in ("tcp", "udp"):
            self.take()
            if self.peek() in ("src", "dst", "port", "portrange"):
                return self.ports(PROTOS[tok])
            return Proto(tok)
        if tok == "vlan":
            self.take()
            vid = self.take() if self.peek() is not None and self.peek().isdigit() else None
            if vid is not None and not 0 <= int(vid) < 4096:
                self.i -= 1
                self.error(f"VLAN id {vid} is not 0 to 4095")
            return Vlan(None if vid is None else int(vid))
        if tok == "ether":
            return self.ether()
        if tok in ("src", "dst", "host", "net", "port", "portrange"):
            return self.addressed()
        if tok in ("and", "&&", "or", "||", ")"):
            self.error(f"a primitive expected, not {tok!r}")
        if self.last is not None and re.fullmatch(r"[0-9A-Fa-f:./-]+", tok):   # `port 502 or 102`
            return self.last(self.take())                                    # the previous kind again
        if _is_address(tok):
            return self.host(self.take(), None)
        self.error(f"unsupported primitive {self.toks[self.i][0]!r}")

    def direction(self) -> str | None:
        if self.peek() in ("src", "dst"):
            return self.take().lower()
        return None

    def addressed(self) -> Node:
        d = self.direction()
        kind = self.peek()
        if kind in ("port", "portrange"):
            return self.ports(None, d)
        if kind == "net":
            self.take()
            return self.net(self.take(), d)
        if kind == "host":
            self.take()
        if self.peek() is None or self.peek() in ("and", "&&", "or", "||", ")"):
            self.error("an address expected")
        return self.host(self.take(), d)

    def ports(self, proto: int | None, d: str | None = None) -> Node:
        d = d or self.direction()
        kind = self.peek()
        if kind not in ("port", "portrange"):
            self.error("'port' or 'portrange' expected")
        self.take()

        def make(text: str) -> Node:        # text: the token just taken
            at = self.i - 1
            if kind == "port":
                p = self._port(text, at)
                return Port(p, p, d, proto)
            a, sep, b = text.partition("-")
            if not sep:
                self.i = at
                self.error(f"portrange wants A-B, not {text!r}")
            lo, hi = self._port(a, at), self._port(b, at)
            if lo > hi:
                lo, hi = hi, lo
            return Port(lo, hi, d, proto)
        self.last = make
        return make(self.take())

    def _port(self, text: str, at: int) -> int:
        if not text.isdigit() or not 0 <= int(text) <= 65535:
            self.i = at
            self.error(f"port must be a number 0 to 65535, not {text!r}")
        return int(text)

    def host(self, text: str, d: str | None) -> Node:
        at = self.i - 1
        try:
            a = ipaddress.ip_address(text)
        except ValueError:
            self.i = at
            self.error(f"{text!r} is not an IPv4 or IPv6 address (host names are not looked up)")
        self.last = lambda t: self.host(t, d)
        return self._net(ipaddress.ip_network(a), d)

    def net(self, text: str, d: str | None) -> Node:
        at = self.i - 1
        try:
            n = ipaddress.ip_network(text, strict=False)
        except ValueError:
            self.i = at
            self.error(f"{text!r} is not a network (ADDRESS/LENGTH)")
        self.last = lambda t: self.net(t, d)
        return self._net(n, d)

    @staticmethod
    def _net(n, d) -> Net:
        full = (1 << 64) - 1
        if n.version == 4:
            return Net(4, 0, int(n.network_address), 0, int(n.netmask), d)
        v, m = int(n.network_address), int(n.netmask)
        return Net(6, v >> 64, v & full, m >> 64, m & full, d)

    def ether(self) -> Node:
        self.take()
        if self.peek() == "proto":
            self.take()
            at = self.i
            text = self.take()
            name = text.lstrip("\\").lower()
            if name in ETHER_NAMES:
                return Ether(None, ETHER_NAMES[name], None)
            try:
                value = int(text, 0)
            except ValueError:
                value = -1
            if not 1500 < value <= 0xFFFF:
                self.i = at
                self.error(f"ether proto wants an EtherType above 1500 (or \\ip, \\ip6, \\arp), not {text!r}")
            return Ether(None, value, None)
        d = self.direction()
        if self.peek() == "host":
            self.take()
        at = self.i
        text = self.take()
        if not re.fullmatch(r"[0-9A-Fa-f]{1,2}([:.-][0-9A-Fa-f]{1,2}){5}", text):
            self.i = at
            self.error(f"{text!r} is not a MAC address")
        return Ether(int("".join(p.zfill(2) for p in re.split(r"[:.-]", text)), 16), None, d)


def _is_address(tok: str) -> bool:
    try:
        ipaddress.ip_address(tok)
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------------ applying it
class PacketFilter:
    """A parsed --bpf expression. kept / read count the records of this process's run."""

    def __init__(self, text: str):
        self.text = text
        self.tree = _Parser(text).parse()
        self.read = 0
        self.kept = 0

    def __repr__(self) -> str:
        return f"PacketFilter({self.text!r})"

    def __getstate__(self):       # sent to --jobs workers as its text; parsed again there
        return {"text": self.text}

    def __setstate__(self, state):
        self.__init__(state["text"])

    def mask(self, fields: Fields) -> np.ndarray:
        return np.asarray(self.tree.mask(fields), bool)

    def matches(self, lay) -> bool:
        """One frame (layers.Layers or None), for the reference analysis."""
        return bool(self.mask(Fields.from_layers(lay))[0])

    def keep(self, chunk):
        """The records of a chunk (formats.Chunk) the filter keeps, frame numbers kept."""
        from plantguard.capture import columns
        arr = chunk.arr if chunk.arr is not None else np.frombuffer(chunk.buf, np.uint8)
        cols = columns.decode(arr, chunk.offsets, chunk.caplen, chunk.linktype)
        rows = np.flatnonzero(self.mask(Fields.from_columns(arr, chunk, cols)))
        return chunk if len(rows) == len(chunk) else chunk.take(rows)

    def chunks(self, chunks: Iterator, stats) -> Iterator:
        """A capture's chunks with only the kept records; what it drops is taken off the
        capture's packet and byte counts (formats.ReadStats), so they count what was analysed."""
        try:
            for chunk in chunks:
                kept = self.keep(chunk)
                self.account(stats, chunk, kept)
                if len(kept):
                    yield kept
        finally:
            chunks.close()

    def account(self, stats, chunk, kept) -> None:
        self.read += len(chunk)
        self.kept += len(kept)
        stats.packets -= len(chunk) - len(kept)
        stats.bytes -= int(chunk.wirelen.sum()) - int(kept.wirelen.sum())

    def note(self) -> str:
        return f"packet filter {self.text!r}: {self.kept:,} of {self.read:,} packets kept"


def compile_filter(text: str | None) -> PacketFilter | None:
    """None for no filter; FilterError (an InputError, one line) for one that cannot be used."""
    if text is None or not text.strip():
        return None
    return PacketFilter(text)
