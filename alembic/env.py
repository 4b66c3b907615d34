"""Alembic environment. Odin passes an open connection in ``config.attributes["connection"]``;
plain ``alembic upgrade head`` builds one from the configured database URL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from odin.persistence.tables import metadata

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from odin.config import sync_database_url

    url = config.get_main_option("sqlalchemy.url") or sync_database_url()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
