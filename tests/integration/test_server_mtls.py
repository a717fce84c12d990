"""Attack case 10 over real TLS: the server process (uvicorn, mTLS) and httpx clients with and without certificates.

Operator endpoints answer 401 without a certificate and 403 with a device certificate; a
certificate from an unknown CA fails the handshake; registration stays reachable without one.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess  # nosec B404 - the test starts the real server process and stops it by PID
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from secure_iot_server.config import Settings

from tasks.core.processes import free_port
from tests.support.fleet import policy_authority
from tests.support.identities import OPERATOR, OPERATOR_CA, ca, leaf, operator_cas
from tests.support.project import REPO

pytestmark = pytest.mark.slow


def pem_key(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def write_pair(directory: Path, name: str, pair: tuple[Any, Any]) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(pair[0].public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pem_key(pair[1]))
    return cert, key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("mtls")
    trust = work / "trust"
    for sub in ("manufacturer-ca", "operator-ca", "reference-values"):
        (trust / sub).mkdir(parents=True)
    write_pair(trust / "manufacturer-ca", "acme", ca("ACME EK CA"))
    operator_cas(trust)  # operator-ca/ops.pem (OPERATOR_CA) and its CRL
    pipeline = ec.generate_private_key(ec.SECP256R1()).public_key()
    (trust / "pipeline-cosign.pub").write_bytes(
        pipeline.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _, authority = policy_authority(work)
    (trust / "device-policy.pub").write_bytes(authority.read_bytes())
    fleet = ca("fleet CA")
    write_pair(trust, "fleet-ca", fleet)
    server_ca = ca("server CA")
    server_cert, server_key = write_pair(work, "server", leaf(server_ca, "localhost", server=True))
    (work / "server-ca.pem").write_bytes(server_ca[0].public_bytes(serialization.Encoding.PEM))
    bundle = work / "client-ca.pem"
    bundle.write_bytes(b"".join(c[0].public_bytes(serialization.Encoding.PEM) for c in (OPERATOR_CA, fleet)))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "app/src"),
        **Settings(
            port=port,
            db_path=work / "fleet.db",
            trust_dir=trust,
            tls_cert=server_cert,
            tls_key=server_key,
            client_ca=bundle,
        ).to_env(),
    }
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "secure_iot_server"], env=env, stdout=log, stderr=log)  # nosec B603
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (work / "server.log").read_text()
            time.sleep(0.1)
        identities = {
            "operator": write_pair(work, "operator", OPERATOR),
            "device": write_pair(work, "device", leaf(fleet, "sid-0000000001")),
            "stranger": write_pair(work, "stranger", leaf(ca("unknown CA"), "mallory")),
        }
        yield {"url": f"https://localhost:{port}", "ca": work / "server-ca.pem", "ids": identities}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def client(server: dict[str, Any], who: str | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(server["ca"]))
    if who is not None:
        cert, key = server["ids"][who]
        context.load_cert_chain(cert, key)
    return httpx.Client(base_url=server["url"], verify=context, timeout=10)


def test_10_operator_endpoints_need_the_operator_certificate(server: dict[str, Any]) -> None:
    with client(server, None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/attestation/devices").status_code == 401
        assert anonymous.delete("/devices/sensor-001").status_code == 401
        # registration is the one unauthenticated endpoint: reachable, and refused on its merits
        refused = anonymous.post("/attestation/challenge", json={"ek_certificate_pem": "x", "ak_public": "AA=="})
        assert refused.status_code == 403 and refused.json()["step"] == "attestation-key"  # parsed first
    with client(server, "device") as device:
        response = device.get("/attestation/devices")
        assert response.status_code == 403
        assert "not device" in response.json()["detail"]
        assert device.delete("/devices/sensor-001").status_code == 403
    with client(server, "operator") as operator:
        assert operator.get("/attestation/devices").json() == []
        assert operator.get("/devices").status_code == 200


def test_10_a_certificate_from_an_unknown_ca_fails_the_handshake(server: dict[str, Any]) -> None:
    # TLS 1.3: the server checks the client certificate after the handshake and drops the connection
    with (
        client(server, "stranger") as stranger,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        stranger.get("/healthz")
