"""The server's CA (server/pki.py) judged by the standard library's TLS: a server certificate and
a sensor certificate from sign_sensor complete a mutual-TLS handshake over a real socket pair; a
certificate of another CA, an expired one, or a server certificate for another name is refused by
the handshake itself. Plus the sensor id in the CN, CSR checks, fingerprints and renewal."""
from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import threading
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from plantguard.server import pki


@pytest.fixture(scope="module")
def ca():
    return pki.new_ca("plantguard test CA")


@pytest.fixture(scope="module")
def server(ca):
    return pki.server_cert(*ca, ["localhost", "127.0.0.1", "::1"])


def sensor(ca, sensor_id="sensor-7", **kw):
    csr, key = pki.new_csr("whatever")
    return pki.sign_sensor(*ca, csr, sensor_id, **kw), key


def files(tmp_path, name, cert, key=None):
    (tmp_path / f"{name}.pem").write_bytes(cert)
    if key is not None:
        (tmp_path / f"{name}.key").write_bytes(key)
    return str(tmp_path / f"{name}.pem"), str(tmp_path / f"{name}.key")


def exchange(tmp_path, *, server_chain, server_trusts, client_chain, client_trusts, host="localhost"):
    """Run a TLS echo over a socket pair: (server side, client side), each what it got (the
    client certificate's subject / the echoed bytes) or the exception that stopped it."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(*files(tmp_path, "srv", *server_chain))
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(files(tmp_path, "srv-ca", server_trusts)[0])
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(files(tmp_path, "cli-ca", client_trusts)[0])
    cctx.load_cert_chain(*files(tmp_path, "cli", *client_chain))
    a, b = socket.socketpair()
    a.settimeout(20)
    b.settimeout(20)
    got = {}

    def serve():
        try:
            with sctx.wrap_socket(a, server_side=True) as s:
                peer = dict(x[0] for x in s.getpeercert()["subject"])
                s.sendall(s.recv(64))
                got["server"] = peer
        except (ssl.SSLError, OSError) as exc:
            got["server"] = exc
        finally:
            a.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with cctx.wrap_socket(b, server_hostname=host) as c:
            c.sendall(b"ping")
            got["client"] = c.recv(64)
    except (ssl.SSLError, OSError) as exc:
        got["client"] = exc
    finally:
        b.close()
    t.join(20)
    return got["server"], got["client"]


def refused(side, reason: str) -> bool:
    return isinstance(side, ssl.SSLError) and reason in str(side)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_mutual_tls_handshake(tmp_path, ca, server, host):
    cert, key = sensor(ca)
    srv, cli = exchange(tmp_path, server_chain=server, server_trusts=ca[0], client_chain=(cert, key),
                        client_trusts=ca[0], host=host)
    assert srv == {"commonName": "sensor-7"}
    assert cli == b"ping"


def test_sensor_cert_of_another_ca_refused(tmp_path, ca, server):
    cert, key = sensor(pki.new_ca("someone else's CA"))
    srv, cli = exchange(tmp_path, server_chain=server, server_trusts=ca[0], client_chain=(cert, key),
                        client_trusts=ca[0])
    assert refused(srv, "certificate verify failed"), srv
    assert cli != b"ping"


def test_expired_sensor_cert_refused(tmp_path, ca, server):
    cert, key = sensor(ca, days=30, now=datetime.now(timezone.utc) - timedelta(days=31))
    assert pki.not_after(cert) < datetime.now(timezone.utc)
    srv, cli = exchange(tmp_path, server_chain=server, server_trusts=ca[0], client_chain=(cert, key),
                        client_trusts=ca[0])
    assert refused(srv, "certificate has expired"), srv
    assert cli != b"ping"


def test_server_cert_is_checked_by_the_sensor(tmp_path, ca, server):
    cert, key = sensor(ca)
    other = pki.new_ca("rogue")
    rogue = pki.server_cert(*other, ["localhost"])
    _, cli = exchange(tmp_path, server_chain=rogue, server_trusts=ca[0], client_chain=(cert, key),
                      client_trusts=ca[0])
    assert refused(cli, "certificate verify failed"), cli
    _, cli = exchange(tmp_path, server_chain=server, server_trusts=ca[0], client_chain=(cert, key),
                      client_trusts=ca[0], host="central.example")
    assert refused(cli, "Hostname mismatch"), cli


def test_a_sensor_cert_cannot_serve_and_a_server_cert_cannot_be_a_client(tmp_path, ca, server):
    cert, key = sensor(ca)
    srv, cli = exchange(tmp_path, server_chain=server, server_trusts=ca[0], client_chain=server,
                        client_trusts=ca[0])
    assert refused(srv, "unsuitable certificate purpose"), srv
    srv, cli = exchange(tmp_path, server_chain=(cert, key), server_trusts=ca[0], client_chain=(cert, key),
                        client_trusts=ca[0])
    assert refused(cli, "unsuitable certificate purpose"), cli


def test_ca_and_server_certificate_shape(ca, server):
    c = x509.load_pem_x509_certificate(ca[0])
    bc = c.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    assert isinstance(c.public_key(), ec.EllipticCurvePublicKey) and c.public_key().curve.name == "secp256r1"
    assert timedelta(days=3649) < c.not_valid_after_utc - c.not_valid_before_utc < timedelta(days=3651)
    s = x509.load_pem_x509_certificate(server[0])
    sans = s.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert list(s.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert s.issuer == c.subject
    key = serialization.load_pem_private_key(server[1], password=None)
    assert key.public_key().public_numbers() == s.public_key().public_numbers()


def test_cn_is_the_sensor_id_whatever_the_csr_asks(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evil")]))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("central.example")]), critical=False)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    cert = x509.load_pem_x509_certificate(pki.sign_sensor(*ca, csr, "s-42"))
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s-42")])
    assert pki.sensor_id_of(cert) == "s-42"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_bad_csrs_refused(ca):
    csr, _ = pki.new_csr("x")
    der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 1                                        # the last byte of the ECDSA signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(pki.PkiError, match="signature does not verify"):
        pki.sign_sensor(*ca, forged, "s-1")
    rsa_csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
               .sign(rsa.generate_private_key(65537, 2048), hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(pki.PkiError, match="EC P-256"):
        pki.sign_sensor(*ca, rsa_csr, "s-1")
    for junk in (b"", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                 "not pem", b"\x00" * 100_000):
        with pytest.raises(pki.PkiError):
            pki.sign_sensor(*ca, junk, "s-1")
    for bad_id in ("", "x" * 65, "a\nb"):
        with pytest.raises(pki.PkiError):
            pki.sign_sensor(*ca, csr, bad_id)


def test_fingerprint_and_not_after(ca):
    cert, _ = sensor(ca, days=30, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    der = ssl.PEM_cert_to_DER_cert(cert.decode())
    fp = hashlib.sha256(der).hexdigest()
    assert pki.fingerprint(cert) == pki.fingerprint(der) == pki.fingerprint(cert.decode()) == fp
    assert pki.not_after(cert) == datetime(2026, 1, 31, tzinfo=timezone.utc)
    assert pki.fingerprint(sensor(ca)[0]) != fp                      # a new certificate, a new fingerprint
    with pytest.raises(pki.PkiError):
        pki.fingerprint(b"garbage")


def test_needs_renewal_boundaries(ca):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    cert, _ = sensor(ca, days=30, now=start)
    c = x509.load_pem_x509_certificate(cert)
    lifetime = c.not_valid_after_utc - c.not_valid_before_utc
    assert lifetime == timedelta(days=30) + pki.CLOCK_SLACK
    edge = c.not_valid_after_utc - lifetime / 3                   # exactly a third left
    assert not pki.needs_renewal(cert, start)
    assert not pki.needs_renewal(cert, edge)
    assert pki.needs_renewal(cert, edge + timedelta(microseconds=1))
    assert not pki.needs_renewal(cert, edge - timedelta(seconds=1))
    assert pki.needs_renewal(cert, c.not_valid_after_utc + timedelta(days=1))      # expired
