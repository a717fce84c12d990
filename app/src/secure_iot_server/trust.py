"""Load what the fleet server trusts from one directory (SECURE_IOT_TRUST_DIR), failing closed.

manufacturer-ca/*.pem             manufacturer CAs: EK certificates and manufacturing manifests
pipeline-cosign.pub               the pipeline's cosign public key (reference values are signed with it)
device-policy.pub                 the policy authority's RSA public key: it approves each build's device-key
                                  policy (key_policy.py); every device key must be PolicyAuthorize by it
reference-values/*.sigstore.json  reference-values attestations; each verified (its key approval too),
                                  or the server won't start
fleet-ca.pem, fleet-ca.key        the fleet CA that issues device certificates
operator-ca/<name>.pem            operator CAs: their client certificates get the operator role
operator-ca/<name>.crl.pem        each one's CRL (PEM or DER), required and current at start, re-read
                                  when the file changes (operator_revocation.py)
models.toml (optional)            per hardware model, its minimum security version:
                                  [models.qemu-virt-a57] min_security_version = 3
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import key_policy, operator_revocation
from .attestation import Lockout
from .reference_values import ReferenceValuesError, verify_bundle
from .registration import Trust


class TrustError(ValueError):
    """The trust directory is incomplete or holds something that does not verify."""


def load_trust(directory: Path, *, min_security_version: int = 0, lockout: Lockout | None = None) -> Trust:
    cas = [
        x509.load_pem_x509_certificate(p.read_bytes()) for p in sorted((directory / "manufacturer-ca").glob("*.pem"))
    ]
    if not cas:
        raise TrustError(f"{directory}/manufacturer-ca/: no manufacturer CA certificate")
    pipeline_key = serialization.load_pem_public_key((directory / "pipeline-cosign.pub").read_bytes())
    if not isinstance(pipeline_key, ec.EllipticCurvePublicKey):
        raise TrustError("pipeline-cosign.pub: expected cosign's ECDSA P-256 public key")
    authority = _policy_authority(directory / "device-policy.pub")
    golden = []
    for bundle in sorted((directory / "reference-values").glob("*.sigstore.json")):
        try:
            build = verify_bundle(bundle.read_bytes(), pipeline_key)
            key_policy.verify_approval(build, authority)
            golden.append(build)
        except ReferenceValuesError as exc:  # the only refusal of verify_bundle and verify_approval
            raise TrustError(f"{bundle.name}: {exc}") from None
    fleet_key = serialization.load_pem_private_key((directory / "fleet-ca.key").read_bytes(), password=None)
    if not isinstance(fleet_key, ec.EllipticCurvePrivateKey):
        raise TrustError("fleet-ca.key: expected an EC private key")
    fleet_cert = x509.load_pem_x509_certificate((directory / "fleet-ca.pem").read_bytes())
    try:
        operators = operator_revocation.load_all(directory / "operator-ca")
    except operator_revocation.CRLError as exc:
        raise TrustError(f"operator-ca/{exc}") from None
    minimums = model_minimums(directory / "models.toml")
    return Trust(
        cas, golden, fleet_cert, fleet_key, authority, min_security_version, lockout or Lockout(), operators, minimums
    )


def model_minimums(path: Path) -> dict[str, int]:
    """models.toml's per-model minimum security versions (none if the file is absent)."""
    if not path.exists():
        return {}
    try:
        models = tomllib.loads(path.read_text()).get("models", {})
        minimums = {str(name): table["min_security_version"] for name, table in models.items()}
    except (tomllib.TOMLDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise TrustError(f"{path.name}: expected [models.<model>] min_security_version = <n> ({exc})") from None
    for name, minimum in minimums.items():  # a TOML integer: not a float (1.5, inf, nan), not a boolean
        if type(minimum) is not int or minimum < 0:
            raise TrustError(f"{path.name}: [models.{name}] min_security_version = {minimum!r} is no integer >= 0")
    return minimums


def _policy_authority(path: Path) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TrustError(f"{path.name}: the policy authority's public key is required ({exc})") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != key_policy.AUTHORITY_BITS:
        raise TrustError(f"{path.name}: expected an RSA-{key_policy.AUTHORITY_BITS} public key")
    return key
