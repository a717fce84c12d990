"""secure-iot-server: drive the real ASGI app (TestClient) against a throwaway SQLite file; the tests that
store something run against both backends (`stored`: SQLite and a real PostgreSQL, tests/support/postgres.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi.testclient import TestClient
from secure_iot_server.api import create_app
from secure_iot_server.config import Settings
from secure_iot_server.middleware import BodySizeLimitMiddleware

from tests.support.identities import OPERATOR, operator_cas, with_client_certificate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MAX_BODY = 4096


def public_pem(key: Any) -> str:
    return str(
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


def device(device_id: str = "sensor-001", pem: str | None = None) -> dict[str, str]:
    return {
        "id": device_id,
        "model": "TH-100",
        "firmware_version": "1.4.2",
        "public_key_pem": pem or public_pem(ec.generate_private_key(ec.SECP256R1())),
    }


def operator_app(settings: Settings, trust: Path) -> Any:
    """The app as an operator reaches it over mTLS (identities.py places the certificate; ``trust``: where its
    operator CA and CRL are)."""
    return with_client_certificate(create_app(settings, operator_cas=operator_cas(trust)), OPERATOR[0])


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = operator_app(Settings(db_path=tmp_path / "devices.db", max_body=MAX_BODY), tmp_path)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def stored(database: str, tmp_path: Path) -> Iterator[TestClient]:
    """The client over each storage backend (the `database` fixture: SQLite, PostgreSQL)."""
    with TestClient(operator_app(Settings(db_url=database, max_body=MAX_BODY), tmp_path)) as c:
        yield c


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_ok(stored: TestClient) -> None:
    assert stored.get("/readyz").status_code == 200


def test_readyz_503_when_db_goes_away(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    app = operator_app(Settings(db_path=tmp_path / "db" / "devices.db"), tmp_path)
    shutil.rmtree(tmp_path / "db")  # the database vanishes under a running server
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200  # liveness does not depend on the DB
        assert c.get("/readyz").status_code == 503
        r = c.get("/devices")
        assert r.status_code == 503
        assert "unavailable" in r.json()["detail"]


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p256", "p384", "ed25519", "rsa2048"],
)
def test_register_get_list_delete(stored: TestClient, key: Any) -> None:
    client = stored
    body = device(pem=public_pem(key))
    r = client.post("/devices", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert created["fingerprint"] == hashlib.sha256(der).hexdigest()
    assert created["registered_at"]
    assert {k: created[k] for k in body} == body

    assert client.get("/devices/sensor-001").json() == created
    assert client.get("/devices").json() == [created]

    assert client.delete("/devices/sensor-001").status_code == 204
    assert client.get("/devices/sensor-001").status_code == 404
    assert client.get("/devices").json() == []


def test_data_persists_across_app_instances(database: str, tmp_path: Path) -> None:
    settings = Settings(db_url=database)
    with TestClient(operator_app(settings, tmp_path)) as c:
        assert c.post("/devices", json=device()).status_code == 201
    with TestClient(operator_app(settings, tmp_path)) as c:
        assert [d["id"] for d in c.get("/devices").json()] == ["sensor-001"]


def test_duplicate_id_409(stored: TestClient) -> None:
    client = stored
    assert client.post("/devices", json=device()).status_code == 201
    r = client.post("/devices", json=device())
    assert r.status_code == 409
    assert "already registered" in r.json()["detail"]


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("not a key", "not PEM"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a valid PEM"),
        (public_pem(ec.generate_private_key(ec.SECP256K1())), "not allowed"),
        (public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "too small"),  # noqa: S505 - must be rejected
    ],
    ids=["not-pem", "garbage-pem", "secp256k1", "rsa1024"],
)
def test_invalid_public_key_422(client: TestClient, pem: str, message: str) -> None:
    r = client.post("/devices", json=device(pem=pem))
    assert r.status_code == 422
    assert message in json.dumps(r.json())


def test_private_key_rejected_422(client: TestClient) -> None:
    pem = private_pem(ec.generate_private_key(ec.SECP256R1()))
    r = client.post("/devices", json=device(pem=pem))
    assert r.status_code == 422
    assert "private key" in json.dumps(r.json())
    secret_line = pem.splitlines()[1]
    assert secret_line not in r.text  # the secret is not echoed back


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b'"x"'])
def test_malformed_json_is_4xx_not_500(client: TestClient, raw: bytes) -> None:
    r = client.post("/devices", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_oversized_body_413_by_content_length(client: TestClient) -> None:
    body = device()
    body["model"] = "x" * (MAX_BODY + 1)
    r = client.post("/devices", json=body)
    assert r.status_code == 413
    assert client.get("/devices").json() == []


def test_oversized_streamed_body_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(10):
            yield b"x" * 1024

    r = client.post("/devices", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_device_404(client: TestClient) -> None:
    assert client.get("/devices/nope-404").status_code == 404
    r = client.delete("/devices/nope-404")
    assert r.status_code == 404
    assert "not found" in r.json()["detail"]


@pytest.mark.parametrize("bad_id", ["AB", "UPPER-case", "-leading", "has_underscore", "x" * 64, "a b c"])
def test_bad_id_pattern_422(client: TestClient, bad_id: str) -> None:
    assert client.post("/devices", json=device(device_id=bad_id)).status_code == 422


def test_bad_id_in_path_422(client: TestClient) -> None:
    assert client.get("/devices/BAD_ID").status_code == 422


@pytest.mark.parametrize(
    ("field", "value"),
    [("firmware_version", "latest"), ("model", ""), ("model", "m" * 65), ("extra", "field")],
)
def test_other_field_validation_422(client: TestClient, field: str, value: str) -> None:
    body = device()
    body[field] = value
    assert client.post("/devices", json=body).status_code == 422


def test_openapi_schema_served(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/devices", "/devices/{device_id}"} <= set(paths)


@pytest.mark.parametrize(("sizes", "expected"), [([1000, 1000, 1000], 200), ([2000, 2000, 2000], 413)])
def test_body_limit_counts_streamed_chunks(sizes: list[int], expected: int) -> None:
    """Drive the middleware with raw ASGI messages: several chunks and no Content-Length."""
    seen: list[bytes] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages = [
        {"type": "http.request", "body": b"a" * n, "more_body": i < len(sizes) - 1} for i, n in enumerate(sizes)
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/devices", "headers": []}
    asyncio.run(BodySizeLimitMiddleware(inner, max_body=MAX_BODY)(scope, receive, send))
    assert sent[0]["status"] == expected
    assert seen == ([b"a" * sum(sizes)] if expected == 200 else [])


def test_the_manifest_uploads_larger_bound_is_for_a_certified_client_only(tmp_path: Path) -> None:
    """/attestation/manifests takes an operator's batch (MANIFEST_MAX_BODY); a client that presented no
    certificate gets the default bound there too, so it cannot make the server buffer and parse half a
    megabyte before the operator check refuses it."""
    body = b"{" + b" " * (4 * MAX_BODY) + b"}"
    headers = {"content-type": "application/json"}
    app = create_app(Settings(db_path=tmp_path / "devices.db", max_body=MAX_BODY), operator_cas=operator_cas(tmp_path))
    with TestClient(app) as anonymous:
        assert anonymous.post("/attestation/manifests", content=body, headers=headers).status_code == 413
    with TestClient(operator_app(Settings(db_path=tmp_path / "op.db", max_body=MAX_BODY), tmp_path)) as operator:
        assert operator.post("/attestation/manifests", content=body, headers=headers).status_code != 413
