"""Alembic environment: the connection prepare() holds, or the URL of the configuration (the CLI)."""

from __future__ import annotations

from alembic import context
from secure_iot_server.schema import metadata
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
