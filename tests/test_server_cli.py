"""The server's command line on a real store: init prints a one-time admin secret once, users
and tokens are added with audited rows, bad input is one line and exit code 2."""
from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from plantguard.cli import app
from plantguard.server import audit, auth
from plantguard.store.db import open_engine, session_factory


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_init_user_add_and_token_are_audited(tmp_path):
    db = f"sqlite:///{tmp_path / 'central.db'}"
    first = run("server", "init", "--db", db, "--state", str(tmp_path / "srv"))
    assert first.exit_code == 0 and "pga_" in first.output
    again = run("server", "init", "--db", db, "--state", str(tmp_path / "srv"))
    assert again.exit_code == 0 and "pga_" not in again.output        # shown once
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery\n")
    assert run("server", "user", "add", "--db", db, "alice", "--role", "analyst", "--site", "Plant A",
               "--password-file", str(pw)).exit_code == 0
    dup = run("server", "user", "add", "--db", db, "alice", "--role", "analyst", "--password-file", str(pw))
    assert dup.exit_code == 2 and "exists" in dup.output
    bad = run("server", "user", "add", "--db", db, "bob", "--role", "root", "--password-file", str(pw))
    assert bad.exit_code == 2 and "--role must be one of" in bad.output
    short = tmp_path / "short"
    short.write_text("short")
    assert run("server", "user", "add", "--db", db, "bob", "--role", "viewer",
               "--password-file", str(short)).exit_code == 2
    assert "alice\tanalyst\tPlant A\tactive" in run("server", "user", "list", "--db", db).output   # TSV
    engine = open_engine(db)
    with session_factory(engine)() as s:
        user = s.scalar(select(auth.User).where(auth.User.username == "alice"))
        assert user.password_hash.startswith("$argon2id$")
        assert auth.verify_secret(user.password_hash, "correct horse battery")
        actions = [(r.actor, r.action) for r in s.scalars(select(audit.AuditRow).order_by(audit.AuditRow.id))]
        assert audit.verify(s).ok
    engine.dispose()
    assert actions == [("cli", "server.init"), ("cli", "user.create")]
