"""SQLite storage of the attestation side: enrolled devices, code attempts, open challenges, attested devices.

Same file and style as db.py (one short-lived connection per operation, parameterised SQL).
A registration writes its result in one transaction at the very end; a refused one writes
nothing but its failed-code count (the lockout has to remember) and consumes its challenge.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .attestation import Enrolment

if TYPE_CHECKING:
    from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS enrolments (
    device_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    ek_spki_sha256 TEXT NOT NULL UNIQUE,
    code_salt BLOB NOT NULL,
    code_hash BLOB NOT NULL,
    code_n INTEGER NOT NULL, code_r INTEGER NOT NULL, code_p INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS code_attempts (
    device_id TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS challenges (
    session TEXT PRIMARY KEY, device_id TEXT NOT NULL, ak_public BLOB NOT NULL,
    secret_sha256 BLOB NOT NULL, nonce BLOB NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attested (
    device_id TEXT PRIMARY KEY, certificate_pem TEXT NOT NULL, firmware_version TEXT NOT NULL,
    security_version INTEGER NOT NULL, fit_sha256 TEXT NOT NULL, registered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_keys (
    device_id TEXT PRIMARY KEY, ak_public BLOB NOT NULL, key_public BLOB NOT NULL,
    certificate_serial TEXT NOT NULL UNIQUE, state TEXT NOT NULL, reason TEXT NOT NULL, checked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    certificate_serial TEXT PRIMARY KEY, device_id TEXT NOT NULL, reason TEXT NOT NULL, revoked_at TEXT NOT NULL
);
"""
ATTESTED, QUARANTINED = "attested", "quarantined"


class EnrolmentStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0)
        conn.row_factory = sqlite3.Row
        conn.executescript(_SCHEMA)
        return conn

    def enrol(self, rows: list[dict[str, Any]]) -> int:
        """Add a manufacturing manifest's devices; a device id already known is left as it is."""
        with closing(self._connect()) as conn, conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO enrolments VALUES (:device_id, :model, :ek_spki_sha256, :code_salt, "
                ":code_hash, :code_n, :code_r, :code_p, :manifest_sha256)",
                rows,
            )
            return conn.total_changes - before

    def enrolments(self) -> dict[str, Enrolment]:
        """EK SPKI sha256 -> enrolment, with whether the device is already claimed."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT e.*, a.device_id IS NOT NULL AS claimed FROM enrolments e "
                "LEFT JOIN attested a ON a.device_id = e.device_id"
            ).fetchall()
        return {
            r["ek_spki_sha256"]: Enrolment(
                r["device_id"],
                r["model"],
                r["ek_spki_sha256"],
                bytes(r["code_salt"]),
                bytes(r["code_hash"]),
                (r["code_n"], r["code_r"], r["code_p"]),
                bool(r["claimed"]),
            )
            for r in rows
        }

    def attempts(self, device_id: str) -> tuple[int, float]:
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT failures, locked_until FROM code_attempts WHERE device_id = ?", (device_id,)
            ).fetchone()
        return (int(row["failures"]), float(row["locked_until"])) if row else (0, 0.0)

    def record_code_failure(self, device_id: str, failures: int, locked_until: float) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO code_attempts VALUES (?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET "
                "failures = excluded.failures, locked_until = excluded.locked_until",
                (device_id, failures, locked_until),
            )

    def open_challenge(self, row: dict[str, Any]) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO challenges VALUES (:session, :device_id, :ak_public, :secret_sha256, :nonce, :expires_at)",
                row,
            )

    def drop_expired(self, device_id: str, now: float) -> None:
        """Forget expired sessions of one kind (check-in nonces are handed to anyone who asks)."""
        with closing(self._connect()) as conn, conn:
            conn.execute("DELETE FROM challenges WHERE device_id = ? AND expires_at < ?", (device_id, now))

    def take_challenge(self, session: str) -> dict[str, Any] | None:
        """The challenge, deleted in the same transaction: a session answers once, whatever the outcome."""
        with closing(self._connect()) as conn, conn:
            row = conn.execute("SELECT * FROM challenges WHERE session = ?", (session,)).fetchone()
            conn.execute("DELETE FROM challenges WHERE session = ?", (session,))
        return dict(row) if row else None

    def attest(self, row: dict[str, Any]) -> None:
        """Enrol the device (the registration's only write) with its AK and TPM-bound device key; clears its
        code attempts."""
        now = datetime.now(UTC).isoformat()
        row = {**row, "registered_at": now, "state": ATTESTED, "reason": "", "checked_at": now}
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO attested VALUES (:device_id, :certificate_pem, :firmware_version, :security_version, "
                ":fit_sha256, :registered_at)",
                row,
            )
            conn.execute(
                "INSERT INTO device_keys VALUES (:device_id, :ak_public, :key_public, :certificate_serial, :state, "
                ":reason, :checked_at)",
                row,
            )
            conn.execute("DELETE FROM code_attempts WHERE device_id = ?", (row["device_id"],))

    def attested(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT a.device_id, a.firmware_version, a.security_version, a.fit_sha256, a.registered_at, "
                "k.state, k.reason, k.checked_at FROM attested a LEFT JOIN device_keys k USING (device_id) "
                "ORDER BY a.device_id"
            ).fetchall()
        return [dict(r) for r in rows]

    def certificates(self) -> dict[str, str]:
        """device id -> the certificate issued at registration."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT device_id, certificate_pem FROM attested").fetchall()
        return {r["device_id"]: r["certificate_pem"] for r in rows}

    def device_key(self, device_id: str) -> dict[str, Any] | None:
        """The AK and device key enrolled at registration, the certificate's serial and the device's state."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT * FROM device_keys WHERE device_id = ?", (device_id,)).fetchone()
        return dict(row) if row else None

    def checked_in(self, device_id: str, firmware_version: str, security_version: int, fit_sha256: str) -> None:
        """A passed re-attestation: the measured firmware and the time, nothing else."""
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "UPDATE attested SET firmware_version = ?, security_version = ?, fit_sha256 = ? WHERE device_id = ?",
                (firmware_version, security_version, fit_sha256, device_id),
            )
            conn.execute(
                "UPDATE device_keys SET checked_at = ? WHERE device_id = ? AND state = ?",
                (datetime.now(UTC).isoformat(), device_id, ATTESTED),
            )

    def quarantine(self, device_id: str, reason: str) -> None:
        """Drift: state quarantined with the reason, and the device certificate revoked, in one transaction."""
        now = datetime.now(UTC).isoformat()
        with closing(self._connect()) as conn, conn:
            row = conn.execute(
                "SELECT certificate_serial FROM device_keys WHERE device_id = ?", (device_id,)
            ).fetchone()
            conn.execute(
                "UPDATE device_keys SET state = ?, reason = ?, checked_at = ? WHERE device_id = ?",
                (QUARANTINED, reason, now, device_id),
            )
            conn.execute(
                "INSERT OR IGNORE INTO revocations VALUES (?, ?, ?, ?)",
                (row["certificate_serial"], device_id, reason, now),
            )

    def revocation(self, certificate_serial: str) -> dict[str, Any] | None:
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT * FROM revocations WHERE certificate_serial = ?", (certificate_serial,)
            ).fetchone()
        return dict(row) if row else None

    def revocations(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT * FROM revocations ORDER BY revoked_at").fetchall()
        return [dict(r) for r in rows]
