"""Alembic environment: the connection prepare() holds, or (the CLI, app/alembic.ini) SECURE_IOT_DB_URL."""

from __future__ import annotations

import os

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
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SECURE_IOT_DB_URL", "")
    if not url:
        raise SystemExit("set SECURE_IOT_DB_URL to the database to migrate")
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
