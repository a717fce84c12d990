"""The tables, as SQLAlchemy Core sees them; migrations/ is what creates and changes them.

One definition serves SQLite and PostgreSQL: TEXT, INTEGER, floating-point seconds and
binary columns only, so both databases hold the same values. A change here needs a new
revision in migrations/versions/ (the schema test compares the two).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()

devices = Table(
    "devices",
    metadata,
    Column("id", Text, primary_key=True),
    Column("model", Text, nullable=False),
    Column("firmware_version", Text, nullable=False),
    Column("public_key_pem", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("registered_at", Text, nullable=False),
)

enrolments = Table(
    "enrolments",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("model", Text, nullable=False),
    Column("ek_spki_sha256", Text, nullable=False, unique=True),
    Column("code_salt", LargeBinary, nullable=False),
    Column("code_hash", LargeBinary, nullable=False),
    Column("code_n", Integer, nullable=False),
    Column("code_r", Integer, nullable=False),
    Column("code_p", Integer, nullable=False),
    Column("manifest_sha256", Text, nullable=False),
)

code_attempts = Table(
    "code_attempts",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", Float, nullable=False),
)

challenges = Table(
    "challenges",
    metadata,
    Column("session", Text, primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("ak_public", LargeBinary, nullable=False),
    Column("secret_sha256", LargeBinary, nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False),
)
# Revision 0005: at most one outstanding challenge per enrolled device (a new one replaces it), and the
# expired ones found by an index when a write purges them: a flood of challenges cannot grow the table.
Index("ix_challenges_device_id", challenges.c.device_id, unique=True)
Index("ix_challenges_expires_at", challenges.c.expires_at)

attested = Table(
    "attested",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("certificate_pem", Text, nullable=False),
    Column("firmware_version", Text, nullable=False),
    Column("security_version", Integer, nullable=False),
    Column("fit_sha256", Text, nullable=False),
    Column("registered_at", Text, nullable=False),
)

# Revision 0002: the TPM-bound device key and re-attestation state (the att-key work), and revocations.
device_keys = Table(
    "device_keys",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("ak_public", LargeBinary, nullable=False),
    Column("key_public", LargeBinary, nullable=False),
    Column("certificate_serial", Text, nullable=False, unique=True),
    Column("state", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("checked_at", Text, nullable=False),
    Column("tls_certificate_serial", Text, nullable=True),  # revision 0004: its TLS identity's, revoked with it
)

revocations = Table(
    "revocations",
    metadata,
    Column("certificate_serial", Text, primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("revoked_at", Text, nullable=False),
)

# Revision 0005: the revocation list's revision, raised in the transaction that adds a revocation: what
# GET /attestation/crl checks per request (one row by its key, whatever the number of revocations).
revocation_list = Table(
    "revocation_list",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", Integer, nullable=False),
)

# Revision 0003: telemetry, stored per device and bounded (telemetry_store.py keeps the newest reports).
telemetry = Table(
    "telemetry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", Text, nullable=False, index=True),
    Column("received_at", Text, nullable=False),
    Column("uptime_s", Integer, nullable=False),
    Column("firmware_version", Text, nullable=False),
)

# Revision 0004: the audit trail of operators releasing devices from quarantine.
quarantine_releases = Table(
    "quarantine_releases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", Text, nullable=False),
    Column("released_by", Text, nullable=False),
    Column("released_at", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("quarantine_reason", Text, nullable=False),
    Column("revoked_serial", Text, nullable=False),
    Column("security_version", Integer, nullable=False),  # the floor it had reached: it survives the release
)

# Revision 0005: check-in nonces are stateless (checkin_nonce.py: HMAC-authenticated, carrying their issue
# time); this remembers the ones an authenticated check-in consumed until they expire (single use).
used_nonces = Table(
    "used_nonces",
    metadata,
    Column("session", Text, primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)
