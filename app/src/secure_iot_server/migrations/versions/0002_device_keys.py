"""The TPM-bound device key and re-attestation state of each attested device, and revoked certificates.

Revision ID: 0002
Revises: 0001

A SQLite file written before migrations by a server that already had these tables (CREATE
TABLE IF NOT EXISTS, the same columns) is adopted as it is, like 0001's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _create(name: str, *columns: sa.Column[object]) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *columns)


def upgrade() -> None:
    text, blob = sa.Text(), sa.LargeBinary()
    _create(
        "device_keys",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("ak_public", blob, nullable=False),
        sa.Column("key_public", blob, nullable=False),
        sa.Column("certificate_serial", text, nullable=False, unique=True),
        sa.Column("state", text, nullable=False),
        sa.Column("reason", text, nullable=False),
        sa.Column("checked_at", text, nullable=False),
    )
    _create(
        "revocations",
        sa.Column("certificate_serial", text, primary_key=True),
        sa.Column("device_id", text, nullable=False),
        sa.Column("reason", text, nullable=False),
        sa.Column("revoked_at", text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revocations")
    op.drop_table("device_keys")
