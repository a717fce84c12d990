"""Property test of the CRL a door fetches from the fleet server (tasks/device/revocations.py): for any bytes
and any edit of a genuine CRL, ``verified`` returns the CRL or raises InputError with one line - the refresh
thread catches only that, so anything else would end the door's refreshes silently, and fail the door's
first refresh with a traceback. The examples the property found are pinned.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tasks.core.errors import InputError
from tasks.device import revocations
from tests.support.identities import ca, crl, leaf

FLEET_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # deterministic signatures
FLEET_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet CA")])
FLEET_CA = (
    x509.CertificateBuilder()
    .subject_name(FLEET_NAME)
    .issuer_name(FLEET_NAME)
    .public_key(FLEET_KEY.public_key())
    .serial_number(1)
    .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
    .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .sign(FLEET_KEY, None)
)
GENUINE = (
    x509.CertificateRevocationListBuilder()
    .issuer_name(FLEET_NAME)
    .last_update(datetime(2026, 1, 1, tzinfo=UTC))
    .next_update(datetime(2100, 1, 1, tzinfo=UTC))
    .add_extension(x509.CRLNumber(7), critical=False)
    .add_revoked_certificate(
        x509.RevokedCertificateBuilder().serial_number(0x1234).revocation_date(datetime(2026, 1, 1, tzinfo=UTC)).build()
    )
    .sign(FLEET_KEY, None)
    .public_bytes(serialization.Encoding.DER)
)
VERSION_AT = GENUINE.index(b"\x02\x01\x01")  # TBSCertList.version, v2 (= 1)
ISSUER_CN_AT = GENUINE.index(b"fleet CA")  # the issuer's commonName, a UTF8String


@st.composite
def edited(draw: st.DrawFn) -> bytes:
    """The genuine CRL with a few bytes changed, inserted or removed."""
    data = bytearray(GENUINE)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["byte", "insert", "delete"]))
        if edit == "byte":
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = bytes([draw(st.integers(0, 255))])
        else:
            del data[at]
    return bytes(data)


def test_the_fleet_cas_crl_is_verified_and_numbered() -> None:
    assert revocations.number_of(revocations.verified(GENUINE, FLEET_CA)) == 7
    fleet = ca("fleet CA")
    current = x509.load_pem_x509_crl(crl(fleet, [leaf(fleet, "dev-1")[0]], number=3))
    assert revocations.number_of(revocations.verified(current.public_bytes(serialization.Encoding.DER), fleet[0])) == 3


@settings(max_examples=400, deadline=None)
@given(der=st.binary(max_size=300) | edited())
@example(der=GENUINE[:VERSION_AT] + b"\x02\x01\x05" + GENUINE[VERSION_AT + 3 :])  # found: x509.InvalidVersion
@example(der=GENUINE[:ISSUER_CN_AT] + b"\x8a" + GENUINE[ISSUER_CN_AT + 1 :])  # found: an issuer that is no UTF-8
# loads, and its lazy parse raised ValueError past the load's try
def test_any_crl_bytes_are_verified_or_refused_in_one_line(der: bytes) -> None:
    try:
        revocations.verified(der, FLEET_CA)
    except InputError as refused:
        assert "\n" not in str(refused)
