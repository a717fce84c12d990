"""Storage of the attestation side: enrolled devices, code attempts, open challenges, attested devices.

Same database and style as device_store.py (SQLite file or PostgreSQL URL, Core statements). A
registration writes its result in one transaction at the very end; a refused one writes
nothing but its counted code attempt (the lockout has to remember) and consumes its challenge.
Every security counter and state transition is one conditional statement (reserve_code_attempt,
take_challenge, consume_nonce, checked_in, release): racing requests cannot both pass a check
that only one of them should.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, select, update

from .attestation import Enrolment, Lockout
from .database import engine_for, insert
from .schema import (
    attested,
    challenges,
    code_attempts,
    device_keys,
    enrolments,
    quarantine_releases,
    revocation_list,
    revocations,
    used_nonces,
)

if TYPE_CHECKING:
    from pathlib import Path

ATTESTED, QUARANTINED, ROLLED_BACK = "attested", "quarantined", "rolled-back"
# A used check-in nonce is kept one more window (60 s, registration.CHALLENGE_SECONDS) past its expiry:
# more than any replica's clock skew (checkin_nonce.CLOCK_SKEW_S), so a replay is never redeemed after
# the row that refuses it was purged.
NONCE_KEPT_AFTER_EXPIRY_S = 60.0


class NotQuarantined(Exception):
    """Only a quarantined device can be released."""


class _NothingWritten(Exception):
    """Rolls a conditional write's transaction back."""


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

    def enrolment(self, ek_spki_sha256: str) -> Enrolment | None:
        """The one enrolment of an EK (by its SPKI sha256, a unique index), with whether it is already
        claimed: what an unauthenticated registration request may cost, whatever the fleet's size."""
        e, a = enrolments, attested
        query = (
            select(e, a.c.device_id.is_not(None).label("claimed"))
            .select_from(e.outerjoin(a, a.c.device_id == e.c.device_id))
            .where(e.c.ek_spki_sha256 == ek_spki_sha256)
        )
        with self.engine.connect() as conn:
            r = conn.execute(query).mappings().first()
        if r is None:
            return None
        return Enrolment(
            r["device_id"],
            r["model"],
            r["ek_spki_sha256"],
            bytes(r["code_salt"]),
            bytes(r["code_hash"]),
            (r["code_n"], r["code_r"], r["code_p"]),
            bool(r["claimed"]),
        )

    def attempts(self, device_id: str) -> tuple[int, float]:
        """(failures counted, locked until) of a device's registration code (0, 0.0: none)."""
        query = select(code_attempts.c.failures, code_attempts.c.locked_until).where(
            code_attempts.c.device_id == device_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return (int(row.failures), float(row.locked_until)) if row else (0, 0.0)

    def reserve_code_attempt(self, device_id: str, now: float, lockout: Lockout) -> bool:
        """Count one attempt at the device's registration code BEFORE it is evaluated, in one statement
        (an upsert whose update only happens while not locked out): True if the attempt may be evaluated.
        The attempt that reaches ``lockout.max_failures`` locks at once, so however many answers race,
        at most that many are evaluated per lockout period; after it, each attempt locks again. A right
        code gives its attempt back (give_back_code_attempt); a registration clears them (attest)."""
        c = code_attempts
        lock = now + lockout.seconds
        statement = insert(self.engine, c).values(
            device_id=device_id, failures=1, locked_until=lock if lockout.max_failures <= 1 else 0.0
        )
        statement = statement.on_conflict_do_update(
            index_elements=[c.c.device_id],
            set_={
                "failures": c.c.failures + 1,
                "locked_until": case((c.c.failures + 1 >= lockout.max_failures, lock), else_=c.c.locked_until),
            },
            where=c.c.locked_until <= now,
        ).returning(c.c.failures)
        with self.engine.begin() as conn:
            return conn.execute(statement).first() is not None

    def give_back_code_attempt(self, device_id: str, lockout: Lockout) -> None:
        """The right code: its counted attempt is given back, in one statement (the count stays that of the
        wrong codes evaluated), and a lock it set lifted unless the wrong codes alone reach the limit."""
        c = code_attempts
        with self.engine.begin() as conn:
            conn.execute(
                update(c)
                .where(c.c.device_id == device_id)
                .values(
                    failures=c.c.failures - 1,
                    locked_until=case((c.c.failures - 1 < lockout.max_failures, 0.0), else_=c.c.locked_until),
                )
            )

    def open_challenge(self, row: dict[str, Any]) -> None:
        """The device's one outstanding challenge: a new one replaces it, and expired ones are purged
        (an index range), so requests for challenges cannot grow the table beyond the enrolled devices."""
        values = {c.name: row[c.name] for c in challenges.columns}
        statement = insert(self.engine, challenges).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[challenges.c.device_id],
            set_={name: statement.excluded[name] for name in values if name != "device_id"},
        )
        with self.engine.begin() as conn:
            conn.execute(delete(challenges).where(challenges.c.expires_at < time.time()))
            conn.execute(statement)

    def take_challenge(self, session: str) -> dict[str, Any] | None:
        """The challenge, deleted as it is read (DELETE … RETURNING): a session answers once, whatever
        the outcome, even when two answers race (only one of them gets the row)."""
        statement = delete(challenges).where(challenges.c.session == session).returning(*challenges.columns)
        with self.engine.begin() as conn:
            row = conn.execute(statement).mappings().first()
        return _plain(row)

    def consume_nonce(self, session: str, device_id: str, expires_at: float, now: float) -> bool:
        """A check-in nonce used by an authenticated device: True the first time, False for a replay
        (INSERT … ON CONFLICT DO NOTHING: of racing uses, one wins). Used nonces are purged as it writes,
        but only NONCE_KEPT_AFTER_EXPIRY_S after they expired: a replica whose clock is behind, or a
        replay redeemed at the very end of the window, must still find the row."""
        record = insert(self.engine, used_nonces).values(session=session, device_id=device_id, expires_at=expires_at)
        with self.engine.begin() as conn:
            conn.execute(delete(used_nonces).where(used_nonces.c.expires_at < now - NONCE_KEPT_AFTER_EXPIRY_S))
            return conn.execute(record.on_conflict_do_nothing().returning(used_nonces.c.session)).first() is not None

    def attest(self, row: dict[str, Any]) -> None:
        """Enrol the device (the registration's only write), with its AK and TPM-bound device key when the
        row carries them (ak_public, key_public, certificate_serial); clears its code attempts."""
        now = datetime.now(UTC).isoformat()
        row = {**row, "registered_at": now, "state": ATTESTED, "reason": "", "checked_at": now}
        with self.engine.begin() as conn:
            conn.execute(attested.insert().values(**{c.name: row[c.name] for c in attested.columns}))
            if "key_public" in row:
                conn.execute(device_keys.insert().values(**{c.name: row.get(c.name) for c in device_keys.columns}))
            conn.execute(delete(code_attempts).where(code_attempts.c.device_id == row["device_id"]))

    def attested(self) -> list[dict[str, Any]]:
        """Attested devices with their re-attestation state (None for one registered without a device key)."""
        a, k = attested, device_keys
        query = select(
            a.c.device_id,
            a.c.firmware_version,
            a.c.security_version,
            a.c.fit_sha256,
            a.c.registered_at,
            k.c.state,
            k.c.reason,
            k.c.checked_at,
        ).select_from(a.outerjoin(k, k.c.device_id == a.c.device_id))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(a.c.device_id)).mappings().all()
        return [dict(r) for r in rows]

    def certificates(self) -> dict[str, str]:
        """device id -> the certificate issued at registration."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(attested.c.device_id, attested.c.certificate_pem)).all()
        return {r.device_id: r.certificate_pem for r in rows}

    def device_key(self, device_id: str) -> dict[str, Any] | None:
        """The AK and device key enrolled at registration, the certificate's serial and the device's state."""
        with self.engine.connect() as conn:
            row = conn.execute(select(device_keys).where(device_keys.c.device_id == device_id)).mappings().first()
        return _plain(row)

    def model_of(self, device_id: str) -> str | None:
        """The hardware model the signed manufacturing manifest enrolled the device as (None: not enrolled)."""
        with self.engine.connect() as conn:
            model = conn.execute(select(enrolments.c.model).where(enrolments.c.device_id == device_id)).scalar()
        return None if model is None else str(model)

    def security_floor(self, device_id: str) -> int | None:
        """The highest security version the device ever attested on: its current record, or the one a
        release from quarantine kept (a re-flashed device must not come back on an older build)."""
        current = select(attested.c.security_version).where(attested.c.device_id == device_id)
        kept = select(quarantine_releases.c.security_version).where(quarantine_releases.c.device_id == device_id)
        with self.engine.connect() as conn:
            values = [int(v) for v in conn.execute(current.union_all(kept)).scalars()]
        return max(values) if values else None

    def checked_in(self, device_id: str, firmware_version: str, security_version: int, fit_sha256: str) -> str | None:
        """A passed re-attestation: the measured firmware and the time, nothing else. Each write carries
        its own condition, so a check-in racing a quarantine or a newer check-in changes nothing: None
        when written, else why not (nothing written)."""
        try:
            with self.engine.begin() as conn:
                keyed = conn.execute(  # first: holds the device's key row against a concurrent quarantine
                    update(device_keys)
                    .where(device_keys.c.device_id == device_id, device_keys.c.state.in_((ATTESTED, ROLLED_BACK)))
                    .values(state=ATTESTED, reason="", checked_at=datetime.now(UTC).isoformat())
                ).rowcount
                if not keyed:
                    return "the device was quarantined meanwhile; nothing written"
                written = conn.execute(
                    update(attested)
                    .where(attested.c.device_id == device_id, attested.c.security_version <= security_version)
                    .values(firmware_version=firmware_version, security_version=security_version, fit_sha256=fit_sha256)
                ).rowcount
                if not written:
                    raise _NothingWritten("a concurrent check-in attested a newer security version; nothing written")
        except _NothingWritten as exc:  # raised inside the transaction: rolled back
            return str(exc)
        return None

    def rolled_back(self, device_id: str, reason: str) -> None:
        """A refused rollback, for the operator to see (state rolled-back and why); not a revocation:
        the device's own TPM refuses its key, and booting the newer build again brings it back."""
        with self.engine.begin() as conn:
            conn.execute(
                update(device_keys)
                .where(device_keys.c.device_id == device_id, device_keys.c.state.in_((ATTESTED, ROLLED_BACK)))
                .values(state=ROLLED_BACK, reason=reason, checked_at=datetime.now(UTC).isoformat())
            )

    def quarantine(self, device_id: str, reason: str) -> None:
        """Drift: state quarantined with the reason, and the device's certificates (registration and TLS
        identity) revoked, in one transaction."""
        now = datetime.now(UTC).isoformat()
        with self.engine.begin() as conn:
            serials = conn.execute(
                select(device_keys.c.certificate_serial, device_keys.c.tls_certificate_serial).where(
                    device_keys.c.device_id == device_id
                )
            ).one()
            conn.execute(
                update(device_keys)
                .where(device_keys.c.device_id == device_id)
                .values(state=QUARANTINED, reason=reason, checked_at=now)
            )
            added = 0
            for serial in filter(None, serials):
                revoke = insert(self.engine, revocations).values(
                    certificate_serial=serial, device_id=device_id, reason=reason, revoked_at=now
                )
                added += len(conn.execute(revoke.on_conflict_do_nothing().returning(revocations.c.device_id)).all())
            if added:  # the CRL's revision moves with the list, in the same transaction
                revision = revocation_list.c.revision
                conn.execute(update(revocation_list).where(revocation_list.c.id == 1).values(revision=revision + 1))

    def release(self, device_id: str, operator: str, note: str) -> dict[str, Any]:
        """An operator releases a quarantined device after re-flashing it: its enrolment is unclaimed again
        (AK, device key and attested record dropped: it must register afresh, with its printed code, a new
        key and a new certificate); the revoked certificate stays revoked; who, when, why is recorded.
        Raises NotQuarantined for a device that is not quarantined (attested, unregistered or unknown)."""
        now = datetime.now(UTC).isoformat()
        with self.engine.begin() as conn:  # the conditional DELETE is the transition: of racing releases, one
            key = conn.execute(
                delete(device_keys)
                .where(device_keys.c.device_id == device_id, device_keys.c.state == QUARANTINED)
                .returning(device_keys.c.reason, device_keys.c.certificate_serial, device_keys.c.tls_certificate_serial)
            ).first()
            if key is None:
                raise NotQuarantined(device_id)  # inside the transaction: nothing written
            floor = conn.execute(
                delete(attested).where(attested.c.device_id == device_id).returning(attested.c.security_version)
            ).scalar_one()
            audit = {
                "device_id": device_id,
                "released_by": operator,
                "released_at": now,
                "note": note,
                "quarantine_reason": key.reason,
                "revoked_serial": ",".join(filter(None, (key.certificate_serial, key.tls_certificate_serial))),
                "security_version": floor,
            }
            conn.execute(quarantine_releases.insert().values(**audit))
        return audit

    def releases(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(quarantine_releases).order_by(quarantine_releases.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def revocation(self, certificate_serial: str) -> dict[str, Any] | None:
        query = select(revocations).where(revocations.c.certificate_serial == certificate_serial)
        with self.engine.connect() as conn:
            return _plain(conn.execute(query).mappings().first())

    def revocation_marker(self) -> int:
        """The revocation list's revision: it changes whenever the list does (one row by its key)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(revocation_list.c.revision).where(revocation_list.c.id == 1)).scalar_one())

    def revocations(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(revocations).order_by(revocations.c.revoked_at)).mappings().all()
        return [dict(r) for r in rows]


def _plain(row: Any) -> dict[str, Any] | None:
    """A row as a dict, binary columns as bytes (psycopg may hand out memoryview)."""
    return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()} if row else None
