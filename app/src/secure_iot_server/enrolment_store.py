"""Storage of the attestation side: enrolled devices, code attempts, open challenges, attested devices.

Same database and style as db.py (SQLite file or PostgreSQL URL, Core statements). A
registration writes its result in one transaction at the very end; a refused one writes
nothing but its failed-code count (the lockout has to remember) and consumes its challenge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from .attestation import Enrolment
from .database import engine_for, insert
from .schema import attested, challenges, code_attempts, enrolments

if TYPE_CHECKING:
    from pathlib import Path


class EnrolmentStore:
    def __init__(self, location: Path | str) -> None:
        """``location``: a SQLite file path or a database URL."""
        self.location = location
        self.engine = engine_for(location)

    def enrol(self, rows: list[dict[str, Any]]) -> int:
        """Add a manufacturing manifest's devices; a device id (or EK) already known is left as it is."""
        if not rows:
            return 0
        statement = insert(self.engine, enrolments).on_conflict_do_nothing().returning(enrolments.c.device_id)
        names = [c.name for c in enrolments.columns]
        with self.engine.begin() as conn:
            return len(conn.execute(statement, [{n: row[n] for n in names} for row in rows]).all())

    def enrolments(self) -> dict[str, Enrolment]:
        """EK SPKI sha256 -> enrolment, with whether the device is already claimed."""
        e, a = enrolments, attested
        query = select(e, a.c.device_id.is_not(None).label("claimed")).select_from(
            e.outerjoin(a, a.c.device_id == e.c.device_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
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
        query = select(code_attempts.c.failures, code_attempts.c.locked_until).where(
            code_attempts.c.device_id == device_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return (int(row.failures), float(row.locked_until)) if row else (0, 0.0)

    def record_code_failure(self, device_id: str, failures: int, locked_until: float) -> None:
        statement = insert(self.engine, code_attempts).values(
            device_id=device_id, failures=failures, locked_until=locked_until
        )
        statement = statement.on_conflict_do_update(
            index_elements=[code_attempts.c.device_id],
            set_={"failures": statement.excluded.failures, "locked_until": statement.excluded.locked_until},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def open_challenge(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(challenges.insert().values(**{c.name: row[c.name] for c in challenges.columns}))

    def take_challenge(self, session: str) -> dict[str, Any] | None:
        """The challenge, deleted as it is read (DELETE … RETURNING): a session answers once, whatever
        the outcome, even when two answers race (only one of them gets the row)."""
        statement = delete(challenges).where(challenges.c.session == session).returning(*challenges.columns)
        with self.engine.begin() as conn:
            row = conn.execute(statement).mappings().first()
        return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()} if row else None

    def attest(self, row: dict[str, Any]) -> None:
        """Enrol the device (the registration's only write); clears its code attempts."""
        row = {**row, "registered_at": datetime.now(UTC).isoformat()}
        with self.engine.begin() as conn:
            conn.execute(attested.insert().values(**{c.name: row[c.name] for c in attested.columns}))
            conn.execute(delete(code_attempts).where(code_attempts.c.device_id == row["device_id"]))

    def attested(self) -> list[dict[str, Any]]:
        a = attested
        query = select(a.c.device_id, a.c.firmware_version, a.c.security_version, a.c.fit_sha256, a.c.registered_at)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(a.c.device_id)).mappings().all()
        return [dict(r) for r in rows]
