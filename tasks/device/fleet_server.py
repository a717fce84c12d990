"""The fleet server (app/, secure-iot-server) as a real process for the attestation story: its trust
directory, its CAs, mTLS on 127.0.0.1 on a port picked free, stopped by PID.

What the server trusts is written here from the pipeline's own outputs: the factory's manufacturer
CA certificate, the pipeline's cosign public key and the firmware's signed reference-values bundle.
The fleet CA (device certificates), an operator CA with one operator and the server's TLS
certificate are made per run with `cryptography`. The operator CA's CRL (required by the server)
is written beside it; its key stays in the server's home, outside the trust directory, for
``revoke_operator`` (tasks/device/operator_crl.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tasks.core import atomic, processes, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.device import manufacturer, operator_crl
from tasks.device.server_settings import ARGV, PYTHON, ServerSettings

WAIT_S = 30.0


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def leaf(issuer: manufacturer.Manufacturer, name: str, *, server: bool) -> tuple[bytes, bytes]:
    """A one-day leaf (PEM certificate, PEM key): a server's names localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


@dataclass(frozen=True)
class FleetServer:
    """Where the server's files are: trust directory, TLS material, database."""

    home: Path

    @property
    def trust(self) -> Path:
        return self.home / "trust"

    @property
    def operator_ca(self) -> Path:
        return self.trust / "operator-ca" / "operators.pem"

    @property
    def operator_ca_key(self) -> Path:
        return self.home / "operator-ca.key"

    @property
    def operator_crl(self) -> Path:
        return operator_crl.crl_path(self.operator_ca)


def prepare(
    home: Path, manufacturer_ca: bytes, pipeline_key: bytes, policy_authority: bytes, reference_bundles: list[Path]
) -> FleetServer:
    server = FleetServer(home)
    trust = server.trust
    for sub in ("manufacturer-ca", "operator-ca", "reference-values"):
        (trust / sub).mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(trust / "manufacturer-ca" / "manufacturer.pem", manufacturer_ca)
    atomic.write_bytes(trust / "pipeline-cosign.pub", pipeline_key)
    atomic.write_bytes(trust / "device-policy.pub", policy_authority)
    for n, bundle in enumerate(reference_bundles):
        atomic.write_bytes(trust / "reference-values" / f"build-{n}.sigstore.json", bundle.read_bytes())
    fleet, operators, tls = (manufacturer.create(n) for n in ("secure-iot fleet", "secure-iot operators", "server"))
    atomic.write_bytes(trust / "fleet-ca.pem", fleet.cert_pem)
    atomic.write_secret(trust / "fleet-ca.key", _pem_key(fleet.key))
    atomic.write_bytes(server.operator_ca, operators.cert_pem)
    atomic.write_secret(server.operator_ca_key, _pem_key(operators.key))
    operator_crl.write_first(operators, server.operator_ca)
    atomic.write_bytes(home / "client-ca.pem", operators.cert_pem + fleet.cert_pem)
    atomic.write_bytes(home / "server-ca.pem", tls.cert_pem)
    for name, issuer, is_server in (("server", tls, True), ("operator", operators, False)):
        cert, key = leaf(issuer, "localhost" if is_server else "operator", server=is_server)
        atomic.write_bytes(home / f"{name}.pem", cert)
        atomic.write_secret(home / f"{name}.key", key)
    return server


def revoke_operator(server: FleetServer, certificate: x509.Certificate) -> int:
    """Revoke an operator certificate: the operator CA's next CRL, which the running server reads at the
    next operator request (no restart). Returns the new CRL number."""
    operators = manufacturer.load_ca(server.operator_ca, server.operator_ca_key)
    return operator_crl.revoke(operators, server.operator_ca, certificate)


@contextlib.contextmanager
def serving(rec: StageRecord, server: FleetServer, app_src: Path, *, min_security_version: int) -> Iterator[str]:
    """`python -m secure_iot_server` with mTLS on 127.0.0.1; yields its https URL; stopped by PID."""
    port = processes.free_port()
    settings = ServerSettings(
        host="127.0.0.1",
        port=port,
        db_path=server.home / "fleet.db",
        trust_dir=server.trust,
        min_security_version=min_security_version,
        tls_cert=server.home / "server.pem",
        tls_key=server.home / "server.key",
        client_ca=server.home / "client-ca.pem",
    )
    log = server.home / "server.log"
    proc = runner.start(rec, PYTHON, list(ARGV), log=log, env=settings.env(app_src))
    try:
        try:
            processes.wait_listening(proc, port, "the fleet server", timeout=WAIT_S, poll=0.1)
        except ToolError as exc:
            tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
            raise ToolError(f"{exc}: {tail}") from None
        yield f"https://localhost:{port}"
    finally:
        rec.details.setdefault("fleet_server", []).append({"pid": proc.pid, "stopped": processes.stop(proc)})


def client(server: FleetServer, url: str, *, operator: bool = False) -> httpx.Client:
    """A device (no client certificate: registration and check-in carry their own proofs) or the operator."""
    context = ssl.create_default_context(cafile=str(server.home / "server-ca.pem"))
    if operator:
        context.load_cert_chain(server.home / "operator.pem", server.home / "operator.key")
    return httpx.Client(base_url=url, verify=context, timeout=30)
