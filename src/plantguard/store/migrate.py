"""Schema migrations (Alembic). Until the first migration lands, create_all builds the schema."""
from __future__ import annotations

from sqlalchemy.engine import Engine


def upgrade(engine: Engine) -> None:
    from plantguard.store.db import Base
    import plantguard.store.models  # noqa: F401  (registers tables)
    Base.metadata.create_all(engine)
