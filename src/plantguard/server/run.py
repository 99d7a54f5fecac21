"""`server init` and `server run`: the server's state directory (its CA, its TLS certificate, the
one-time admin secret) and uvicorn serving the app over TLS.

Sensors authenticate with client certificates: the TLS layer asks for one (optional, so people
with tokens connect too) and checks it chains to the server's CA; the time check is left to the
application (X509_V_FLAG_NO_CHECK_TIME) so that an expired certificate is refused with a clear
answer and an audit row instead of a bare handshake failure. A certificate from another CA is
refused by the handshake itself. The connection's certificate reaches the app in the request
scope's state (PeerCertProtocol), as uvicorn passes no TLS details to the application."""
from __future__ import annotations

import os
import ssl
from datetime import datetime, timezone
from pathlib import Path

from plantguard.errors import InputError

NO_CHECK_TIME = 0x200000          # OpenSSL X509_V_FLAG_NO_CHECK_TIME
SECRET_ENV = "PLANTGUARD_ADMIN_SECRET"
DEFAULT_STATE = "plantguard-server"


def state_dir(path: str | os.PathLike | None) -> Path:
    return Path(path or os.environ.get("PLANTGUARD_SERVER_DIR") or DEFAULT_STATE)


def init(db: str, state: Path, hosts: list[str], admin_secret: str | None = None) -> str | None:
    """Create the schema, the CA and the server certificate (kept if present), and the one-time admin
    secret; returns the secret when one was made now (None when an admin bootstrap exists already)."""
    from plantguard.server import audit, auth, pki
    from plantguard.store.db import open_engine, session_factory
    engine = open_engine(db)
    try:
        state.mkdir(parents=True, exist_ok=True)
        os.chmod(state, 0o700)
        ca, ca_key = state / "ca.pem", state / "ca.key"
        if not ca.exists():
            cert_pem, key_pem = pki.new_ca("plantguard central CA")
            _write(ca_key, key_pem, 0o600)
            _write(ca, cert_pem, 0o644)
        cert, key = state / "server.pem", state / "server.key"
        if not cert.exists():
            cert_pem, key_pem = pki.server_cert(ca.read_bytes(), ca_key.read_bytes(), hosts)
            _write(key, key_pem, 0o600)
            _write(cert, cert_pem, 0o644)
        with session_factory(engine)() as session:
            if session.get(auth.Bootstrap, 1) is not None:
                return None
            if admin_secret is not None:
                parsed = auth.parse_token(admin_secret, auth.BOOTSTRAP)
                if parsed is None:
                    raise InputError("the admin secret must have the form init prints (pga_<12 base32>_<43 base64url>)")
                text, secret_hash = admin_secret, auth.hash_secret(parsed[1])
            else:
                text, _, secret_hash = auth.new_token(prefix=auth.BOOTSTRAP)
            session.add(auth.Bootstrap(id=1, secret_hash=secret_hash, created_at=datetime.now(timezone.utc)))
            audit.append(session, "cli", "server.init", "server", after={"state": str(state.resolve()),
                                                                         "hosts": hosts})
            session.commit()
            return text
    finally:
        engine.dispose()


def _write(path: Path, text: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(text)


def serve(db: str, state: Path, host: str, port: int, *, tls_cert: Path | None = None,
          tls_key: Path | None = None, client_ca: Path | None = None, log_level: str = "warning",
          nats: str | None = None) -> None:
    import uvicorn

    from plantguard.server.app import create_app, load_central
    from plantguard.store.db import open_engine
    if not (state / "ca.pem").exists():
        raise InputError(f"server state {state}: no CA; run plantguard server init first")
    cert, key = tls_cert or state / "server.pem", tls_key or state / "server.key"
    for f in (cert, key):
        if not f.is_file():
            raise InputError(f"TLS file {f} does not exist")
    engine = open_engine(db)
    from plantguard.server.retention import ensure_partitions
    ensure_partitions(engine)
    central = load_central(engine, state)
    if nats is not None:
        from plantguard.server.jetstream import Buffer
        central.buffer = Buffer(nats)
    app = create_app(central)
    config = uvicorn.Config(app, host=host, port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
                            ssl_ca_certs=str(client_ca or state / "ca.pem"), ssl_cert_reqs=ssl.CERT_OPTIONAL,
                            http=peer_cert_protocol(), log_level=log_level, server_header=False,
                            timeout_graceful_shutdown=5)
    config.load()
    config.ssl.verify_flags |= NO_CHECK_TIME
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    uvicorn.Server(config).run()


def peer_cert_protocol():
    """uvicorn's h11 protocol, passing the client certificate (DER, or None) in the request state."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class PeerCertProtocol(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            obj = transport.get_extra_info("ssl_object")
            der = obj.getpeercert(binary_form=True) if obj is not None else None
            self.app_state = {**self.app_state, "peer_cert_der": der}
    return PeerCertProtocol
