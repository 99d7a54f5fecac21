"""Alembic environment: runs on the connection plantguard hands over (store/migrate.py)."""
from alembic import context

from plantguard.store.db import Base
from plantguard.store.migrate import include_name
import plantguard.store.models  # noqa: F401  (registers every table)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=True, compare_type=True, include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
