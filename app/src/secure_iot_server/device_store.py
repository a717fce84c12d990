"""Device records: SQLite by default, PostgreSQL by URL (database.py); parameterised Core statements only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .database import engine_for
from .schema import devices

if TYPE_CHECKING:
    from pathlib import Path


class DuplicateDeviceError(Exception):
    """A device with this id is already registered."""


class DeviceStore:
    def __init__(self, location: Path | str) -> None:
        """``location``: a SQLite file path or a database URL."""
        self.location = location
        self.engine = engine_for(location)

    def ping(self) -> bool:
        """Reachable and migrated: the devices table answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(text("1")).select_from(devices).limit(1)).all()
        except (SQLAlchemyError, OSError):
            return False
        return True

    def add(self, device: dict[str, Any]) -> dict[str, Any]:
        row = {**device, "registered_at": datetime.now(UTC).isoformat()}
        try:
            with self.engine.begin() as conn:
                conn.execute(devices.insert().values(**{c.name: row[c.name] for c in devices.columns}))
        except IntegrityError:
            raise DuplicateDeviceError(device["id"]) from None
        return row

    def all_devices(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(devices).order_by(devices.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def get(self, device_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(devices).where(devices.c.id == device_id)).mappings().first()
        return dict(row) if row else None

    def delete(self, device_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(devices).where(devices.c.id == device_id))
        return result.rowcount > 0
