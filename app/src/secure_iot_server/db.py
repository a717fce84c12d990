"""SQLite storage: one short-lived connection per operation, parameterised SQL only."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    registered_at TEXT NOT NULL
)
"""


class DuplicateDeviceError(Exception):
    """A device with this id is already registered."""


class DeviceStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0)
        conn.row_factory = sqlite3.Row
        conn.execute(_SCHEMA)
        return conn

    def ping(self) -> bool:
        try:
            with closing(self._connect()) as conn:
                conn.execute("SELECT 1").fetchone()
        except (sqlite3.Error, OSError):
            return False
        return True

    def add(self, device: dict[str, Any]) -> dict[str, Any]:
        row = {**device, "registered_at": datetime.now(UTC).isoformat()}
        try:
            with closing(self._connect()) as conn, conn:
                conn.execute(
                    "INSERT INTO devices (id, model, firmware_version, public_key_pem, fingerprint, registered_at) "
                    "VALUES (:id, :model, :firmware_version, :public_key_pem, :fingerprint, :registered_at)",
                    row,
                )
        except sqlite3.IntegrityError:
            raise DuplicateDeviceError(device["id"]) from None
        return row

    def all_devices(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT id, model, firmware_version, public_key_pem, fingerprint, registered_at "
                "FROM devices ORDER BY id"
            ).fetchall()
        return [dict(r) for r in rows]

    def get(self, device_id: str) -> dict[str, Any] | None:
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT id, model, firmware_version, public_key_pem, fingerprint, registered_at "
                "FROM devices WHERE id = ?",
                (device_id,),
            ).fetchone()
        return dict(row) if row else None

    def delete(self, device_id: str) -> bool:
        with closing(self._connect()) as conn, conn:
            cur = conn.execute("DELETE FROM devices WHERE id = ?", (device_id,))
        return cur.rowcount > 0
