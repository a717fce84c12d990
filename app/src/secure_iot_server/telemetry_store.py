"""Telemetry, stored: each device's newest reports, bounded, for operators to read.

A device (authenticated by its fleet certificate) posts a small closed report (models.TelemetryIn);
it is stored with the time it arrived. At most KEEP reports per device are kept: each insert deletes
that device's older ones in the same transaction, so a chatty or compromised device can fill only
its own KEEP rows, never the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from .database import engine_for
from .schema import telemetry

KEEP = 100


class TelemetryStore:
    def __init__(self, location: Any) -> None:
        self.engine = engine_for(location)

    def add(self, device_id: str, report: dict[str, Any]) -> dict[str, Any]:
        row = {
            "device_id": device_id,
            "received_at": datetime.now(UTC).isoformat(),
            "uptime_s": int(report["uptime_s"]),
            "firmware_version": str(report["firmware_version"]),
        }
        with self.engine.begin() as conn:
            conn.execute(telemetry.insert().values(**row))
            newest = (
                select(telemetry.c.id)
                .where(telemetry.c.device_id == device_id)
                .order_by(telemetry.c.id.desc())
                .limit(KEEP)
            )
            conn.execute(
                delete(telemetry).where(
                    telemetry.c.device_id == device_id, telemetry.c.id.not_in(newest.scalar_subquery())
                )
            )
        return row

    def recent(self, device_id: str, limit: int) -> list[dict[str, Any]]:
        """The device's newest ``limit`` reports, newest first."""
        query = (
            select(telemetry.c.received_at, telemetry.c.uptime_s, telemetry.c.firmware_version)
            .where(telemetry.c.device_id == device_id)
            .order_by(telemetry.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]
