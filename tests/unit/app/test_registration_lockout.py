"""The registration-code lockout under a real concurrent burst (#30), on SQLite and a real PostgreSQL.

An attacker holding a device (its TPM answers the credential) but not its printed code answers its
challenges with many wrong codes at once, and the right code among them. Every attempt is counted in the
database before its code is evaluated, so: the failures stored are exactly the wrong codes evaluated,
never more than the limit are evaluated, and once locked out the right code gets the very refusal a
wrong one gets (no oracle). Someone holding only the EK certificate never reaches the code at all.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from secure_iot_server import attestation, tpm
from secure_iot_server.api import create_app
from secure_iot_server.attestation import Lockout
from secure_iot_server.config import Settings
from secure_iot_server.enrolment_store import EnrolmentStore
from secure_iot_server.registration import Trust

from tests.support import credential
from tests.support.identities import ca, endorsement_key
from tests.unit.app.test_unauthenticated_cost import AK_PUBLIC, MANUFACTURER, bare_answer, challenge

if TYPE_CHECKING:
    from collections.abc import Iterator

LOCKOUT = Lockout(max_failures=3, seconds=300.0)
CODE = "K7QX-2M9P-WT4R-8HJD"
SALT = b"printed-code-salt"
PARAMS = (2**14, 8, 1)  # the factory's scrypt cost: each evaluation takes tens of ms, so answers overlap
WRONG_ANSWERS = 12
DEVICE = "sid-0000000001"
EK_KEY, EK_CERT, EK_PEM = endorsement_key(MANUFACTURER)  # a software EK: the test answers as its TPM would
AK_NAME = tpm.parse_public(AK_PUBLIC).name
NO_TPM = bytes(32)


@pytest.fixture
def client(database: str) -> Iterator[tuple[TestClient, EnrolmentStore]]:
    fleet = ca("test fleet CA")
    trust = Trust(
        manufacturer_cas=[MANUFACTURER[0]],
        golden=[],
        fleet_ca_cert=fleet[0],
        fleet_ca_key=fleet[1],
        policy_authority=rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        lockout=LOCKOUT,
    )
    app = create_app(Settings(db_url=database), trust=trust, operator_cas=[])
    store = EnrolmentStore(database)
    store.enrol(
        [
            {
                "device_id": DEVICE,
                "model": "TH-100",
                "ek_spki_sha256": attestation.spki_sha256(EK_CERT.public_key()),
                "code_salt": SALT,
                "code_hash": attestation.code_digest(CODE, SALT, PARAMS),
                "code_n": PARAMS[0],
                "code_r": PARAMS[1],
                "code_p": PARAMS[2],
                "manifest_sha256": hashlib.sha256(b"manifest").hexdigest(),
            }
        ]
    )
    with TestClient(app) as c:
        yield c, store


def attempt(client: TestClient, code: str, *, tpm_held: bool = True) -> dict[str, Any]:
    """A challenge and its answer (the credential activated as the EK's TPM would, or not), again while
    another attempt's challenge replaced this one's (a device has one outstanding challenge): the refusal."""
    for _ in range(200):
        issued = client.post("/attestation/challenge", json=challenge(EK_PEM)).json()
        blob = base64.b64decode(issued["credential"])
        secret = credential.activate(EK_KEY, blob, AK_NAME) if tpm_held else NO_TPM
        response = client.post(
            "/attestation/complete",
            json=bare_answer(issued["session"], EK_PEM, code, base64.b64encode(secret).decode()),
        )
        assert response.status_code == 403, response.text
        refusal: dict[str, Any] = response.json()
        if refusal["step"] != "nonce":
            return refusal
        time.sleep(random.uniform(0, 0.02))
    raise AssertionError("the attempt never got its challenge answered")


def test_a_burst_of_wrong_codes_is_counted_before_it_is_evaluated(client: tuple[TestClient, EnrolmentStore]) -> None:
    http, store = client
    codes = [f"AAAA-AAAA-AAAA-{n:04d}" for n in range(WRONG_ANSWERS)] + [CODE]
    barrier, refusals = threading.Barrier(len(codes)), dict[str, dict[str, Any]]()

    def burst(code: str) -> None:
        barrier.wait()
        refusals[code] = attempt(http, code)

    threads = [threading.Thread(target=burst, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    right = refusals.pop(CODE)
    wrong_evaluated = [c for c, r in refusals.items() if r["detail"] == "wrong registration code"]
    locked = [c for c, r in refusals.items() if r["detail"].startswith("locked out")]
    assert len(wrong_evaluated) <= LOCKOUT.max_failures, refusals
    assert store.attempts(DEVICE)[0] == len(wrong_evaluated)  # every evaluated wrong code counted, no more
    assert len(wrong_evaluated) + len(locked) == WRONG_ANSWERS, refusals
    # the right code either passed the code step (a later step refused it: no quote) or was locked out unevaluated
    assert right["step"] == "quote-signature" or right["detail"].startswith("locked out"), right

    while store.attempts(DEVICE)[0] < LOCKOUT.max_failures:  # lock it, if the right code's give-back left room
        assert attempt(http, "BBBB-BBBB-BBBB-BBBB")["detail"] == "wrong registration code"
    failures = store.attempts(DEVICE)
    wrong, right = attempt(http, "CCCC-CCCC-CCCC-CCCC"), attempt(http, CODE)
    assert wrong == right == {"step": "registration-code", "detail": attestation.LOCKED_OUT}
    assert store.attempts(DEVICE) == failures  # refused unevaluated: nothing counted


def test_without_the_tpm_no_code_is_evaluated_or_counted(client: tuple[TestClient, EnrolmentStore]) -> None:
    """Someone holding only the EK certificate: the right code and a wrong one get the same refusal, at the
    credential, and no attempt is counted (the code is reached only by the EK's TPM)."""
    http, store = client
    right, wrong = attempt(http, CODE, tpm_held=False), attempt(http, "AAAA-AAAA-AAAA-AAAA", tpm_held=False)
    assert right == wrong and right["step"] == "credential-activation", (right, wrong)
    assert store.attempts(DEVICE)[0] == 0
