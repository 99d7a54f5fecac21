"""TLS records and handshake messages (RFC 2246, 5246, 8446) for the demo's TLS sessions. The
cleartext handshake is real (hellos, certificates, a signed ECDHE key exchange); what follows
ChangeCipherSpec is ciphertext-shaped bytes of the right lengths from a deterministic stream."""
from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from plantguard.demo.detrand import DetRandom

TLS10, TLS12, TLS13 = 0x0301, 0x0303, 0x0304
CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_CERTIFICATE = 1, 2, 11
HS_SERVER_KEY_EXCHANGE, HS_SERVER_HELLO_DONE, HS_CLIENT_KEY_EXCHANGE = 12, 14, 16

ECDHE_RSA_AES128_GCM_SHA256 = 0xC02F
RSA_AES128_CBC_SHA, RSA_AES256_CBC_SHA, RSA_3DES_EDE_CBC_SHA = 0x002F, 0x0035, 0x000A
TLS_AES_128_GCM_SHA256 = 0x1301


def record(ctype: int, version: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def handshake(hs_type: int, body: bytes) -> bytes:
    return bytes([hs_type]) + len(body).to_bytes(3, "big") + body


def ext(ext_type: int, data: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(data)) + data


def _u16_list(values: list[int]) -> bytes:
    return struct.pack("!H", 2 * len(values)) + struct.pack(f"!{len(values)}H", *values)


def sni(host: str) -> bytes:
    name = host.encode("ascii")
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    return ext(0, struct.pack("!H", len(entry)) + entry)


def client_hello(version: int, random: bytes, suites: list[int], extensions: bytes,
                 session_id: bytes = b"") -> bytes:
    body = (struct.pack("!H", version) + random + bytes([len(session_id)]) + session_id
            + _u16_list(suites) + b"\x01\x00")
    if extensions:
        body += struct.pack("!H", len(extensions)) + extensions
    return handshake(HS_CLIENT_HELLO, body)


def server_hello(version: int, random: bytes, session_id: bytes, suite: int,
                 extensions: bytes = b"") -> bytes:
    body = (struct.pack("!H", version) + random + bytes([len(session_id)]) + session_id
            + struct.pack("!HB", suite, 0))
    if extensions:
        body += struct.pack("!H", len(extensions)) + extensions
    return handshake(HS_SERVER_HELLO, body)


def certificate(chain: list[bytes]) -> bytes:
    certs = b"".join(len(c).to_bytes(3, "big") + c for c in chain)
    return handshake(HS_CERTIFICATE, len(certs).to_bytes(3, "big") + certs)


def ecdhe_key_exchange(seed: str, client_random: bytes, server_random: bytes,
                       signing_key) -> tuple[bytes, bytes]:
    """(ServerKeyExchange, the client's ClientKeyExchange) for ECDHE over secp256r1, the
    server's parameters signed with rsa_pkcs1_sha256 (a deterministic signature)."""
    rnd = DetRandom("ecdhe/" + seed)
    curve = ec.SECP256R1()
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    srv = ec.derive_private_key(1 + rnd.below(order - 1), curve)
    cli = ec.derive_private_key(1 + rnd.below(order - 1), curve)
    spub = srv.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    cpub = cli.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    params = b"\x03" + struct.pack("!H", 23) + bytes([len(spub)]) + spub
    sig = signing_key.sign(client_random + server_random + params, padding.PKCS1v15(),
                           hashes.SHA256())
    ske = handshake(HS_SERVER_KEY_EXCHANGE, params + struct.pack("!HH", 0x0401, len(sig)) + sig)
    cke = handshake(HS_CLIENT_KEY_EXCHANGE, bytes([len(cpub)]) + cpub)
    return ske, cke


def rsa_client_key_exchange(rnd: DetRandom, modulus_bytes: int) -> bytes:
    """TLS 1.0 RSA key exchange: an encrypted pre-master secret of the modulus' length."""
    blob = bytes([rnd.between(1, 0x7F)]) + rnd.bytes(modulus_bytes - 1)
    return handshake(HS_CLIENT_KEY_EXCHANGE, struct.pack("!H", len(blob)) + blob)


def x25519_share(seed: str) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(DetRandom("x25519/" + seed).bytes(32))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def gcm_record(rnd: DetRandom, ctype: int, plaintext_len: int, explicit_nonce: bool = True) -> bytes:
    """An AEAD-protected record: (8-byte explicit nonce in TLS 1.2) + ciphertext + 16-byte tag.
    TLS 1.3 records are sent as application data with the inner type appended."""
    n = plaintext_len + 16 + (8 if explicit_nonce else 0)
    return record(ctype, TLS12, rnd.bytes(n))


def cbc_sha1_record(rnd: DetRandom, ctype: int, plaintext_len: int, version: int = TLS10) -> bytes:
    """A TLS 1.0 CBC record: plaintext + 20-byte HMAC-SHA1 + padding to the 16-byte block."""
    n = plaintext_len + 20 + 1
    n += -n % 16
    return record(ctype, version, rnd.bytes(n))


CCS = b"\x01"
