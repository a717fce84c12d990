"""The audit trail of operators releasing quarantined devices (enrolment_store.release), and each
device's TLS identity certificate, revoked with its registration certificate.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sa.Text()
    op.create_table(
        "quarantine_releases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", text, nullable=False),
        sa.Column("released_by", text, nullable=False),
        sa.Column("released_at", text, nullable=False),
        sa.Column("note", text, nullable=False),
        sa.Column("quarantine_reason", text, nullable=False),
        sa.Column("revoked_serial", text, nullable=False),
        sa.Column("security_version", sa.Integer(), nullable=False),
    )
    op.add_column("device_keys", sa.Column("tls_certificate_serial", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_keys") as batch:
        batch.drop_column("tls_certificate_serial")
    op.drop_table("quarantine_releases")
