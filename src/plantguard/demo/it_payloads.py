"""Application payloads of the IT and IoT protocols in the demo plant, built from their
specifications: MQTT 3.1.1, SNMPv2c (BER), DHCP (RFC 2131/2132), DNS (RFC 1035), HTTP/1.1,
Telnet option negotiation (RFC 854/857/858/1091) and LLDP (IEEE 802.1AB)."""
from __future__ import annotations

import ipaddress
import struct

# ---------------------------------------------------------------- MQTT 3.1.1


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_str(s: str | bytes) -> bytes:
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def mqtt_connect(client_id: str, keepalive: int, user: str | None = None,
                 password: str | None = None) -> bytes:
    flags = 0x02                                   # clean session
    payload = _mqtt_str(client_id)
    if user is not None:
        flags |= 0x80
        payload += _mqtt_str(user)
    if password is not None:
        flags |= 0x40
        payload += _mqtt_str(password)
    var = _mqtt_str("MQTT") + struct.pack("!BBH", 4, flags, keepalive)
    body = var + payload
    return b"\x10" + _varint(len(body)) + body


def mqtt_connack(return_code: int = 0, session_present: bool = False) -> bytes:
    return bytes([0x20, 2, 1 if session_present else 0, return_code])


def mqtt_publish(topic: str, payload: bytes, retain: bool = False) -> bytes:
    body = _mqtt_str(topic) + payload              # QoS 0: no packet identifier
    return bytes([0x30 | (1 if retain else 0)]) + _varint(len(body)) + body


MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT = b"\xc0\x00", b"\xd0\x00", b"\xe0\x00"

# ---------------------------------------------------------------- BER / SNMPv2c


def ber_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def ber(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + ber_len(len(content)) + content


def ber_int(v: int, tag: int = 0x02) -> bytes:
    raw = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True)
    return ber(tag, raw)


def ber_uint(v: int, tag: int) -> bytes:
    """Unsigned application types (Counter32, Gauge32, TimeTicks): minimal, non-negative."""
    raw = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return ber(tag, raw)


def ber_oid(oid: str) -> bytes:
    arcs = [int(a) for a in oid.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return ber(0x06, bytes(out))


def ber_str(s: str | bytes) -> bytes:
    return ber(0x04, s.encode("ascii") if isinstance(s, str) else s)


BER_NULL = b"\x05\x00"
SNMP_GET, SNMP_RESPONSE = 0xA0, 0xA2
TIMETICKS = 0x43


def snmp_message(community: str, pdu_type: int, request_id: int,
                 varbinds: list[tuple[str, bytes]]) -> bytes:
    """SNMPv2c message; each varbind value is already BER-encoded (BER_NULL in requests)."""
    vbl = b"".join(ber(0x30, ber_oid(oid) + value) for oid, value in varbinds)
    pdu = ber(pdu_type, ber_int(request_id) + ber_int(0) + ber_int(0) + ber(0x30, vbl))
    return ber(0x30, ber_int(1) + ber_str(community) + pdu)


# ---------------------------------------------------------------- DHCP

DHCP_MAGIC = b"\x63\x82\x53\x63"
DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPACK = 1, 2, 3, 5


def dhcp_option(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def dhcp_message(op: int, xid: int, chaddr: str, options: list[bytes], yiaddr: str = "0.0.0.0",
                 siaddr: str = "0.0.0.0", ciaddr: str = "0.0.0.0", secs: int = 0,
                 broadcast: bool = False) -> bytes:
    mac = bytes.fromhex(chaddr.replace(":", ""))
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, 1, 6, 0, xid, secs,
                        0x8000 if broadcast else 0,
                        ipaddress.IPv4Address(ciaddr).packed, ipaddress.IPv4Address(yiaddr).packed,
                        ipaddress.IPv4Address(siaddr).packed, b"\x00" * 4, mac.ljust(16, b"\x00"),
                        b"", b"")
    msg = fixed + DHCP_MAGIC + b"".join(options) + b"\xff"
    return msg + b"\x00" * max(0, 300 - len(msg))   # BOOTP minimum message size


def ip4(ip: str) -> bytes:
    return ipaddress.IPv4Address(ip).packed


# ---------------------------------------------------------------- DNS


def dns_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def dns_query(txid: int, name: str, qtype: int = 1) -> bytes:
    header = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0)    # recursion desired, 1 question
    return header + dns_name(name) + struct.pack("!HH", qtype, 1)


def dns_response(txid: int, name: str, addresses: list[str], ttl: int = 3600,
                 authoritative: bool = True) -> bytes:
    flags = 0x8180 | (0x0400 if authoritative else 0)
    out = struct.pack("!HHHHHH", txid, flags, 1, len(addresses), 0, 0)
    out += dns_name(name) + struct.pack("!HH", 1, 1)
    for addr in addresses:     # each answer names the question by a pointer to offset 12
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + ip4(addr)
    return out


# ---------------------------------------------------------------- HTTP/1.1


def http_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("ascii") + b"\r\n" + body


def http_response(status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


# ---------------------------------------------------------------- Telnet

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
OPT_ECHO, OPT_SGA, OPT_TTYPE, OPT_NAWS = 1, 3, 24, 31


def telnet_cmd(verb: int, option: int) -> bytes:
    return bytes([IAC, verb, option])


def telnet_ttype_is(term: str) -> bytes:
    return bytes([IAC, SB, OPT_TTYPE, 0]) + term.encode("ascii") + bytes([IAC, SE])


def telnet_naws(width: int, height: int) -> bytes:
    return bytes([IAC, SB, OPT_NAWS]) + struct.pack("!HH", width, height) + bytes([IAC, SE])


# ---------------------------------------------------------------- LLDP


def lldp_tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!H", (tlv_type << 9) | len(value)) + value


def lldpdu(chassis_mac: str, port_id: str, ttl: int, port_desc: str, sys_name: str,
           sys_desc: str, mgmt_ip: str, if_index: int) -> bytes:
    mac = bytes.fromhex(chassis_mac.replace(":", ""))
    mgmt = (bytes([5, 1]) + ip4(mgmt_ip) + bytes([2]) + struct.pack("!I", if_index) + bytes([0]))
    return (lldp_tlv(1, b"\x04" + mac)                        # chassis ID: MAC address
            + lldp_tlv(2, b"\x05" + port_id.encode("ascii"))  # port ID: interface name
            + lldp_tlv(3, struct.pack("!H", ttl))
            + lldp_tlv(4, port_desc.encode("ascii"))
            + lldp_tlv(5, sys_name.encode("ascii"))
            + lldp_tlv(6, sys_desc.encode("ascii"))
            + lldp_tlv(7, struct.pack("!HH", 0x0004, 0x0004))  # capabilities: bridge / bridge
            + lldp_tlv(8, mgmt)
            + lldp_tlv(0, b""))
