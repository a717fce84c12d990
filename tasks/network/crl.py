"""The CRLs in place at the edge: one verified copy per authority in the state directory.

Two authorities' certificates open doors of the edge: the fleet CA's (a device's 802.1X port and
IKE tunnel) and the operator CA's (an operator's IKE tunnel from the ops zone). Each has its CRL
here, put in place by the same checks and loaded by the same charon reload
(tasks/network/quarantine.py); which one a CRL is for is read from its issuer.

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

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks.core import atomic
from tasks.core.errors import InputError
from tasks.device import revocations
from tasks.network.state import State


@dataclass(frozen=True)
class Authority:
    """A CA whose certificates the edge admits, and where its certificate and CRL are recorded."""

    name: str  # as the CLI and the checks name it
    ca_key: str  # state.identity: its CA certificate
    crl_key: str  # state.identity: its CRL in place
    in_place: str  # the file in the state directory (and in charon's x509crl directory)
    option: str  # the `network -- up` option that gives its CRL

    def ca(self, state: State) -> Path | None:
        return Path(state.identity[self.ca_key]) if state.identity.get(self.ca_key) else None


FLEET = Authority("fleet CA", "ca", "crl", "fleet-ca.crl.pem", "--crl")
OPERATORS = Authority("operator CA", "operator-ca", "operator-crl", "operator-ca.crl.pem", "--operator-crl")
AUTHORITIES = (FLEET, OPERATORS)


def path(state: State, authority: Authority = FLEET) -> Path | None:
    """The CRL the edge enforces for ``authority``, or None when the edge was brought up without one."""
    return Path(state.identity[authority.crl_key]) if state.identity.get(authority.crl_key) else None


def authority_of(state: State, data: bytes) -> Authority:
    """The authority whose CA issued this CRL (by issuer name); the fleet CA's when none does, so that
    ``checked`` refuses a foreign CRL with its reason."""
    try:
        issuer = x509.load_der_x509_crl(_der(data)).issuer
    except ValueError:
        return FLEET
    for authority in AUTHORITIES:
        ca = authority.ca(state)
        if ca is not None and x509.load_pem_x509_certificate(ca.read_bytes()).subject == issuer:
            return authority
    return FLEET


def _der(data: bytes) -> bytes:
    """A CRL as revocations.verified takes it: DER (a PEM file is converted, anything else refused there)."""
    if not data.lstrip().startswith(b"-----BEGIN"):
        return data
    try:
        return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise InputError(f"CRL: not a PEM X.509 CRL ({exc})") from None


def _names_the_key(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> None:
    """The CRL's authorityKeyIdentifier is its CA's key: the only way strongSwan finds it."""
    expected = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()).key_identifier  # type: ignore[arg-type]
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


def checked(data: bytes, issuer: Path, current: Path | None) -> x509.CertificateRevocationList:
    """The CRL (PEM or DER) if the edge may put it in place as ``issuer``'s (the fleet CA's or the
    operator CA's certificate); InputError with the one reason if not."""
    ca = x509.load_pem_x509_certificate(issuer.read_bytes())
    crl = revocations.verified(_der(data), ca, current)
    _names_the_key(crl, ca)
    return crl


def place(state: State, crl: x509.CertificateRevocationList, authority: Authority = FLEET) -> Path:
    """Write a checked CRL as the edge's copy (atomically: a daemon reads the old or the new one)."""
    target = Path(state.directory) / authority.in_place
    atomic.write_bytes(target, crl.public_bytes(serialization.Encoding.PEM))
    state.identity[authority.crl_key] = str(target)
    state.save()
    return target


def number(state: State, authority: Authority = FLEET) -> int | None:
    """The CRL number of ``authority``'s copy in place (None without one)."""
    where = path(state, authority)
    if where is None:
        return None
    return revocations.number_of(x509.load_pem_x509_crl(where.read_bytes()))
