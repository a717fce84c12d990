"""The fleet server's storage on both backends (SQLite file, real PostgreSQL): migrations, the stores'
semantics the registration relies on, and failing closed at start."""

from __future__ import annotations

import os
import sqlite3
import subprocess  # nosec B404 - starts the real server process
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from secure_iot_server.api import create_app
from secure_iot_server.attestation import Lockout
from secure_iot_server.config import Settings
from secure_iot_server.database import StorageError, engine_for, head_revision, prepare
from secure_iot_server.device_store import DeviceStore, DuplicateDeviceError
from secure_iot_server.enrolment_store import NONCE_KEPT_AFTER_EXPIRY_S, EnrolmentStore, NotQuarantined
from secure_iot_server.schema import metadata
from secure_iot_server.telemetry_store import KEEP, TelemetryStore
from sqlalchemy import text

from tasks.core.processes import free_port
from tests.support.project import REPO

if TYPE_CHECKING:
    from pathlib import Path


def enrolment(device_id: str, ek: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "model": "TH-100",
        "ek_spki_sha256": ek,
        "code_salt": b"\x00salt\xff",
        "code_hash": bytes(range(32)),
        "code_n": 2**14,
        "code_r": 8,
        "code_p": 1,
        "manifest_sha256": "ab" * 32,
    }


def challenge(session: str, device_id: str = "dev-1") -> dict[str, Any]:
    return {
        "session": session,
        "device_id": device_id,
        "ak_public": b"\x00\x01ak",
        "secret_sha256": b"s" * 32,
        "nonce": b"\xffn" * 16,
        "expires_at": 1_800_000_000.25,
    }


def test_migrations_match_the_schema_module(database: str) -> None:
    assert prepare(database) == head_revision()
    with engine_for(database).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []  # schema.py and migrations/versions/ describe the same tables


def test_prepare_is_idempotent_and_refuses_a_newer_schema(database: str) -> None:
    prepare(database)
    prepare(database)
    with engine_for(database).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StorageError, match="newer than this server"):
        prepare(database)


def test_schema_behind_fails_closed_without_migrate(database: str) -> None:
    with pytest.raises(StorageError, match=r"schema none, the server needs .*alembic upgrade head"):
        create_app(Settings(db_url=database, db_migrate=False))
    create_app(Settings(db_url=database))  # migrate (the default) brings it to head
    create_app(Settings(db_url=database, db_migrate=False))


def test_unreachable_postgres_is_one_line_without_the_password() -> None:
    url = f"postgresql+psycopg://fleet:s3cret@127.0.0.1:{free_port()}/fleet"
    with pytest.raises(StorageError) as caught:
        create_app(Settings(db_url=url))
    message = str(caught.value)
    assert "unreachable" in message
    assert "s3cret" not in message
    assert "\n" not in message


@pytest.mark.parametrize("url", ["not a url://", "mysql://fleet@127.0.0.1/fleet"])
def test_a_url_the_server_cannot_use_is_one_line(url: str) -> None:
    with pytest.raises(StorageError, match=r"SECURE_IOT_DB_URL: .*expected postgresql"):
        prepare(url)


def test_a_pre_migration_sqlite_file_is_adopted(tmp_path: Path) -> None:
    """A file written by the server before Alembic (CREATE TABLE IF NOT EXISTS) keeps its rows."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE devices (id TEXT PRIMARY KEY, model TEXT NOT NULL, firmware_version TEXT NOT NULL, "
            "public_key_pem TEXT NOT NULL, fingerprint TEXT NOT NULL, registered_at TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO devices VALUES ('sensor-001', 'm', '1', 'pem', 'fp', 'then')")
    conn.close()
    prepare(path)
    assert [d["id"] for d in DeviceStore(path).all_devices()] == ["sensor-001"]


def test_device_store(database: str) -> None:
    prepare(database)
    store = DeviceStore(database)
    row = {"id": "sensor-001", "model": "m", "firmware_version": "1", "public_key_pem": "pem", "fingerprint": "f"}
    added = store.add(row)
    with pytest.raises(DuplicateDeviceError):
        store.add(row)
    assert store.get("sensor-001") == added
    assert store.all_devices() == [added]
    assert store.delete("sensor-001")
    assert not store.delete("sensor-001")
    assert store.ping()


def test_enrolment_store(database: str) -> None:
    prepare(database)
    store = EnrolmentStore(database)
    rows = [enrolment("dev-1", "ek1"), enrolment("dev-2", "ek2")]
    assert store.enrol(rows) == 2
    assert store.enrol([*rows, enrolment("dev-3", "ek1"), enrolment("dev-4", "ek4")]) == 1  # known id or EK: kept
    known = store.enrolment("ek1")
    assert known is not None
    assert known.device_id == "dev-1"
    assert known.code_salt == b"\x00salt\xff"
    assert known.code_params == (2**14, 8, 1)
    assert not known.claimed
    assert store.enrolment("ek3") is None
    assert store.enrolment("ek4") is not None

    lockout = Lockout(max_failures=2, seconds=100.0)
    assert store.attempts("dev-1") == (0, 0.0)
    assert store.reserve_code_attempt("dev-1", 1000.0, lockout)
    assert store.attempts("dev-1") == (1, 0.0)
    assert store.reserve_code_attempt("dev-1", 1000.5, lockout)  # the second locks at once
    assert store.attempts("dev-1") == (2, 1100.5)
    assert not store.reserve_code_attempt("dev-1", 1100.0, lockout)  # locked: nothing counted
    assert store.attempts("dev-1") == (2, 1100.5)
    assert store.reserve_code_attempt("dev-1", 1100.5, lockout)  # after it, each attempt locks again
    assert store.attempts("dev-1") == (3, 1200.5)
    store.give_back_code_attempt("dev-1", lockout)  # it was the right code: 2 wrong ones reach the limit
    assert store.attempts("dev-1") == (2, 1200.5)
    store.give_back_code_attempt("dev-1", lockout)
    assert store.attempts("dev-1") == (1, 0.0)  # below the limit: unlocked

    store.open_challenge(challenge("s-1"))
    assert store.take_challenge("s-1") == challenge("s-1")
    assert store.take_challenge("s-1") is None  # single use

    store.attest(dict(device_id="dev-1", certificate_pem="c", firmware_version="2", security_version=3, fit_sha256="f"))
    assert store.attempts("dev-1") == (0, 0.0)  # a registration clears the failed codes
    claimed = store.enrolment("ek1")
    assert claimed is not None and claimed.claimed
    [attested] = store.attested()
    assert attested["device_id"] == "dev-1"
    assert attested["security_version"] == 3


def test_a_challenge_is_taken_once_when_answers_race(database: str) -> None:
    """Eight threads answer the same session at once: exactly one of them gets the challenge."""
    prepare(database)
    store = EnrolmentStore(database)

    def answer(session: str, barrier: threading.Barrier, taken: list[object]) -> None:
        barrier.wait()
        taken.append(store.take_challenge(session))

    for round_ in range(5):
        store.open_challenge(challenge(f"race-{round_}"))
        barrier, taken = threading.Barrier(8), list[object]()
        threads = [threading.Thread(target=answer, args=(f"race-{round_}", barrier, taken)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(taken) == 8
        assert sum(1 for row in taken if row is not None) == 1


def test_the_server_process_refuses_to_start_on_an_unreachable_database() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "app" / "src"),
        **Settings(port=free_port(), db_url=f"postgresql+psycopg://fleet:pw@127.0.0.1:{free_port()}/fleet").to_env(),
    }
    done = subprocess.run(  # nosec B603 - this interpreter, argv list
        [sys.executable, "-m", "secure_iot_server"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("secure-iot-server: database postgresql+psycopg://fleet:***@127.0.0.1:")
    assert "unreachable" in line


def test_device_keys_quarantine_and_revocation(database: str) -> None:
    """The re-attestation side of the store (used by check-in): key, drift, quarantine, revocation."""
    prepare(database)
    store = EnrolmentStore(database)
    store.enrol([enrolment("dev-1", "ek1"), enrolment("dev-2", "ek2")])
    keyed = dict(
        device_id="dev-1",
        certificate_pem="c1",
        firmware_version="2",
        security_version=3,
        fit_sha256="f",
        ak_public=b"\x00ak",
        key_public=b"\x01key",
        certificate_serial="0a1b",
    )
    store.attest(keyed)
    store.attest(
        dict(device_id="dev-2", certificate_pem="c2", firmware_version="2", security_version=3, fit_sha256="f")
    )
    assert store.certificates() == {"dev-1": "c1", "dev-2": "c2"}
    key = store.device_key("dev-1")
    assert key is not None
    assert (key["ak_public"], key["key_public"], key["state"]) == (b"\x00ak", b"\x01key", "attested")
    assert store.device_key("dev-2") is None  # registered without a TPM-bound key

    store.checked_in("dev-1", "2.1", 4, "f2")
    [first, second] = store.attested()
    assert (first["firmware_version"], first["security_version"], first["fit_sha256"]) == ("2.1", 4, "f2")
    assert (first["state"], second["state"]) == ("attested", None)

    store.quarantine("dev-1", "PCR 9 drifted")
    store.quarantine("dev-1", "PCR 9 drifted")  # twice: one revocation
    key = store.device_key("dev-1")
    assert key is not None
    assert (key["state"], key["reason"]) == ("quarantined", "PCR 9 drifted")
    revoked = store.revocation("0a1b")
    assert revoked is not None
    assert revoked["device_id"] == "dev-1"
    assert [r["certificate_serial"] for r in store.revocations()] == ["0a1b"]
    assert store.revocation("ffff") is None


def test_telemetry_keeps_each_devices_newest_reports(database: str) -> None:
    """Bounded per device on both backends: the insert and the trim are one transaction."""
    prepare(database)
    store = TelemetryStore(database)
    for uptime in range(KEEP + 3):
        store.add("sid-a", {"uptime_s": uptime, "firmware_version": "1.1.0"})
    store.add("sid-b", {"uptime_s": 7, "firmware_version": "1.2.0"})
    kept = store.recent("sid-a", KEEP + 10)
    assert len(kept) == KEEP and kept[0]["uptime_s"] == KEEP + 2 and kept[-1]["uptime_s"] == 3
    assert [r["uptime_s"] for r in store.recent("sid-b", 5)] == [7]


def test_one_outstanding_challenge_per_device_and_expired_ones_go(database: str) -> None:
    """A new challenge replaces the device's outstanding one, and a write purges the expired: however
    many challenges are asked for, the table holds at most one per enrolled device."""
    prepare(database)
    store = EnrolmentStore(database)
    soon = time.time() + 60
    for n in range(20):
        store.open_challenge({**challenge(f"s-{n}"), "expires_at": soon})
    store.open_challenge({**challenge("stale", "dev-2"), "expires_at": time.time() - 1})
    store.open_challenge({**challenge("other", "dev-3"), "expires_at": soon})
    with engine_for(database).connect() as conn:
        sessions = sorted(conn.execute(text("SELECT session FROM challenges")).scalars())
    assert sessions == ["other", "s-19"]


def test_a_nonce_is_consumed_once_when_uses_race(database: str) -> None:
    """Eight threads consume the same check-in nonce at once: exactly one of them may. Used ones are kept
    a window past their expiry, then go."""
    prepare(database)
    store = EnrolmentStore(database)
    barrier, used = threading.Barrier(8), list[bool]()

    def consume() -> None:
        barrier.wait()
        used.append(store.consume_nonce("n-1", "dev-1", 1000.0, 900.0))

    threads = [threading.Thread(target=consume) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(used) == [False] * 7 + [True]
    # n-1 expired at 1000: still refused just past its expiry (a replica's clock may be behind) ...
    assert store.consume_nonce("n-2", "dev-1", 2000.0, 1000.5)
    assert not store.consume_nonce("n-1", "dev-1", 1000.0, 1000.5)
    # ... and purged only a whole window later, when no server redeems it any more
    assert store.consume_nonce("n-3", "dev-1", 2000.0, 1000.0 + NONCE_KEPT_AFTER_EXPIRY_S + 1)
    assert store.consume_nonce("n-1", "dev-1", 2000.0, 1000.0 + NONCE_KEPT_AFTER_EXPIRY_S + 1)


def keyed_device(store: EnrolmentStore, device_id: str = "dev-1") -> None:
    store.enrol([enrolment(device_id, f"ek-{device_id}")])
    store.attest(
        dict(
            device_id=device_id,
            certificate_pem="c",
            firmware_version="2",
            security_version=3,
            fit_sha256="f",
            ak_public=b"\x00ak",
            key_public=b"\x01key",
            certificate_serial=f"serial-{device_id}",
            tls_certificate_serial=None,
        )
    )


def test_racing_releases_release_once(database: str) -> None:
    """Eight operators release the same quarantined device at once: one release, one audit record."""
    prepare(database)
    store = EnrolmentStore(database)
    keyed_device(store)
    store.quarantine("dev-1", "PCR 9 drifted")
    barrier, outcomes = threading.Barrier(8), list[str]()

    def release() -> None:
        barrier.wait()
        try:
            store.release("dev-1", "CN=operator", "re-flashed")
            outcomes.append("released")
        except NotQuarantined:
            outcomes.append("not quarantined")

    threads = [threading.Thread(target=release) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["not quarantined"] * 7 + ["released"]
    assert len(store.releases()) == 1
    assert store.security_floor("dev-1") == 3


def test_a_check_in_never_writes_over_a_quarantine(database: str) -> None:
    """The check-in's write carries its condition: once quarantined (by a racing check-in that saw drift),
    a passed check-in writes nothing and says why."""
    prepare(database)
    store = EnrolmentStore(database)
    keyed_device(store)
    store.quarantine("dev-1", "PCR 9 drifted")
    assert store.checked_in("dev-1", "2.1", 4, "f2") == "the device was quarantined meanwhile; nothing written"
    [row] = store.attested()
    assert (row["state"], row["firmware_version"], row["security_version"]) == ("quarantined", "2", 3)
    keyed_device(store, "dev-2")
    assert store.checked_in("dev-2", "2.1", 4, "f2") is None
    assert store.checked_in("dev-2", "2.0", 3, "f1") is not None  # older than what it attested on: nothing
