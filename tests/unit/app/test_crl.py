"""GET /attestation/crl: the fleet CA's CRL, what the OTA repository and the network edge read.

A quarantine revokes the device certificate; the next CRL lists it, signed by the fleet CA, valid
CRL_SECONDS, with a CRL number that rises. Between changes the same bytes are served (no signature
per request). tasks/device/revocations.py accepts it, and refuses a foreign, stale or older one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from secure_iot_server.api import create_app
from secure_iot_server.config import Settings
from secure_iot_server.crl import CLOCK_SKEW, CRL_MEDIA_TYPE, CRL_SECONDS
from secure_iot_server.enrolment_store import EnrolmentStore
from secure_iot_server.registration import Trust

from tasks.core.errors import InputError
from tasks.device import revocations as door
from tests.support.identities import ca, leaf

FLEET = ca("fleet CA")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, EnrolmentStore]]:
    authority = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    trust = Trust(
        manufacturer_cas=[], golden=[], fleet_ca_cert=FLEET[0], fleet_ca_key=FLEET[1], policy_authority=authority
    )
    db = tmp_path / "fleet.db"
    yield TestClient(create_app(Settings(db_path=db), trust=trust, operator_cas=[])), EnrolmentStore(db)


def enrolled(store: EnrolmentStore, device_id: str) -> x509.Certificate:
    cert = leaf(FLEET, device_id)[0]
    store.attest(
        {
            "device_id": device_id,
            "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "firmware_version": "1.1.0",
            "security_version": 2,
            "fit_sha256": "00" * 32,
            "ak_public": b"ak",
            "key_public": b"key",
            "certificate_serial": format(cert.serial_number, "x"),
        }
    )
    return cert


def fetched(client: TestClient) -> tuple[bytes, x509.CertificateRevocationList]:
    response = client.get("/attestation/crl")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CRL_MEDIA_TYPE
    return response.content, x509.load_der_x509_crl(response.content)


def test_a_quarantine_is_on_the_next_crl(app: tuple[TestClient, EnrolmentStore]) -> None:
    client, store = app
    cert = enrolled(store, "sid-0000000001")
    first, empty = fetched(client)
    assert list(empty) == [] and empty.is_signature_valid(FLEET[0].public_key())  # type: ignore[arg-type]
    assert empty.next_update_utc is not None
    assert empty.next_update_utc - empty.last_update_utc == timedelta(seconds=CRL_SECONDS) + CLOCK_SKEW
    aki = empty.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(FLEET[1].public_key()).digest
    assert fetched(client)[0] == first  # nothing changed: the same CRL, not a new signature
    store.quarantine("sid-0000000001", "reference-values: measurements match no signed build")
    _, listed = fetched(client)
    assert listed.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert door.number_of(listed) > door.number_of(empty)


def test_the_door_takes_only_a_current_fleet_crl_no_older_than_its_own(
    app: tuple[TestClient, EnrolmentStore], tmp_path: Path
) -> None:
    client, store = app
    older, _ = fetched(client)
    enrolled(store, "sid-0000000002")
    store.quarantine("sid-0000000002", "device-key: no signature")
    newer, _ = fetched(client)
    in_place = tmp_path / "fleet.crl.pem"
    in_place.write_bytes(door.verified(newer, FLEET[0]).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(InputError, match="older than the one in place"):
        door.verified(older, FLEET[0], in_place)
    with pytest.raises(InputError, match="not signed by the fleet CA"):
        door.verified(newer, ca("fleet CA")[0])  # same name, another key
    stale = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(FLEET[0].subject)
        .last_update(datetime.now(UTC) - timedelta(hours=1))
        .next_update(datetime.now(UTC) - timedelta(minutes=1))
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(FLEET[1], hashes.SHA256())
    )
    with pytest.raises(InputError, match="not current"):
        door.verified(stale.public_bytes(serialization.Encoding.DER), FLEET[0])
