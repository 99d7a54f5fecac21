"""DNS (UDP/TCP 53), multicast DNS (UDP 5353) and LLMNR (UDP 5355).

  operation  each query name a client asks about (category "read", code = query type,
             detail = name); distinct names per flow are capped
  service    the answering side of a response (name "dns", "mdns" or "llmnr")
  hostname   every A / AAAA answer (name -> address) and every reverse PTR answer
             (in-addr.arpa / ip6.arpa -> name), with data {name, ip, source, query}; for
             unicast DNS only the answer section counts (not name-server glue)

Choice for hostnames: the address the name belongs to is ALWAYS in data["ip"] (inventory
attaches the name to that address). `subject` is "src" when that address is the responder
itself (mDNS / LLMNR hosts announcing their own name) and "dst" otherwise - an ordinary DNS
answer describes neither endpoint, so consumers must use data["ip"], never the subject.
Parsing is bounded: at most 64 records, 16 compression jumps and 255 characters per name."""
from __future__ import annotations

import ipaddress

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import StreamBuffer

NAME = "dns"

MAX_RECORDS = 64
MAX_JUMPS = 16
MAX_NAME = 255
MAX_QUERY_NAMES = 64      # distinct query names reported per flow
MAX_HOSTNAMES = 256       # distinct hostname answers reported per flow
TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
         33: "SRV", 255: "ANY", 65: "HTTPS", 64: "SVCB", 47: "NSEC", 41: "OPT"}
SOURCES = {5353: "mdns", 5355: "llmnr"}


class DnsError(ValueError):
    pass


def read_labels(msg: bytes, off: int, *, max_jumps: int = MAX_JUMPS,
                backward_only: bool = False) -> tuple[list[bytes], int]:
    """(labels, offset after the name in place) of a name in DNS wire format (RFC 1035 4.1.4, also
    NetBIOS's): compression pointers followed, at most max_jumps of them, and with backward_only
    only to earlier bytes; at most MAX_NAME bytes."""
    labels: list[bytes] = []
    total = 0
    end = None
    jumps = 0
    while True:
        if off >= len(msg):
            raise DnsError("name runs past the message")
        ln = msg[off]
        if ln & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise DnsError("truncated pointer")
            target = ((ln & 0x3F) << 8) | msg[off + 1]
            if end is None:
                end = off + 2
            jumps += 1
            if jumps > max_jumps:
                raise DnsError("too many compression jumps")
            if backward_only and target >= off:
                raise DnsError("compression pointer points forward")
            off = target
            continue
        if ln & 0xC0:
            raise DnsError("unknown label type")
        off += 1
        if ln == 0:
            break
        if off + ln > len(msg):
            raise DnsError("label runs past the message")
        total += ln + 1
        if total > MAX_NAME:
            raise DnsError("name too long")
        labels.append(msg[off:off + ln])
        off += ln
    return labels, (end if end is not None else off)


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """(name, offset after the name in place) with compression pointers followed (bounded)."""
    labels, end = read_labels(msg, off)
    return ".".join(x.decode("latin-1") for x in labels), end


def parse(msg: bytes) -> dict:
    """Header, questions and answer/authority/additional records (bounded)."""
    if len(msg) < 12:
        raise DnsError("short header")
    ident, flags, qd, an, ns, ar = (int.from_bytes(msg[i:i + 2], "big") for i in range(0, 12, 2))
    out = {"id": ident, "qr": bool(flags & 0x8000), "opcode": (flags >> 11) & 0xF,
           "rcode": flags & 0xF, "questions": [], "records": [], "answers": an}
    off = 12
    if qd > 512 or an + ns + ar > 1024:
        raise DnsError("implausible counts")
    for _ in range(min(qd, MAX_RECORDS)):
        name, off = read_name(msg, off)
        if off + 4 > len(msg):
            raise DnsError("truncated question")
        qtype = int.from_bytes(msg[off:off + 2], "big")
        off += 4
        out["questions"].append((name, qtype))
    if qd > MAX_RECORDS:
        return out   # the records follow questions that were not read
    for _ in range(min(an + ns + ar, MAX_RECORDS)):
        name, off = read_name(msg, off)
        if off + 10 > len(msg):
            break
        rtype = int.from_bytes(msg[off:off + 2], "big")
        rdlen = int.from_bytes(msg[off + 8:off + 10], "big")
        rdata_off = off + 10
        off = rdata_off + rdlen
        if off > len(msg):
            break
        value = None
        if rtype == 1 and rdlen == 4:
            value = str(ipaddress.IPv4Address(msg[rdata_off:off]))
        elif rtype == 28 and rdlen == 16:
            value = str(ipaddress.IPv6Address(msg[rdata_off:off]))
        elif rtype in (5, 12, 2):
            try:
                value = read_name(msg, rdata_off)[0]
            except DnsError:
                value = None
        out["records"].append((name, rtype, value))
    return out


def reverse_pointer_ip(name: str) -> str | None:
    """'4.3.2.1.in-addr.arpa' -> '1.2.3.4' (and the ip6.arpa nibble form)."""
    low = name.lower().rstrip(".")
    try:
        if low.endswith(".in-addr.arpa"):
            parts = low[:-len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        elif low.endswith(".ip6.arpa"):
            nibbles = low[:-len(".ip6.arpa")].split(".")
            if len(nibbles) == 32:
                return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16).to_bytes(16, "big")))
    except ValueError:
        return None
    return None


def signature(payload: bytes) -> bool:
    b = bytes(payload)
    if len(b) >= 14 and int.from_bytes(b[:2], "big") == len(b) - 2:
        b = b[2:]   # DNS over TCP: length prefix
    if len(b) < 12:
        return False
    flags = int.from_bytes(b[2:4], "big")
    qd = int.from_bytes(b[4:6], "big")
    if (flags >> 11) & 0xF not in (0, 1, 2, 4, 5) or qd > 512:
        return False
    try:
        msg = parse(b)
    except (DnsError, ValueError):
        return False
    return bool(msg["questions"] or msg["records"])


def _messages(pkt: Packet) -> list[bytes]:
    if pkt.l4 != "tcp":
        return [bytes(pkt.payload)]
    key = "dns_c" if pkt.from_client else "dns_s"
    sb = pkt.state.get(key)
    if sb is None:
        sb = pkt.state[key] = StreamBuffer(1 << 17)
    if sb.overflow:
        sb.data.clear()
        sb.overflow = False
    sb.feed(pkt.seq, pkt.payload)
    out = []
    for _ in range(32):
        if len(sb.data) < 2:
            break
        n = int.from_bytes(sb.data[:2], "big")
        if len(sb.data) < 2 + n:
            break
        out.append(bytes(sb.data[2:2 + n]))
        del sb.data[:2 + n]
    return out


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    for raw in _messages(pkt):
        try:
            msg = parse(raw)
        except (DnsError, ValueError):
            continue
        out.extend(_observe(pkt, msg))
    return out


def _observe(pkt: Packet, msg: dict) -> list[Observation]:
    st = pkt.state
    port = pkt.sport if msg["qr"] else pkt.dport
    source = SOURCES.get(pkt.sport) or SOURCES.get(pkt.dport) or NAME
    out: list[Observation] = []
    if not msg["qr"] and source == NAME:
        # a unicast query is a request to a server; multicast (mDNS/LLMNR) queries are not
        asked = st.setdefault("dns_q", set())
        for qname, qtype in msg["questions"]:
            key = (qname.lower(), qtype)
            known = key in asked
            if not known and len(asked) < MAX_QUERY_NAMES:
                asked.add(key)
                known = True
            out.append(pkt.observe("operation", NAME, category="read", code=qtype,
                                   name=TYPES.get(qtype, str(qtype)),
                                   detail=qname[:MAX_NAME] if known else None))
        return out
    if msg["qr"] and not st.get("dns_service") and port in (53, 5353, 5355):
        st["dns_service"] = True
        out.append(pkt.observe("service", NAME, subject="src", name=source))
    query = msg["questions"][0][0] if msg["questions"] else None
    told = st.setdefault("dns_h", set())
    records = msg["records"]
    if source == NAME:
        # unicast DNS: only the answer section; authority/additional records (name-server glue)
        # name hosts nobody asked about. mDNS/LLMNR hosts put their own address there.
        records = records[:msg["answers"]]
    for name, rtype, value in records:
        if value is None:
            continue
        if rtype in (1, 28):
            host, ip = name, value
        elif rtype == 12:
            ip, host = reverse_pointer_ip(name), value
            if ip is None:
                continue
        else:
            continue
        key = (host.lower(), ip)
        if key in told or len(told) >= MAX_HOSTNAMES or not host:
            continue
        told.add(key)
        data = {"name": host.rstrip(".")[:MAX_NAME], "ip": ip, "source": source}
        if query and query != name:
            data["query"] = query
        out.append(pkt.observe("hostname", NAME, subject="src" if ip == pkt.src else "dst", **data))
    return out


SPEC = ProtocolSpec(
    name=NAME, title="DNS", layer="it",
    decode=decode, signature=signature,
    tcp_ports=(53,),
    udp_ports=(53, 5353, 5355),
    # Output depends on earlier packets of the flow (DNS over TCP spans segments): the engine must
    # not replay a packet's observations from an earlier packet with the same bytes.
    replay=False,
    observes=("hostname", "operation", "service"),
)
