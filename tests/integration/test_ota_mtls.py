"""The update repository over mTLS (issue #15): uvicorn requiring a client certificate from the fleet CA.

An enrolled device (its certificate issued by the fleet CA, as registration does) updates through
python-tuf and RAUC; a device whose certificate another CA issued, and a client with none, get no
metadata at all (the handshake fails) and the device is unchanged.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import urllib3
from cryptography.hazmat.primitives import serialization

from tasks import ota, toolchain
from tasks.core.evidence import StageRecord
from tasks.ota.repository import Config
from tests.support.identities import ca, leaf
from tests.support.project import REPO

if TYPE_CHECKING:
    from cryptography import x509

pytestmark = pytest.mark.slow

MODEL = "qemu-virt-a57"
CONFIG = Config((MODEL,), MODEL, {"root": 365, "targets": 90, "model": 90, "snapshot": 7, "timestamp": 1})


def issue(
    issuer: tuple[x509.Certificate, Any], name: str, directory: Path, *, server: bool = False
) -> tuple[Path, Path]:
    """A leaf the way the project's tests make them (tests/support/identities.py), written as PEM files."""
    cert, key = leaf(issuer, name, server=server)
    path = pem(directory, name, cert)
    keyfile = directory / f"{name}.key"
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path, keyfile


def pem(directory: Path, name: str, cert: x509.Certificate) -> Path:
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass
class World:
    work: Path
    rec: StageRecord
    tools: dict[str, Any]
    pki: ota.RaucPki
    repo: ota.Repository
    url: str
    server_ca: Path
    enrolled: ota.DeviceTls
    stranger: ota.DeviceTls


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("ota-mtls")
    rec = StageRecord(stage="release", root=REPO)
    tools = {n: toolchain.resolve(n, REPO, rec) for n in ("rauc", "mksquashfs", "openssl")}
    pki = ota.rauc_pki(tools["openssl"], rec, work / "keys" / "rauc")
    fleet, other, server = ca("secure-iot fleet CA"), ca("someone else's CA"), ca("update server CA")
    certs = work / "certs"
    certs.mkdir()
    fleet_ca, server_ca = pem(certs, "fleet-ca", fleet[0]), pem(certs, "server-ca", server[0])
    server_cert, server_key = issue(server, "repository", certs, server=True)
    enrolled = ota.DeviceTls(*issue(fleet, "device-0001", certs), server_ca)
    stranger = ota.DeviceTls(*issue(other, "device-0002", certs), server_ca)
    repo = ota.Repository.open(work / "repository", ota.TufKeys(work / "keys" / "tuf"), CONFIG)
    payload = work / "v120.fit"
    payload.write_bytes(os.urandom(1 << 16))
    bundle = ota.bundle.build(
        tools["rauc"],
        tools["mksquashfs"],
        rec,
        pki,
        payload,
        work / "v120.raucb",
        model=MODEL,
        version="1.2.0",
        security_version=3,
        fit_digest="sha256:test",
    )
    repo.publish(
        MODEL,
        bundle,
        {
            "firmware_version": "1.2.0",
            "security_version": 3,
            "hardware_model": MODEL,
            "slsa_provenance": None,
            "slsa_provenance_note": "test bundle",
        },
    )
    tls = ota.ServerTls(server_cert, server_key, fleet_ca)
    with ota.serve(rec, repo.directory, work / "server" / "server.log", tls=tls) as url:
        yield World(work, rec, tools, pki, repo, url, server_ca, enrolled, stranger)


def device(world: World, name: str) -> ota.Device:
    fit = world.work / "factory.fit"
    fit.write_bytes(b"factory")
    return ota.Device.provision(
        world.work / name,
        model=MODEL,
        trusted_root=world.repo.trusted_root(1),
        keyring=world.pki.ca_cert,
        fit=fit,
        version="1.1.0",
        security_version=2,
    )


def update(world: World, dev: ota.Device, tls: ota.DeviceTls) -> ota.Outcome:
    return ota.update(
        dev,
        ota.Source.https(world.url, tls),
        rauc=world.tools["rauc"],
        mksquashfs=world.tools["mksquashfs"],
        rec=world.rec,
    )


def test_an_enrolled_device_updates_over_mtls(world: World) -> None:
    assert world.url.startswith("https://127.0.0.1:")
    dev = device(world, "enrolled")
    got = update(world, dev, world.enrolled)
    assert (got.result, got.slot, got.version) == ("installed", "B", "1.2.0")


def test_a_certificate_from_another_ca_gets_no_metadata(world: World) -> None:
    dev = device(world, "stranger")
    before = dev.state
    # TLS 1.3: the server checks the client certificate after the client's Finished, so the client
    # sees the connection closed (or an alert) on its first request: the root, nothing after it
    with pytest.raises(ota.UpdateRefused, match=r"download failed.*root\.json.*(Connection aborted|SSL|alert)"):
        update(world, dev, world.stranger)
    assert dev.state == before
    assert not (dev.directory / "tuf" / "timestamp.json").exists()  # not even a timestamp


def test_no_client_certificate_no_handshake(world: World) -> None:
    pool = urllib3.PoolManager(ca_certs=str(world.server_ca), cert_reqs="CERT_REQUIRED", retries=False)
    with pytest.raises((urllib3.exceptions.SSLError, urllib3.exceptions.ProtocolError, ssl.SSLError)):
        pool.request("GET", f"{world.url}/metadata/timestamp.json")
    # the same request with the enrolled certificate is served: the refusal above is the missing certificate
    enrolled = urllib3.PoolManager(
        cert_file=str(world.enrolled.cert),
        key_file=str(world.enrolled.key),
        ca_certs=str(world.server_ca),
        cert_reqs="CERT_REQUIRED",
    )
    assert enrolled.request("GET", f"{world.url}/metadata/timestamp.json").status == 200
    assert enrolled.request("GET", f"{world.url}/../pyproject.toml").status == 404
