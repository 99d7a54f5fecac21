"""The server's certificate authority (cryptography's x509, EC P-256): the CA, the server's TLS
certificate, and sensors' client certificates signed from their CSRs. A sensor certificate names
the sensor id the server chose, whatever the CSR asked for, and is renewed when less than a third
of its lifetime is left. Validity starts CLOCK_SLACK before `now`, so a peer whose clock is a
little behind does not refuse a fresh certificate. PEM text in and out (bytes)."""
from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CLOCK_SLACK = timedelta(minutes=5)
MAX_SENSOR_ID = 64
MAX_CSR_BYTES = 16 * 1024


class PkiError(ValueError):
    """A CSR or certificate that cannot be used, as one line."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("ascii") if isinstance(data, str) else bytes(data)


def _load(cert) -> x509.Certificate:
    """A certificate from PEM, DER or an x509.Certificate."""
    if isinstance(cert, x509.Certificate):
        return cert
    data = _as_bytes(cert)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise PkiError(f"not a certificate ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None


def _load_ca(ca_cert_pem, ca_key_pem):
    return _load(ca_cert_pem), serialization.load_pem_private_key(_as_bytes(ca_key_pem), password=None)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, start: datetime, days: float):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - CLOCK_SLACK).not_valid_after(start + timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _leaf(builder, ca_cert, ca_key, usage) -> bytes:
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _pem(cert)


def new_ca(name: str, *, now: datetime | None = None) -> tuple[bytes, bytes]:
    """(cert_pem, key_pem) of a fresh CA: EC P-256, 10 years, CA:true with pathlen 0."""
    key = _key()
    cert = (_builder(_name(name), _name(name), key.public_key(), now or _now(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _pem(cert), _key_pem(key)


def server_cert(ca_cert_pem, ca_key_pem, hosts: list[str], days: float = 397, *,
                now: datetime | None = None) -> tuple[bytes, bytes]:
    """(cert_pem, key_pem) for the server's TLS: SANs from `hosts` (IP addresses as IP entries,
    the rest as DNS names), serverAuth."""
    if not hosts:
        raise PkiError("a server certificate needs at least one host name or address")
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    sans = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = _key()
    builder = (_builder(_name(hosts[0]), ca_cert.subject, key.public_key(), now or _now(), days)
               .add_extension(x509.SubjectAlternativeName(sans), critical=False))
    return _leaf(builder, ca_cert, ca_key, ExtendedKeyUsageOID.SERVER_AUTH), _key_pem(key)


def new_csr(common_name: str) -> tuple[bytes, bytes]:
    """(csr_pem, key_pem): the sensor's key pair, never leaving the sensor, and its request."""
    key = _key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def sign_sensor(ca_cert_pem, ca_key_pem, csr_pem, sensor_id: str, days: float = 30, *,
                now: datetime | None = None) -> bytes:
    """The sensor's client certificate (clientAuth) for the key of a CSR whose signature
    verifies: subject CN = sensor_id, nothing else taken from the CSR. PkiError for a CSR that
    is unreadable, not self-signed by its key, or not an EC P-256 key."""
    if not isinstance(sensor_id, str) or not sensor_id or len(sensor_id) > MAX_SENSOR_ID or not sensor_id.isprintable():
        raise PkiError("a sensor id is 1 to 64 printable characters")
    data = _as_bytes(csr_pem)
    if len(data) > MAX_CSR_BYTES:
        raise PkiError(f"certificate request larger than {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(data)
        valid = csr.is_signature_valid
        public_key = csr.public_key()
    except (ValueError, InvalidSignature, TypeError) as exc:
        raise PkiError(f"unreadable certificate request ({str(exc).splitlines()[0] if str(exc) else 'bad PEM'})") from None
    if not valid:
        raise PkiError("certificate request signature does not verify")
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise PkiError("certificate request must be for an EC P-256 key")
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    builder = _builder(_name(sensor_id), ca_cert.subject, public_key, now or _now(), days)
    return _leaf(builder, ca_cert, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)


def fingerprint(cert) -> str:
    """sha256 of the certificate's DER, in hex (what the server matches a sensor by)."""
    return hashlib.sha256(_load(cert).public_bytes(serialization.Encoding.DER)).hexdigest()


def not_after(cert) -> datetime:
    return _load(cert).not_valid_after_utc


def sensor_id_of(cert) -> str:
    """The certificate's subject CN: the sensor id the server put there."""
    cns = _load(cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise PkiError("certificate has no single common name")
    return str(cns[0].value)


def needs_renewal(cert, now: datetime | None = None) -> bool:
    """True when less than a third of the certificate's lifetime is left (or it has expired)."""
    c = _load(cert)
    start, end = c.not_valid_before_utc, c.not_valid_after_utc
    return (end - (now or _now())) < (end - start) / 3
