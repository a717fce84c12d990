"""Bounded state for unauthenticated requests: one outstanding registration challenge per enrolled
device (a unique index; a new challenge replaces the old one), the expired ones found by an index,
the consumed check-in nonces (check-in nonces themselves are stateless now, checkin_nonce.py), and the
revocation list's revision (one row: what the CRL endpoint reads per request instead of counting).

The challenges table holds only sessions of at most 60 s; they are dropped here (a device whose
challenge or nonce was outstanding during the upgrade asks again), which also removes the check-in
nonces that used to live in it and would break the unique index.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM challenges"))
    op.create_index("ix_challenges_device_id", "challenges", ["device_id"], unique=True)
    op.create_index("ix_challenges_expires_at", "challenges", ["expires_at"])
    op.create_table(
        "used_nonces",
        sa.Column("session", sa.Text(), primary_key=True),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_used_nonces_expires_at", "used_nonces", ["expires_at"])
    revision_table = op.create_table(
        "revocation_list",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    op.bulk_insert(revision_table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("revocation_list")
    op.drop_index("ix_used_nonces_expires_at", table_name="used_nonces")
    op.drop_table("used_nonces")
    op.drop_index("ix_challenges_expires_at", table_name="challenges")
    op.drop_index("ix_challenges_device_id", table_name="challenges")
