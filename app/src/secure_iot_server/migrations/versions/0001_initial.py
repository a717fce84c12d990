"""The schema as it was before migrations: devices and the attestation tables.

Revision ID: 0001
Revises: none

A SQLite file written by a server before Alembic already has these tables (it created them
with CREATE TABLE IF NOT EXISTS, the same columns): they are adopted as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create(name: str, *columns: sa.Column[object] | sa.UniqueConstraint) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *columns)


def upgrade() -> None:
    text, integer, blob, real = sa.Text(), sa.Integer(), sa.LargeBinary(), sa.Float()
    _create(
        "devices",
        sa.Column("id", text, primary_key=True),
        sa.Column("model", text, nullable=False),
        sa.Column("firmware_version", text, nullable=False),
        sa.Column("public_key_pem", text, nullable=False),
        sa.Column("fingerprint", text, nullable=False),
        sa.Column("registered_at", text, nullable=False),
    )
    _create(
        "enrolments",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("model", text, nullable=False),
        sa.Column("ek_spki_sha256", text, nullable=False, unique=True),
        sa.Column("code_salt", blob, nullable=False),
        sa.Column("code_hash", blob, nullable=False),
        sa.Column("code_n", integer, nullable=False),
        sa.Column("code_r", integer, nullable=False),
        sa.Column("code_p", integer, nullable=False),
        sa.Column("manifest_sha256", text, nullable=False),
    )
    _create(
        "code_attempts",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("failures", integer, nullable=False),
        sa.Column("locked_until", real, nullable=False),
    )
    _create(
        "challenges",
        sa.Column("session", text, primary_key=True),
        sa.Column("device_id", text, nullable=False),
        sa.Column("ak_public", blob, nullable=False),
        sa.Column("secret_sha256", blob, nullable=False),
        sa.Column("nonce", blob, nullable=False),
        sa.Column("expires_at", real, nullable=False),
    )
    _create(
        "attested",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("certificate_pem", text, nullable=False),
        sa.Column("firmware_version", text, nullable=False),
        sa.Column("security_version", integer, nullable=False),
        sa.Column("fit_sha256", text, nullable=False),
        sa.Column("registered_at", text, nullable=False),
    )


def downgrade() -> None:
    for name in ("attested", "challenges", "code_attempts", "enrolments", "devices"):
        op.drop_table(name)
