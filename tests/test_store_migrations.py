"""The Alembic revisions build exactly the schema the models describe, on SQLite and PostgreSQL."""
from sqlalchemy import create_engine

from plantguard.store.migrate import pending_changes


def test_migrations_match_models(store_url):
    engine = create_engine(store_url)
    try:
        diff = pending_changes(engine)
    finally:
        engine.dispose()
    assert diff == [], f"models changed without a migration: {diff[:5]} " \
                       "(run: python -m plantguard.store.migrate revision 'why')"
