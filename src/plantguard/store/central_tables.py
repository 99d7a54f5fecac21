"""The central server's tables, declared beside the code that uses them (server/tables.py for what
sensors report, server/auth.py for credentials, server/audit.py for the audit log). One schema and
one set of migrations serves every store: a single-box SQLite store simply leaves them empty."""
from plantguard.server import audit, auth, tables  # noqa: F401
