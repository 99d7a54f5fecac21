"""NetBIOS Name Service (RFC 1001/1002, UDP 137): which Windows-style names hosts claim and ask for.

  operation  every request (R bit clear): code = the opcode number, name in words ("name query",
             "node status query", "registration", "release", "refresh", ...), category "read"
             for a name query, "diagnostic" for a node status query (it asks a host for its
             name table) and "other" for registrations, releases and refreshes (a host
             announcing or withdrawing its own name changes no device); detail = the first
             question name (distinct names per flow are capped)
  service    the answering side of a response sent from port 137 (name "nbns")
  hostname   data {name, ip, source "netbios"} for each unique (not group) workstation <00>
             or server <20> name with a unicast IPv4 address, from
               - a registration, multi-homed registration or refresh request: the NB records
                 of its sender (subject "src", the sender names itself);
               - a positive (rcode 0) name query / registration / refresh response: the NB
                 records' addresses (subject "src" when the address is the responder, else
                 "dst"; a WINS server answers for other hosts, so consumers must use data["ip"],
                 as for DNS answers);
               - a positive node status (NBSTAT) response: the responder's own name table
                 (ip = the responder, subject "src").
             Group names, domain / browser / messenger names (other suffixes) and the "*"
             wildcard name no host. `name` is the 15-byte NetBIOS name with its padding
             (trailing spaces and NULs) stripped, decoded byte for byte (latin-1) and otherwise
             raw: it is hostile text, the output layer (util/sanitize.py) makes it safe.

Parsing is bounded: at most MAX_RECORDS questions and records, MAX_ADDRESSES NB entries per
record, MAX_NODE_NAMES names per node status, dns.MAX_NAME bytes per name and backward-only
compression pointers (at most MAX_JUMPS); at most MAX_PACKET_HOSTNAMES hostnames per packet. A NetBIOS name label must be the 32-byte first-level
encoding (characters 'A'..'P'); anything else makes the packet malformed."""
from __future__ import annotations

import ipaddress

from plantguard.model import Observation, Packet
from plantguard.protocols._binary import Malformed, Reader
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.dns import read_labels  # the DNS name format, which NBNS uses

NAME = "nbns"
PORT = 137

MAX_RECORDS = 16          # questions + records read from one packet
MAX_ADDRESSES = 16        # NB entries (flags + address) read from one record
MAX_NODE_NAMES = 64       # names read from one node status answer
MAX_JUMPS = 4             # compression pointers followed in one name (they only point back)
MAX_QUERY_NAMES = 64      # distinct question names reported as operation detail per flow
MAX_HOSTNAMES = 256       # distinct (name, address) pairs reported per flow
MAX_PACKET_HOSTNAMES = 32  # hostnames reported from one packet

TYPE_NB, TYPE_NBSTAT = 0x20, 0x21
OPCODES = {0: "name query", 5: "registration", 6: "release", 7: "wait for acknowledgement",
           8: "refresh", 9: "refresh", 15: "multi-homed registration"}
# Opcodes whose request names the sender and whose positive response confirms the name.
CLAIMS = frozenset({5, 8, 9, 15})
HOST_SUFFIXES = frozenset({0x00, 0x20})   # workstation / server service: the computer's name
GROUP = 0x8000                            # NB_FLAGS / NAME_FLAGS: G, a group name


class NbnsError(Malformed):
    """Bytes that are not a NetBIOS name service message."""


def decode_first_level(label: bytes) -> bytes:
    """The 16 bytes a 32-character first-level encoded label stands for (RFC 1001 14.1)."""
    if len(label) != 32:
        raise NbnsError("a NetBIOS name label is 32 characters")
    out = bytearray(16)
    for i in range(16):
        hi, lo = label[2 * i] - 0x41, label[2 * i + 1] - 0x41
        if not (0 <= hi <= 15 and 0 <= lo <= 15):
            raise NbnsError("first-level encoding uses only 'A'..'P'")
        out[i] = (hi << 4) | lo
    return bytes(out)


def read_name(msg: bytes, off: int) -> tuple[dict, int]:
    """A NetBIOS name: {raw: 15 name bytes, suffix, text, scope} and the offset after it."""
    labels, off = read_labels(msg, off, max_jumps=MAX_JUMPS, backward_only=True)
    if not labels:
        raise NbnsError("empty name")
    raw = decode_first_level(labels[0])
    return _name(raw[:15], raw[15], b".".join(labels[1:]).decode("latin-1")), off


def _name(raw: bytes, suffix: int, scope: str = "") -> dict:
    return {"raw": raw, "suffix": suffix, "text": raw.rstrip(b" \x00").decode("latin-1"), "scope": scope}


def parse(msg: bytes) -> dict:
    """Header, questions and resource records (answer, authority, additional), bounded."""
    msg = bytes(msg)
    r = Reader(msg)
    ident, flags = r.num(2), r.num(2)
    counts = [r.num(2) for _ in range(4)]
    out = {"id": ident, "response": bool(flags & 0x8000), "opcode": (flags >> 11) & 0xF,
           "nm_flags": (flags >> 4) & 0x7F, "rcode": flags & 0xF, "counts": counts,
           "questions": [], "records": []}
    if out["opcode"] not in OPCODES:
        raise NbnsError(f"unknown opcode {out['opcode']}")
    budget = MAX_RECORDS
    for _ in range(counts[0]):
        if budget <= 0:
            return out      # the records follow questions that were not read
        budget -= 1
        name, r.off = read_name(msg, r.off)
        qtype, qclass = r.num(2), r.num(2)
        out["questions"].append({"name": name, "type": qtype, "class": qclass})
    for section, n in (("answer", counts[1]), ("authority", counts[2]), ("additional", counts[3])):
        for _ in range(n):
            if budget <= 0:
                return out
            budget -= 1
            out["records"].append(_record(msg, r, section))
    return out


def _record(msg: bytes, r: Reader, section: str) -> dict:
    name, r.off = read_name(msg, r.off)
    rtype, rclass, ttl = r.num(2), r.num(2), r.num(4)
    rdata = Reader(r.take(r.num(2)))
    rec = {"section": section, "name": name, "type": rtype, "class": rclass, "ttl": ttl,
           "addresses": [], "node_names": []}
    if rtype == TYPE_NB:
        # n * (NB_FLAGS, NB_ADDRESS); a WACK's 2-byte RDATA holds no entry
        while rdata.left() >= 6 and len(rec["addresses"]) < MAX_ADDRESSES:
            nb_flags, addr = rdata.num(2), rdata.take(4)
            rec["addresses"].append((nb_flags, str(ipaddress.IPv4Address(addr))))
    elif rtype == TYPE_NBSTAT and rdata.left():
        for _ in range(min(rdata.u8(), MAX_NODE_NAMES)):
            raw = rdata.take(16)
            rec["node_names"].append((_name(raw[:15], raw[15]), rdata.num(2)))
    return rec


def signature(payload: bytes) -> bool:
    """A well-formed name service message with at least one valid name."""
    if len(payload) < 12 + 34:
        return False
    try:
        msg = parse(payload)
    except ValueError:
        return False
    return bool(msg["questions"] or msg["records"])


def decode(pkt: Packet) -> list[Observation]:
    try:
        msg = parse(pkt.payload)
    except ValueError:
        return []
    out: list[Observation] = []
    if msg["response"]:
        if pkt.sport == PORT:
            out.append(pkt.observe("service", NAME, subject="src", name=NAME))
    else:
        out.append(_operation(pkt, msg))
    out.extend(_hostnames(pkt, msg))
    return out


def _operation(pkt: Packet, msg: dict) -> Observation:
    opcode = msg["opcode"]
    q = msg["questions"][0] if msg["questions"] else None
    name, category = OPCODES[opcode], "other"
    if opcode == 0:
        status = q is not None and q["type"] == TYPE_NBSTAT
        name, category = ("node status query", "diagnostic") if status else ("name query", "read")
    detail = None
    if q is not None:
        detail = _display(q["name"])
        asked = pkt.state.setdefault("nbns_q", set())
        if detail not in asked:
            if len(asked) < MAX_QUERY_NAMES:
                asked.add(detail)
            else:
                detail = None
    return pkt.observe("operation", NAME, category=category, code=opcode, name=name, detail=detail)


def _display(name: dict) -> str:
    """Name, suffix and scope in the usual notation ("PLC-01<20>"); the name text stays raw."""
    return f"{name['text']}<{name['suffix']:02x}>" + (f".{name['scope']}" if name["scope"] else "")


def _hostnames(pkt: Packet, msg: dict) -> list[Observation]:
    opcode, response = msg["opcode"], msg["response"]
    found: list[tuple[dict, int, str]] = []     # (name, flags, address)
    if response and msg["rcode"] == 0:
        for rec in msg["records"]:
            if rec["section"] != "answer":
                continue
            if (opcode == 0 or opcode in CLAIMS) and rec["type"] == TYPE_NB:
                found.extend((rec["name"], f, ip) for f, ip in rec["addresses"])
            elif opcode == 0 and rec["type"] == TYPE_NBSTAT and pkt.src:
                found.extend((n, f, pkt.src) for n, f in rec["node_names"])
    elif not response and opcode in CLAIMS:
        for rec in msg["records"]:
            if rec["type"] == TYPE_NB:
                found.extend((rec["name"], f, ip) for f, ip in rec["addresses"])
    out: list[Observation] = []
    told = pkt.state.setdefault("nbns_h", set())
    for name, flags, ip in found:
        if len(out) >= MAX_PACKET_HOSTNAMES:
            break
        host = name["text"]
        if flags & GROUP or name["suffix"] not in HOST_SUFFIXES or not host or host.startswith("*") \
                or not _unicast(ip):
            continue
        key = (host, ip)
        if key not in told:
            if len(told) >= MAX_HOSTNAMES:
                continue
            told.add(key)
        subject = "src" if not response or ip == pkt.src else "dst"
        out.append(pkt.observe("hostname", NAME, subject=subject, name=host, ip=ip, source="netbios"))
    return out


def _unicast(ip: str) -> bool:
    a = ipaddress.IPv4Address(ip)
    return not (a.is_unspecified or a.is_multicast or a.is_loopback or a.is_reserved)   # 240/4: broadcast


SPEC = ProtocolSpec(
    name=NAME, title="NetBIOS Name Service", layer="it",
    decode=decode, signature=signature,
    udp_ports=(PORT,),
    # Output depends on earlier packets of the flow (the per-flow caps on names reported): the
    # engine must not replay a packet's observations from an earlier packet with the same bytes.
    replay=False,
    observes=("hostname", "operation", "service"),
)
