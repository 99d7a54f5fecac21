"""X.509 certificates seen in TLS handshakes: the facts plantguard reports about one DER
certificate (names, validity, serial, key type and size, signature algorithm, SAN DNS names,
CA flag, SHA-256 fingerprint, whether it signed itself), parsed with `cryptography`."""
from __future__ import annotations

import hashlib
from functools import lru_cache

MAX_SAN_DNS = 64            # SAN DNS names kept per certificate


def _name_overrides():
    from cryptography.x509.oid import NameOID
    return {NameOID.STREET_ADDRESS: "street", NameOID.POSTAL_CODE: "postalCode",
            NameOID.EMAIL_ADDRESS: "emailAddress", NameOID.SERIAL_NUMBER: "serialNumber",
            NameOID.BUSINESS_CATEGORY: "businessCategory", NameOID.GIVEN_NAME: "GN",
            NameOID.SURNAME: "SN", NameOID.TITLE: "title", NameOID.DN_QUALIFIER: "dnQualifier",
            NameOID.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
            NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
            NameOID.JURISDICTION_LOCALITY_NAME: "jurisdictionL"}


def _iso(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=512)
def parse_certificate(der: bytes) -> dict | None:
    """The facts of one DER certificate, or None when it cannot be parsed at all."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception:
        return None
    out: dict = {"fingerprint": hashlib.sha256(der).hexdigest()}
    names = _name_overrides()
    for key, getter in (("subject", lambda: cert.subject.rfc4514_string(names)),
                        ("issuer", lambda: cert.issuer.rfc4514_string(names)),
                        ("not_before", lambda: _iso(cert.not_valid_before_utc)),
                        ("not_after", lambda: _iso(cert.not_valid_after_utc)),
                        ("serial", lambda: _serial_hex(cert.serial_number)),
                        ("sig_alg", lambda: getattr(cert.signature_algorithm_oid, "_name", None)
                         or cert.signature_algorithm_oid.dotted_string)):
        try:
            out[key] = getter()
        except Exception:
            out[key] = None
    try:
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            out["key_type"], out["key_bits"] = "rsa", key.key_size
        elif isinstance(key, ec.EllipticCurvePublicKey):
            out["key_type"], out["key_bits"], out["curve"] = "ecdsa", key.curve.key_size, key.curve.name
        elif isinstance(key, dsa.DSAPublicKey):
            out["key_type"], out["key_bits"] = "dsa", key.key_size
        elif isinstance(key, ed25519.Ed25519PublicKey):
            out["key_type"], out["key_bits"] = "ed25519", 256
        elif isinstance(key, ed448.Ed448PublicKey):
            out["key_type"], out["key_bits"] = "ed448", 456
        else:
            out["key_type"], out["key_bits"] = type(key).__name__, None
    except Exception:
        out["key_type"], out["key_bits"] = None, None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out["san_dns"] = san.get_values_for_type(x509.DNSName)[:MAX_SAN_DNS]
    except Exception:
        out["san_dns"] = []
    try:
        out["is_ca"] = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except Exception:
        out["is_ca"] = None
    same = out.get("subject") is not None and out.get("subject") == out.get("issuer")
    out["self_signed"] = same and _verifies_itself(cert)
    return out


def _serial_hex(n: int) -> str:
    h = format(n, "X")
    return h if len(h) % 2 == 0 else "0" + h


def _verifies_itself(cert) -> bool:
    """Whether the certificate's signature checks out with its own key (a self-issued name is
    not enough: a forged or damaged signature says nothing)."""
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except (ValueError, TypeError):
        return True   # an algorithm the library cannot verify: the names are all we have
    except Exception:
        return False
