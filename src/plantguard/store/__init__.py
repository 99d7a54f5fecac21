"""Persistence: SQLAlchemy models in SQLite by default (PostgreSQL for a central server)."""
