"""TLS handshake messages in clear (TLS records of type handshake, alert and change-cipher-spec,
and SSL 2.0 messages): ClientHello, ServerHello, Certificate, ServerKeyExchange and Alert, parsed
with the shared binary reader and turned into `tls`, `certificate` and `error` observations.
Handshake state per direction lives in a _Direction (stream buffer, unfinished handshake bytes,
whether the rest is encrypted)."""
from __future__ import annotations

import hashlib

from plantguard.model import Observation, Packet
from plantguard.protocols._binary import Reader
from plantguard.protocols.base import StreamBuffer
from plantguard.protocols.tls.certificates import parse_certificate
from plantguard.protocols.tls.ciphers import (
    NAMED_GROUPS,
    SSL2_CIPHERS,
    is_weak,
    suite_name,
)

NAME = "tls"
BUFFER_CAP = 1 << 17
MAX_RECORD = 18432           # 2^14 + 2048: the largest legal TLSCiphertext
MAX_HANDSHAKE = 1 << 16      # a handshake message larger than this is not parsed
MAX_CHAIN = 8
MAX_LIST = 64

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
CLIENT_HELLO, SERVER_HELLO, CERTIFICATE, SERVER_KEY_EXCHANGE = 1, 2, 11, 12
EXT_SNI, EXT_GROUPS, EXT_ALPN, EXT_VERSIONS, EXT_KEY_SHARE = 0, 10, 16, 43, 51
HELLO_RETRY_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")

VERSIONS = {0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1",
            0x0303: "TLSv1.2", 0x0304: "TLSv1.3", 0xFEFF: "DTLSv1.0", 0xFEFD: "DTLSv1.2",
            0xFEFC: "DTLSv1.3"}
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
          40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
          43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
          46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied",
          50: "decode_error", 51: "decrypt_error", 60: "export_restriction", 70: "protocol_version",
          71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
          90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
          110: "unsupported_extension", 112: "unrecognized_name", 113: "bad_certificate_status_response",
          115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol"}


def version_name(code: int) -> str:
    if code in VERSIONS:
        return VERSIONS[code]
    if code >> 8 == 0x7F:
        return f"TLSv1.3-draft{code & 0xFF}"
    return f"0x{code:04X}"


def _grease(code: int) -> bool:
    return code & 0x0F0F == 0x0A0A and code >> 8 == code & 0xFF


class _Direction:
    __slots__ = ("sb", "hs", "encrypted", "dead", "sslv2", "started")

    def __init__(self):
        self.sb = StreamBuffer(BUFFER_CAP)
        self.hs = bytearray()        # handshake bytes waiting for a complete message
        self.encrypted = False       # handshake records are no longer readable
        self.dead = False
        self.sslv2 = False
        self.started = False         # the direction's first bytes were a record start


def _record(pkt: Packet, d: _Direction, info: dict, rtype: int, body: bytes, out: list) -> None:
    if rtype == CHANGE_CIPHER_SPEC:
        d.encrypted = True
        d.hs.clear()
    elif rtype == ALERT:
        if not d.encrypted and len(body) == 2:
            level = "fatal" if body[0] == 2 else "warning" if body[0] == 1 else str(body[0])
            out.append(pkt.observe("error", NAME, subject="src", code=body[1],
                                   name=ALERTS.get(body[1], f"alert_{body[1]}"), level=level))
    elif rtype == HANDSHAKE and not d.encrypted:
        d.hs += body
        _handshakes(pkt, d, info, out)


def _handshakes(pkt: Packet, d: _Direction, info: dict, out: list) -> None:
    hs = d.hs
    for _ in range(MAX_LIST):
        if len(hs) < 4:
            return
        mtype = hs[0]
        length = int.from_bytes(hs[1:4], "big")
        if length > MAX_HANDSHAKE:
            d.encrypted = True   # not a readable handshake (or encrypted Finished): stop here
            hs.clear()
            return
        if len(hs) < 4 + length:
            return
        msg = bytes(hs[4:4 + length])
        del hs[:4 + length]
        try:
            if mtype == CLIENT_HELLO:
                out.extend(_client_hello(pkt, info, msg))
            elif mtype == SERVER_HELLO:
                out.extend(_server_hello(pkt, info, msg))
            elif mtype == CERTIFICATE:
                out.extend(_certificates(pkt, msg))
            elif mtype == SERVER_KEY_EXCHANGE:
                out.extend(_server_key_exchange(pkt, info, msg))
        except (IndexError, ValueError):
            continue
        if info.get("tls13") and mtype == SERVER_HELLO:
            d.encrypted = True    # everything after a TLS 1.3 ServerHello is encrypted
            hs.clear()
            return


def _extensions(r: Reader) -> dict[int, bytes]:
    exts: dict[int, bytes] = {}
    if r.left() < 2:
        return exts
    e = Reader(r.vec(2))
    for _ in range(MAX_LIST):
        if e.left() < 4:
            break
        t = e.num(2)
        exts.setdefault(t, e.vec(2))
    return exts


def parse_client_hello(msg: bytes) -> dict:
    r = Reader(msg)
    legacy = r.num(2)
    r.take(32)
    r.vec(1)
    suites_raw = r.vec(2)
    suites = [int.from_bytes(suites_raw[i:i + 2], "big") for i in range(0, len(suites_raw) - 1, 2)]
    suites = [s for s in suites if not _grease(s)]
    r.vec(1)
    exts = _extensions(r)
    out = {"client_version": version_name(legacy), "cipher_count": len(suites),
           "offered_weak": any(is_weak(suite_name(s)) for s in suites)}
    versions = [legacy]
    if EXT_VERSIONS in exts:
        v = exts[EXT_VERSIONS]
        listed = [int.from_bytes(v[i:i + 2], "big") for i in range(1, min(len(v), 1 + v[0]) - 1, 2)] if v else []
        listed = [x for x in listed if not _grease(x)]
        if listed:
            versions = listed
    out["offered_versions"] = [version_name(v) for v in versions[:MAX_LIST]]
    if EXT_SNI in exts:
        s = Reader(exts[EXT_SNI])
        lst = Reader(s.vec(2))
        for _ in range(8):
            if lst.left() < 3:
                break
            kind = lst.num(1)
            name = lst.vec(2)
            if kind == 0:
                out["sni"] = name.decode("ascii", "replace")[:255]
                break
    if EXT_ALPN in exts:
        a = Reader(exts[EXT_ALPN])
        lst = Reader(a.vec(2))
        protos = []
        for _ in range(16):
            if lst.left() < 1:
                break
            protos.append(lst.vec(1).decode("ascii", "replace"))
        if protos:
            out["alpn"] = protos
    return out


def parse_server_hello(msg: bytes) -> dict:
    r = Reader(msg)
    legacy = r.num(2)
    random = r.take(32)
    r.vec(1)
    cipher = r.num(2)
    r.take(1)
    exts = _extensions(r)
    version = legacy
    if len(exts.get(EXT_VERSIONS, b"")) == 2:
        version = int.from_bytes(exts[EXT_VERSIONS], "big")
    out = {"version_code": version, "version": version_name(version), "cipher_code": cipher,
           "cipher": suite_name(cipher), "hello_retry": random == HELLO_RETRY_RANDOM}
    share = exts.get(EXT_KEY_SHARE, b"")
    if len(share) >= 2:
        out["curve"] = NAMED_GROUPS.get(int.from_bytes(share[:2], "big"))
    return out


def _client_hello(pkt: Packet, info: dict, msg: bytes) -> list[Observation]:
    ch = parse_client_hello(msg)
    if ch.get("sni"):
        info["sni"] = ch["sni"]
    return [pkt.observe("tls", NAME, subject="dst", **ch)]


def _server_hello(pkt: Packet, info: dict, msg: bytes) -> list[Observation]:
    sh = parse_server_hello(msg)
    if sh.pop("hello_retry"):
        return []   # a HelloRetryRequest: the real ServerHello follows
    info["cipher"] = sh["cipher"]
    info["tls13"] = sh["version_code"] == 0x0304 or sh["version_code"] >> 8 == 0x7F
    sh["weak_cipher"] = is_weak(sh["cipher"])
    if info.get("sni"):
        sh["sni"] = info["sni"]
    if sh.get("curve") is None:
        sh.pop("curve", None)
    return [pkt.observe("tls", NAME, subject="src", **sh)]


def _certificates(pkt: Packet, msg: bytes) -> list[Observation]:
    r = Reader(msg)
    chain = Reader(r.vec(3))
    out = []
    for pos in range(MAX_CHAIN):
        if chain.left() < 3:
            break
        der = chain.vec(3)
        out.extend(_certificate(pkt, der, pos))
    return out


def _certificate(pkt: Packet, der: bytes, pos: int) -> list[Observation]:
    facts = parse_certificate(bytes(der))
    if facts is None:
        return [pkt.observe("certificate", NAME, subject="src", position=pos, unparsed=True,
                            fingerprint=hashlib.sha256(der).hexdigest())]
    # data has its own "subject" key (the certificate's), so it is filled in after observe()
    obs = pkt.observe("certificate", NAME, subject="src", position=pos)
    obs.data.update(facts)
    return [obs]


def _server_key_exchange(pkt: Packet, info: dict, msg: bytes) -> list[Observation]:
    cipher = info.get("cipher") or ""
    r = Reader(msg)
    if "_DHE_" in cipher or "_DH_anon_" in cipher:
        p = r.vec(2).lstrip(b"\x00")
        if p:
            return [pkt.observe("tls", NAME, subject="src", dh_bits=(len(p) - 1) * 8 + p[0].bit_length())]
    elif "_ECDHE_" in cipher or "_ECDH_anon_" in cipher:
        if r.num(1) == 3:
            group = r.num(2)
            return [pkt.observe("tls", NAME, subject="src", curve=NAMED_GROUPS.get(group, f"0x{group:04X}"))]
    return []


def _sslv2(pkt: Packet, d: _Direction, info: dict, body: bytes, out: list) -> None:
    """SSL 2.0 handshake messages (two-byte record header, no padding)."""
    if not body:
        return
    r = Reader(body)
    try:
        mtype = r.num(1)
        if mtype == 1:                                   # CLIENT-HELLO
            version = r.num(2)
            n_specs, _n_sid, _n_chal = r.num(2), r.num(2), r.num(2)
            specs = r.take(n_specs)
            codes = [int.from_bytes(specs[i:i + 3], "big") for i in range(0, len(specs) - 2, 3)]
            v2_only = version == 0x0002
            offered = ["SSLv2"] if v2_only else [version_name(version)]
            out.append(pkt.observe("tls", NAME, subject="dst", client_version=version_name(version),
                                   offered_versions=offered, cipher_count=len(codes),
                                   offered_weak=any(is_weak(suite_name(c)) for c in codes)))
        elif mtype == 4:                                 # SERVER-HELLO
            r.num(1)
            r.num(1)
            version = r.num(2)
            n_cert, n_specs, _n_conn = r.num(2), r.num(2), r.num(2)
            der = r.take(n_cert)
            specs = r.take(n_specs)
            codes = [int.from_bytes(specs[i:i + 3], "big") for i in range(0, len(specs) - 2, 3)]
            info["tls13"] = False
            d.encrypted = True   # the server's next messages are encrypted
            out.append(pkt.observe("tls", NAME, subject="src", version=version_name(version),
                                   version_code=version, cipher=None, cipher_code=None,
                                   weak_cipher=True, offered_ciphers=[SSL2_CIPHERS.get(c, f"0x{c:06X}")
                                                                      for c in codes[:MAX_LIST]]))
            if der:
                out.extend(_certificate(pkt, der, 0))
        elif mtype == 2:                                 # CLIENT-MASTER-KEY: the chosen cipher
            code = r.num(3)
            name = SSL2_CIPHERS.get(code, f"0x{code:06X}")
            out.append(pkt.observe("tls", NAME, subject="dst", version="SSLv2", cipher=name,
                                   cipher_code=code, weak_cipher=True))
            d.encrypted = True
    except ValueError:
        return
