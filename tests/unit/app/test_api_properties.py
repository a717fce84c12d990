"""Property-based test of the HTTP API against its own OpenAPI schema (schemathesis over ASGI, in-process).

Positive and negative cases for every operation, as an operator (the certificate in the ASGI scope,
identities.py) with attestation configured: no 5xx, no invalid request accepted, every status code
and response body as the schema documents it. Examples are few per operation to stay within ~30 s.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from secure_iot_server.api import create_app
from secure_iot_server.config import Settings
from secure_iot_server.registration import Trust

from tests.support.identities import OPERATOR, ca, operator_cas, with_client_certificate

if TYPE_CHECKING:
    from schemathesis import BaseSchema, Case

CHECKS = [not_a_server_error, negative_data_rejection, status_code_conformance, response_schema_conformance]


def api_schema(db: Path) -> BaseSchema:
    fleet = ca("test fleet CA")
    trust = Trust(
        manufacturer_cas=[ca("test manufacturer CA")[0]],
        golden=[],
        fleet_ca_cert=fleet[0],
        fleet_ca_key=fleet[1],
        policy_authority=rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        operator_cas=operator_cas(db.parent),
    )
    app = create_app(Settings(db_path=db), trust=trust)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", with_client_certificate(app, OPERATOR[0]))
    # An invalid request is rejected when it gets a 4xx the API uses for that (413: too large, 409:
    # conflict, 403: refused); schemathesis' default list lacks 413.
    rejected = ["400", "401", "403", "404", "409", "413", "422"]
    loaded.config.checks.negative_data_rejection.expected_statuses = rejected
    return loaded


# Built at collection (schemathesis parametrises from a schema object); the database is a temp file.
_WORK = Path(tempfile.mkdtemp(prefix="secure-iot-api-"))
atexit.register(shutil.rmtree, _WORK, True)  # also when the module is only collected
schema = api_schema(_WORK / "devices.db")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Case[Any]) -> None:
    case.call_and_validate(checks=CHECKS)
