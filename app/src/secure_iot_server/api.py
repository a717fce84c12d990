"""HTTP API: `create_app(settings)` builds the FastAPI application."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from cryptography.x509.oid import NameOID
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from . import __version__
from .attestation import Refused
from .checkin import checkin
from .checkin_nonce import CheckinNonces
from .config import Settings
from .crl import CRL_MEDIA_TYPE, Publisher
from .database import prepare
from .device_store import DeviceStore, DuplicateDeviceError
from .enrolment_store import EnrolmentStore, NotQuarantined
from .identity import DEVICE, OPERATOR, peer_certificate, role_of
from .middleware import BodySizeLimitMiddleware
from .models import (
    DEVICE_ID_PATTERN,
    MANIFEST_MAX_BODY,
    ChallengeIn,
    CheckinIn,
    CompleteIn,
    DeviceIn,
    DeviceOut,
    ManifestIn,
    ReleaseIn,
    TelemetryIn,
    fingerprint,
)
from .operator_revocation import OperatorCA, refusal
from .registration import ManifestError, Trust, challenge, complete, load_manifest
from .telemetry_store import KEEP, TelemetryStore
from .trust import load_trust

if TYPE_CHECKING:
    from cryptography import x509

DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]

# Answers every operation of a kind can give, so the OpenAPI schema documents them all (the
# property-based test, tests/unit/app/test_api_properties.py, holds the app to its schema).
Responses = dict[int | str, dict[str, Any]]
STORED: Responses = {503: {"description": "the database is unavailable"}}
BODY: Responses = {
    400: {"description": "the body cannot be parsed"},
    413: {"description": "the body is larger than the server accepts"},
}
DEVICE_ONLY: Responses = {
    401: {"description": "no client certificate"},
    403: {"description": "a certificate, but not a device's, or a revoked one"},
}
OPERATOR_ONLY: Responses = {
    401: {"description": "no client certificate"},
    403: {"description": "a certificate, but not an operator's, or a revoked one, or the operator CRL is stale"},
}
ATTESTATION: Responses = {503: {"description": "attestation is not configured, or the database is unavailable"}}


def _certificate_with_role(request: Request, wanted: str, missing: str) -> x509.Certificate:
    """The caller's verified client certificate if its issuer gives ``wanted``: 401 without one, 403 otherwise
    (also for one the TLS layer passed but cryptography cannot parse)."""
    try:
        cert = peer_certificate(request.scope)
    except ValueError as exc:
        raise HTTPException(403, f"the client certificate cannot be parsed ({exc})") from None
    if cert is None:
        raise HTTPException(401, missing)
    operator_cas = [o.ca for o in request.app.state.operators]
    role = role_of(cert, operator_cas, request.app.state.fleet_ca)
    if role != wanted:
        raise HTTPException(403, f"this endpoint needs the {wanted} role, not {role or 'an unknown issuer'}")
    return cert


def require_operator(request: Request) -> str:
    """Fails closed: no client certificate 401; a device's, one from an unknown issuer, one its operator CA's
    CRL revokes, or any while that CRL is stale, 403 (before the endpoint does anything)."""
    cert = _certificate_with_role(request, OPERATOR, "an operator client certificate is required")
    refused = refusal(request.app.state.operators, cert)
    if refused is not None:
        raise HTTPException(403, refused)
    return cert.subject.rfc4514_string()


Operator = Annotated[str, Depends(require_operator)]


def require_device(request: Request) -> str:
    """A device's own endpoints: a certificate from the fleet CA, not revoked (401 without one, 403 otherwise)."""
    cert = _certificate_with_role(request, DEVICE, "a device client certificate (fleet CA) is required")
    revoked = request.app.state.enrolments.revocation(format(cert.serial_number, "x"))
    if revoked is not None:  # a quarantined device gets no updates and sends nothing
        raise HTTPException(403, f"device certificate revoked at {revoked['revoked_at']}: {revoked['reason']}")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


Device = Annotated[str, Depends(require_device)]


def create_app(
    settings: Settings | None = None, trust: Trust | None = None, operator_cas: list[OperatorCA] | None = None
) -> FastAPI:
    """The API; every endpoint but health and registration needs an operator's client certificate.
    ``operator_cas``: the operator CAs with their CRLs (the trust directory's, unless given)."""
    settings = settings or Settings.from_env()
    prepare(settings.database, migrate=settings.db_migrate)  # StorageError: fail closed before serving
    store = DeviceStore(settings.database)
    enrolments = EnrolmentStore(settings.database)
    reports = TelemetryStore(settings.database)
    if trust is None and settings.trust_dir is not None:
        trust = load_trust(settings.trust_dir, min_security_version=settings.min_security_version)
    if operator_cas is None:
        operator_cas = trust.operator_cas if trust is not None else []
    fleet_ca = trust.fleet_ca_cert if trust is not None else None

    app = FastAPI(title="secure-iot-server", version=__version__)
    app.state.operators, app.state.fleet_ca = operator_cas, fleet_ca
    app.state.enrolments = enrolments
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body=settings.max_body,
        per_path={"/attestation/manifests": MANIFEST_MAX_BODY},  # a batch of up to ~250 device records
    )

    @app.exception_handler(SQLAlchemyError)
    async def _db_unavailable(_request: Request, _exc: SQLAlchemyError) -> JSONResponse:
        return JSONResponse({"detail": "device database unavailable"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the offending input; drop it so submitted key material is never reflected.
        errors = [{k: v for k, v in err.items() if k != "input"} for err in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "database unreachable"}})
    def readyz(response: Response) -> dict[str, str]:
        if store.ping():
            return {"status": "ready"}
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "database unreachable"}

    @app.post(
        "/devices",
        status_code=201,
        responses={409: {"description": "id already registered"}} | BODY | OPERATOR_ONLY | STORED,
    )
    def register(device: DeviceIn, _: Operator) -> DeviceOut:
        row = {**device.model_dump(), "fingerprint": fingerprint(device.public_key_pem)}
        try:
            return DeviceOut.model_validate(store.add(row))
        except DuplicateDeviceError:
            raise HTTPException(409, f"device '{device.id}' is already registered") from None

    @app.get("/devices", responses=OPERATOR_ONLY | STORED)
    def list_devices(_: Operator) -> list[DeviceOut]:
        return [DeviceOut.model_validate(r) for r in store.all_devices()]

    @app.get("/devices/{device_id}", responses={404: {"description": "unknown device"}} | OPERATOR_ONLY | STORED)
    def get_device(device_id: DeviceId, _: Operator) -> DeviceOut:
        row = store.get(device_id)
        if row is None:
            raise HTTPException(404, f"device '{device_id}' not found")
        return DeviceOut.model_validate(row)

    @app.delete(
        "/devices/{device_id}",
        status_code=204,
        responses={404: {"description": "unknown device"}} | OPERATOR_ONLY | STORED,
    )
    def delete_device(device_id: DeviceId, _: Operator) -> Response:
        if not store.delete(device_id):
            raise HTTPException(404, f"device '{device_id}' not found")
        return Response(status_code=204)

    @app.get("/updates/check", responses=DEVICE_ONLY | STORED)
    def update_check(device: Device, security_version: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        """A device's update check: is its firmware below the minimum security version for its model?"""
        model = enrolments.model_of(device) if trust is not None else None
        minimum = trust.minimum_for(model) if trust is not None and model else settings.min_security_version
        return {"device": device, "minimum_security_version": minimum, "update_required": security_version < minimum}

    @app.post("/telemetry", status_code=202, responses=BODY | DEVICE_ONLY | STORED)
    def telemetry(device: Device, body: TelemetryIn) -> dict[str, Any]:
        """A device's telemetry: stored under the certificate's device (its newest KEEP reports are kept)."""
        return {"device": device, "stored": reports.add(device, body.model_dump())}

    @app.get("/devices/{device_id}/telemetry", responses=OPERATOR_ONLY | STORED)
    def device_telemetry(
        device_id: DeviceId, _: Operator, limit: Annotated[int, Query(ge=1, le=KEEP)] = 20
    ) -> list[dict[str, Any]]:
        """A device's newest telemetry reports, newest first (an unknown device has none)."""
        return reports.recent(device_id, limit)

    def trusted() -> Trust:
        if trust is None:
            raise HTTPException(503, "attestation is not configured (SECURE_IOT_TRUST_DIR)")
        return trust

    def refused(exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.reason, "step": exc.step}, status_code=403)

    @app.post(
        "/attestation/manifests",
        status_code=201,
        responses=BODY | {400: {"description": "not signed/malformed"}} | OPERATOR_ONLY | ATTESTATION,
    )
    def add_manifest(body: ManifestIn, _: Operator) -> dict[str, int]:
        try:
            return {"enrolled": load_manifest(enrolments, trusted(), body.manifest, body.signature)}
        except ManifestError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.post("/attestation/challenge", responses=BODY | {403: {"description": "refused, with the step"}} | ATTESTATION)
    def attestation_challenge(body: ChallengeIn) -> Response:
        try:
            return JSONResponse(challenge(enrolments, trusted(), body.ek_certificate_pem, body.ak_public))
        except Refused as exc:
            return refused(exc)

    @app.post(
        "/attestation/complete",
        status_code=201,
        responses=BODY | {403: {"description": "refused, with the step"}} | ATTESTATION,
    )
    def attestation_complete(body: CompleteIn) -> Response:
        try:
            return JSONResponse(complete(enrolments, trusted(), body.model_dump()), status_code=201)
        except Refused as exc:
            return refused(exc)

    nonces = CheckinNonces.for_fleet(trust.fleet_ca_key) if trust is not None else None

    def checkin_nonces() -> CheckinNonces:
        if nonces is None:
            raise HTTPException(503, "attestation is not configured (SECURE_IOT_TRUST_DIR)")
        return nonces

    @app.get("/attestation/nonce", responses=ATTESTATION)
    def attestation_nonce() -> dict[str, str]:
        """A fresh, single-use nonce for a check-in (answered within 60 s); stateless: nothing is stored."""
        return checkin_nonces().issue(time.time())

    @app.post(
        "/attestation/checkin",
        responses=BODY | {403: {"description": "refused or quarantined, with the step"}} | ATTESTATION,
    )
    def attestation_checkin(body: CheckinIn) -> Response:
        """Re-attestation: a fresh quote + event log, the nonce signed by the TPM-bound device key."""
        try:
            return JSONResponse(checkin(enrolments, trusted(), checkin_nonces(), body.model_dump()))
        except Refused as exc:
            return refused(exc)

    @app.get("/attestation/devices", responses=OPERATOR_ONLY | STORED)
    def attested_devices(_: Operator) -> list[dict[str, Any]]:
        """Every enrolled device with its state (attested / quarantined) and, if quarantined, why."""
        return enrolments.attested()

    crl = Publisher(enrolments, trust) if trust is not None else None

    @app.get(
        "/attestation/crl",
        response_class=Response,
        responses=ATTESTATION | {200: {"content": {CRL_MEDIA_TYPE: {}}, "description": "DER X.509 CRL"}},
    )
    def revocation_list() -> Response:
        """The fleet CA's CRL (DER, valid CRL_SECONDS): the revoked device certificates, for the other doors."""
        if crl is None:
            raise HTTPException(503, "attestation is not configured (SECURE_IOT_TRUST_DIR)")
        return Response(crl.current(), media_type=CRL_MEDIA_TYPE)

    @app.post(
        "/attestation/devices/{device_id}/release",
        responses=BODY | OPERATOR_ONLY | ATTESTATION | {409: {"description": "the device is not quarantined"}},
    )
    def release_device(device_id: DeviceId, body: ReleaseIn, operator: Operator) -> dict[str, Any]:
        """After a quarantined device is re-flashed: unclaim it so it registers afresh (new key, new
        certificate; the old one stays revoked). Audited: who, when, why, and the quarantine it ends."""
        try:
            return enrolments.release(device_id, operator, body.note)
        except NotQuarantined:
            raise HTTPException(409, f"device '{device_id}' is not quarantined") from None

    @app.get("/attestation/releases", responses=OPERATOR_ONLY | STORED)
    def quarantine_releases(_: Operator) -> list[dict[str, Any]]:
        """The audit trail of releases from quarantine."""
        return enrolments.releases()

    @app.get("/attestation/revocations", responses=OPERATOR_ONLY | STORED)
    def revoked_certificates(_: Operator) -> list[dict[str, Any]]:
        """The revoked device certificates (serial, device, reason, when): the list check-in refuses."""
        return enrolments.revocations()

    return app
