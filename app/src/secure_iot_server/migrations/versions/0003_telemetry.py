"""Telemetry reports, per device and bounded (telemetry_store.py).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Text(), nullable=False),
        sa.Column("uptime_s", sa.Integer(), nullable=False),
        sa.Column("firmware_version", sa.Text(), nullable=False),
    )
    op.create_index("ix_telemetry_device_id", "telemetry", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_telemetry_device_id", table_name="telemetry")
    op.drop_table("telemetry")
