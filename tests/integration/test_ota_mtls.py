"""The update repository over mTLS (issues #15, #29): uvicorn requiring a client certificate from the
fleet CA that is not on the fleet CA's current CRL.

An enrolled device (its certificate issued by the fleet CA, as registration does) updates through
python-tuf and RAUC; a device whose certificate another CA issued, and a client with none, get no
metadata at all (the handshake fails) and the device is unchanged. A quarantined device (its
certificate on the CRL) is refused from the first handshake after that CRL is in place; a CRL past
its nextUpdate, or one another CA signed, refuses everyone.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks import ota, toolchain
from tasks.core.evidence import StageRecord
from tasks.ota.repository import Config
from tests.support.identities import ca, crl, leaf
from tests.support.project import REPO

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
    quarantined: ota.DeviceTls
    fleet: tuple[x509.Certificate, Any]
    crl: Path


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
    quarantined = ota.DeviceTls(*issue(fleet, "device-0003", certs), server_ca)
    revocations = certs / "fleet-ca.crl.pem"
    revocations.write_bytes(crl(fleet, [], number=1))
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
    tls = ota.ServerTls(server_cert, server_key, fleet_ca, revocations)
    with ota.serve(rec, repo.directory, work / "server" / "server.log", tls=tls) as url:
        yield World(work, rec, tools, pki, repo, url, server_ca, enrolled, stranger, quarantined, fleet, revocations)


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


def fetches(world: World, tls: ota.DeviceTls) -> bool:
    """One GET of the timestamp with ``tls``'s certificate: served (True) or refused in the handshake."""
    return ota.serves(world.url, tls)


def test_a_quarantined_device_is_refused_from_the_next_handshake(world: World) -> None:
    assert fetches(world, world.quarantined)
    revoked = x509.load_pem_x509_certificate(world.quarantined.cert.read_bytes())
    world.crl.write_bytes(crl(world.fleet, [revoked], number=2))
    assert not fetches(world, world.quarantined)
    dev = device(world, "quarantined")
    before = dev.state
    with pytest.raises(ota.UpdateRefused, match=r"download failed.*root\.json"):
        update(world, dev, world.quarantined)
    assert dev.state == before
    assert fetches(world, world.enrolled)  # the others are served as before


def test_a_stale_or_foreign_crl_refuses_everyone(world: World) -> None:
    current = world.crl.read_bytes()
    try:
        world.crl.write_bytes(crl(world.fleet, [], number=3, valid_for=timedelta(minutes=-1)))
        assert not fetches(world, world.enrolled)
        world.crl.write_bytes(crl(ca("someone else's CA"), [], number=4))
        assert not fetches(world, world.enrolled)
        world.crl.unlink()
        assert not fetches(world, world.enrolled)
    finally:
        world.crl.write_bytes(current)
    assert fetches(world, world.enrolled)


def client_context(world: World, tls: ota.DeviceTls) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(world.server_ca))
    context.load_cert_chain(str(tls.cert), str(tls.key))
    return context


def raw_get(world: World, context: ssl.SSLContext, session: ssl.SSLSession | None = None) -> tuple[bytes, Any]:
    """One request on a connection of its own, optionally resuming ``session``: (status line, session)."""
    host, port = world.url.removeprefix("https://").split(":")
    try:
        with (
            socket.create_connection((host, int(port))) as raw,
            context.wrap_socket(raw, server_hostname=host, session=session) as conn,
        ):
            conn.sendall(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: repository\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            return data.split(b"\r\n")[0], conn.session
    except (ssl.SSLError, OSError):
        return b"", None


def test_no_session_or_connection_outlives_a_revocation(world: World) -> None:
    """The CRL is met on every request: a TLS 1.2 client gets no handshake, the server closes each
    connection after one response and issues no session tickets to resume."""
    device = ota.DeviceTls(*issue(world.fleet, "device-0004", world.work / "certs"), world.server_ca)
    context = client_context(world, device)
    status, session = raw_get(world, context)
    assert status == b"HTTP/1.1 200 OK"  # and the server closed the connection: recv returned EOF
    revoked = x509.load_pem_x509_certificate(device.cert.read_bytes())
    current = world.crl.read_bytes()
    try:
        world.crl.write_bytes(crl(world.fleet, [revoked], number=5))
        assert raw_get(world, context, session)[0] == b""  # a resumption attempt is a full handshake, refused
    finally:
        world.crl.write_bytes(current)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(str(world.server_ca))
    host, port = world.url.removeprefix("https://").split(":")
    with pytest.raises((ssl.SSLError, OSError)), socket.create_connection((host, int(port))) as raw:
        old.wrap_socket(raw, server_hostname=host).close()


def test_a_certificate_in_the_crl_file_is_never_a_trust_anchor(world: World) -> None:
    attacker = ca("attacker CA")
    intruder = ota.DeviceTls(*issue(attacker, "device-0005", world.work / "certs"), world.server_ca)
    current = world.crl.read_bytes()
    try:
        world.crl.write_bytes(current + attacker[0].public_bytes(serialization.Encoding.PEM))
        assert not fetches(world, intruder)
        assert not fetches(world, world.enrolled)  # a CRL file that is more than a CRL is refused whole
    finally:
        world.crl.write_bytes(current)
    assert fetches(world, world.enrolled)
