"""TLS / SSL (SSLv2 to TLS 1.3) on the usual TLS ports and on any port by its record header.

What is readable in clear, per connection:
  ClientHello  -> `tls` (subject "dst", the server): sni, client_version, offered_versions
                  (incl. the supported_versions extension), cipher_count, offered_weak, alpn
  ServerHello  -> `tls` (subject "src"): version / version_code (TLS 1.3 via
                  supported_versions), cipher (IANA name) / cipher_code, weak_cipher, sni, curve
  Certificate  -> one `certificate` per chain member (TLS <= 1.2 and SSLv2; TLS 1.3 sends it
                  encrypted), describing the sender: subject, issuer, not_before, not_after
                  (ISO 8601 UTC), serial (hex), self_signed, key_type, key_bits, sig_alg,
                  fingerprint (SHA-256), san_dns, is_ca, position (0 = own certificate)
  ServerKeyExchange -> `tls` (subject "src"): dh_bits for DHE, curve for ECDHE
  Alert (in clear) -> `error` from the sender: code, name, level
Version names: SSLv2, SSLv3, TLSv1.0 ... TLSv1.3, TLSv1.3-draftNN.

One job per module: handshake (handshake messages and their observations), certificates
(X.509 facts), ciphers (IANA cipher suite and group names, weak suites); the record layer and
the declaration are here. What callers use is re-exported here: import from
`plantguard.protocols.tls`."""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.tls.certificates import parse_certificate
from plantguard.protocols.tls.ciphers import CIPHER_SUITES, is_weak, suite_name
from plantguard.protocols.tls.handshake import (
    APPLICATION_DATA,
    CLIENT_HELLO,
    HANDSHAKE,
    MAX_RECORD,
    NAME,
    SERVER_HELLO,
    _Direction,
    _record,
    _sslv2,
    parse_client_hello,
    parse_server_hello,
    version_name,
)
from plantguard.util.arrays import col, hash_keys, u16

__all__ = ["CIPHER_SUITES", "NAME", "SPEC", "decode", "is_weak", "parse_certificate", "parse_client_hello",
           "parse_server_hello", "signature", "suite_name", "tls_app_data_routine", "version_name"]

MAX_RECORDS_PER_PACKET = 256


def signature(payload: bytes) -> bool:
    """A TLS record header (type 20-24, version 3.x, sane length; a handshake record must
    start with a ClientHello or ServerHello), or an SSLv2 CLIENT-HELLO / SERVER-HELLO. The
    header need not be the connection's first (a capture that starts after the handshake);
    when the payload reaches past the first record, the next record's header must follow."""
    b = payload
    if len(b) >= 6 and _header_prefix(b[:5]):
        length = int.from_bytes(b[3:5], "big")
        if b[0] == HANDSHAKE and b[5] not in (CLIENT_HELLO, SERVER_HELLO):
            return False
        return _header_prefix(b[5 + length:10 + length])
    if len(b) >= 11 and b[0] & 0x80:
        length = ((b[0] & 0x7F) << 8) | b[1]
        if length < 9:
            return False
        if b[2] == 1:       # CLIENT-HELLO: version 2.0 or 3.x
            return b[3:5] == b"\x00\x02" or (b[3] == 3 and b[4] <= 3)
        if b[2] == 4:       # SERVER-HELLO: session-id-hit (0/1), certificate type 1 (X.509)
            return b[3] in (0, 1) and b[4] == 1 and b[5:7] == b"\x00\x02"
    return False


def _header_prefix(h: bytes) -> bool:
    """The first up to five bytes of a TLS record header are plausible (empty: nothing to judge)."""
    if not h:
        return True
    if not 20 <= h[0] <= 24 or (len(h) > 1 and h[1] != 3) or (len(h) > 2 and h[2] > 4):
        return False
    return len(h) < 5 or 0 < int.from_bytes(h[3:5], "big") <= MAX_RECORD


def _state(pkt: Packet) -> tuple[_Direction, dict]:
    st = pkt.state
    key = "tls_c" if pkt.from_client else "tls_s"
    d = st.get(key)
    if d is None:
        d = st[key] = _Direction()
    info = st.setdefault("tls_info", {})
    return d, info


def decode(pkt: Packet) -> list[Observation]:
    d, info = _state(pkt)
    if d.dead:
        return []
    sb = d.sb
    if sb.jumped(pkt.seq):
        d.dead = True          # a gap: record boundaries are lost for good
        return []
    sb.feed(pkt.seq, pkt.payload)
    if sb.overflow:
        d.dead = True
        return []
    if not d.started:
        # A direction joined mid-record (capture started after the handshake) has no record
        # boundaries to go by: read nothing rather than guess.
        if len(sb.data) < (11 if sb.data and sb.data[0] & 0x80 else 6):
            return []
        if not signature(bytes(sb.data[:MAX_RECORD + 10])):
            d.dead = True
            sb.data.clear()
            return []
        d.started = True
    out: list[Observation] = []
    for _ in range(MAX_RECORDS_PER_PACKET):
        data = sb.data
        if len(data) < 2:
            break
        if 20 <= data[0] <= 24:
            if len(data) < 5:
                break
            if data[1] != 3 and data[1:3] not in (b"\xfe\xff", b"\xfe\xfd"):
                d.dead = True
                break
            length = int.from_bytes(data[3:5], "big")
            if length > MAX_RECORD:
                d.dead = True
                break
            if len(data) < 5 + length:
                break
            rtype = data[0]
            if rtype == APPLICATION_DATA:
                # application data only follows the handshake: nothing more to read here
                d.dead = True
                break
            body = bytes(data[5:5 + length])
            del data[:5 + length]
            _record(pkt, d, info, rtype, body, out)
        elif data[0] & 0x80:
            length = ((data[0] & 0x7F) << 8) | data[1]
            if len(data) < 2 + length:
                break
            body = bytes(data[2:2 + length])
            del data[:2 + length]
            if not d.encrypted:
                _sslv2(pkt, d, info, body, out)
        else:
            d.dead = True
            break
    if d.dead:
        sb.data.clear()
    return out


# Routine recognition (capture/routine.py calls these on whole chunks): the key must cover
# every field decode() reports for such a packet.
def tls_app_data_routine(p, plen, from_client, l4, sport, dport):
    ok = (l4 == 6) & (plen >= 6) & (p[:, 0] == 0x17) & (p[:, 1] == 3) & (p[:, 2] <= 4)
    ok &= plen == 5 + u16(p, 3)
    key = hash_keys((col(from_client), col(p[:, 1]), col(p[:, 2])))
    return ok, key


SPEC = ProtocolSpec(
    name=NAME, title="TLS (certificates)", layer="it",
    decode=decode, signature=signature,
    tcp_ports=(443, 8443, 4843, 8883, 5061, 636, 989, 990, 992, 993, 995, 465, 853, 2221, 3269,
                 5671, 5986, 6514, 6697, 8531, 10443),
    any_port=True,
    routine=(Routine(tls_app_data_routine, 8, transport=6),),
    observes=("certificate", "error", "tls"),
)
