"""The Alembic revisions build exactly the schema the models describe."""
from sqlalchemy import create_engine

from plantguard.store.migrate import pending_changes


def test_migrations_match_models(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    diff = pending_changes(engine)
    assert diff == [], f"models changed without a migration: {diff[:5]} " \
                       "(run: python -m plantguard.store.migrate revision 'why')"
