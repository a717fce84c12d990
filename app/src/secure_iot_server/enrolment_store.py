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
"""


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

    def take_challenge(self, session: str) -> dict[str, Any] | None:
        """The challenge, deleted in the same transaction: a session answers once, whatever the outcome."""
        with closing(self._connect()) as conn, conn:
            row = conn.execute("SELECT * FROM challenges WHERE session = ?", (session,)).fetchone()
            conn.execute("DELETE FROM challenges WHERE session = ?", (session,))
        return dict(row) if row else None

    def attest(self, row: dict[str, Any]) -> None:
        """Enrol the device (the registration's only write); clears its code attempts."""
        row = {**row, "registered_at": datetime.now(UTC).isoformat()}
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO attested VALUES (:device_id, :certificate_pem, :firmware_version, :security_version, "
                ":fit_sha256, :registered_at)",
                row,
            )
            conn.execute("DELETE FROM code_attempts WHERE device_id = ?", (row["device_id"],))

    def attested(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT device_id, firmware_version, security_version, fit_sha256, registered_at FROM attested "
                "ORDER BY device_id"
            ).fetchall()
        return [dict(r) for r in rows]
