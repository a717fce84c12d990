"""The fleet CA's CRL in place at the edge: one verified copy in the state directory.

hostapd (its CA + CRL bundle) and the edge's charon (its ``x509crl`` directory) are given this
copy and nothing else, so "the CRL the edge enforces" is one file with one number. A CRL gets
there only through ``checked``: tasks/device/revocations.py's ``verified`` (the fleet CA's
signature and issuer, current, CRL number not older than the copy in place) plus what the
edge's IKE daemon needs on top: an authorityKeyIdentifier naming the fleet CA's key. strongSwan
5.9 looks a CA's CRL up only by that identifier (the SHA-1 of the CA's public key,
revocation_validator.c), so a CRL without it is never found and, with ``revocation = strict``,
every IKE authentication would fail with "RULE_CRL_VALIDATION is SKIPPED" (measured). RFC 5280
5.2.1 requires the extension in every CRL; refusing such a CRL here keeps the one in place.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks.core import atomic
from tasks.core.errors import InputError
from tasks.device import revocations
from tasks.network.state import State

IN_PLACE = "fleet-ca.crl.pem"


def path(state: State) -> Path | None:
    """The CRL the edge enforces, or None when the edge was brought up without one."""
    return Path(state.identity["crl"]) if state.identity.get("crl") else None


def _der(data: bytes) -> bytes:
    """A CRL as revocations.verified takes it: DER (a PEM file is converted, anything else refused there)."""
    if not data.lstrip().startswith(b"-----BEGIN"):
        return data
    try:
        return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise InputError(f"CRL: not a PEM X.509 CRL ({exc})") from None


def _names_the_key(crl: x509.CertificateRevocationList, fleet_ca: x509.Certificate) -> None:
    """The CRL's authorityKeyIdentifier is the fleet CA's key: the only way strongSwan finds it."""
    expected = x509.AuthorityKeyIdentifier.from_issuer_public_key(fleet_ca.public_key()).key_identifier  # type: ignore[arg-type]
    try:
        found = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        found = None
    if found != expected:
        what = "no authorityKeyIdentifier" if found is None else "an authorityKeyIdentifier of another key"
        raise InputError(
            f"CRL: {what}; the edge's charon finds a CA's CRL only by the CA's key identifier, so every IKE "
            "authentication would fail (RFC 5280 5.2.1 requires it: the CRL's issuer must add it)"
        )


def checked(data: bytes, fleet_ca: Path, current: Path | None) -> x509.CertificateRevocationList:
    """The CRL (PEM or DER) if the edge may put it in place; InputError with the one reason if not."""
    ca = x509.load_pem_x509_certificate(fleet_ca.read_bytes())
    crl = revocations.verified(_der(data), ca, current)
    _names_the_key(crl, ca)
    return crl


def place(state: State, crl: x509.CertificateRevocationList) -> Path:
    """Write a checked CRL as the edge's copy (atomically: a daemon reads the old or the new one)."""
    target = Path(state.directory) / IN_PLACE
    atomic.write_bytes(target, crl.public_bytes(serialization.Encoding.PEM))
    state.identity["crl"] = str(target)
    state.save()
    return target


def number(state: State) -> int | None:
    """The CRL number of the copy in place (None without one)."""
    where = path(state)
    if where is None:
        return None
    return revocations.number_of(x509.load_pem_x509_crl(where.read_bytes()))
