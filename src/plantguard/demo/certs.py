"""Deterministic key material and X.509 certificates for the demo's TLS servers.

RSA primes are drawn from a seeded DetRandom stream (trial division, then Miller-Rabin), the
key is assembled from those numbers, and certificates are signed with PKCS#1 v1.5 (a
deterministic signature scheme) with fixed serial numbers and dates, so the certificate bytes
are the same on every run."""
from __future__ import annotations

import datetime as dt
import functools
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from plantguard.demo.detrand import DetRandom

def _small_primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytes(len(range(i * i, limit, i)))
    return [i for i in range(3, limit) if sieve[i]]


_SMALL_PRIMES = _small_primes(1 << 16)
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)
WINDOW = 1 << 13           # odd candidates sieved at once
MAX_WINDOWS = 64           # a prime turns up in the first window almost always


def _miller_rabin(n: int) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rnd: DetRandom, bits: int, e: int) -> int:
    """The first prime p >= a random odd start (top two bits set, so p*q has full length)
    with gcd(e, p - 1) = 1: sieve a window of odd candidates by the primes below 2^16, then
    Miller-Rabin the survivors in order."""
    for _ in range(MAX_WINDOWS):
        start = rnd.bits(bits) | (3 << (bits - 2)) | 1
        alive = bytearray([1]) * WINDOW               # alive[i] <=> start + 2i not yet ruled out
        for p in _SMALL_PRIMES:
            first = (-start * pow(2, -1, p)) % p      # start + 2*first == 0 (mod p)
            alive[first::p] = bytes(len(range(first, WINDOW, p)))
        for i in range(WINDOW):
            cand = start + 2 * i
            if alive[i] and cand.bit_length() == bits and (cand - 1) % e and _miller_rabin(cand):
                return cand
    raise RuntimeError("no prime found")   # not reachable in practice


@functools.lru_cache(maxsize=8)
def rsa_key(seed: str, bits: int) -> rsa.RSAPrivateKey:
    """The same RSA private key for the same seed, every run."""
    e = 65537
    rnd = DetRandom("rsa/" + seed)
    p = _prime(rnd, bits // 2, e)
    q = _prime(rnd, bits // 2, e)
    while q == p:
        q = _prime(rnd, bits // 2, e)
    if p < q:
        p, q = q, p
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                    rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key()


def _name(cn: str, org: str, country: str = "DE") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _utc(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, tzinfo=dt.timezone.utc)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=1)
def hmi_self_signed() -> bytes:
    """The HMI panel's factory web certificate: self-signed, RSA 1024, expired in 2019."""
    key = rsa_key("hmi-web", 1024)
    name = _name("TPC-1551T", "Advantech Co., Ltd.", "TW")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x5A3C0011)
            .not_valid_before(_utc(2014, 3, 1)).not_valid_after(_utc(2019, 3, 1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
            .sign(key, hashes.SHA256()))
    return _der(cert)


def _ca(key, name: x509.Name, issuer_key, issuer_name: x509.Name, serial: int,
        years: tuple[int, int], parent_ski=None) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(serial)
         .not_valid_before(_utc(years[0], 1, 1)).not_valid_after(_utc(years[1], 1, 1))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent_ski is None else 0),
                        critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                        critical=True)
         .add_extension(ski, critical=False))
    if parent_ski is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(parent_ski),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@functools.lru_cache(maxsize=1)
def broker_chain() -> tuple[bytes, bytes]:
    """(broker certificate, issuing CA certificate): the DMZ broker's properly issued chain, as
    a server sends it (the plant's root CA stays in the clients' trust stores)."""
    org = "Plant A Manufacturing"
    root_key, issuing_key = rsa_key("plant-root-ca", 2048), rsa_key("plant-issuing-ca", 2048)
    root_name, issuing_name = _name("Plant A Root CA", org), _name("Plant A Issuing CA", org)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    issuing = _ca(issuing_key, issuing_name, root_key, root_name, 0x1002, (2023, 2038), root_ski)
    issuing_ski = x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key())
    key = rsa_key("dmz-broker", 2048)
    leaf = (x509.CertificateBuilder().subject_name(_name("mqtt.plant-a.local", org))
            .issuer_name(issuing_name).public_key(key.public_key()).serial_number(0x2001)
            .not_valid_before(_utc(2024, 1, 15)).not_valid_after(_utc(2034, 1, 15))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("mqtt.plant-a.local"),
                x509.IPAddress(ipaddress.IPv4Address("10.40.0.10"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuing_ski),
                           critical=False)
            .sign(issuing_key, hashes.SHA256()))
    return _der(leaf), _der(issuing)
