"""Property tests of every parser the fleet server runs over what a device (or anyone on the network) sends,
and over the signed reference values it loads: for any bytes, and for edits of genuine structures (swtpm
captures in tests/fixtures/tpm, a reference-values statement signed as the pipeline signs it), the parser
returns a value or raises its one refusal - tpm.TpmFormatError (the caller turns it into a 403 with the
step), ReferenceValuesError (the server refuses to start with one line), Refused - never IndexError,
struct.error, KeyError, AttributeError, OverflowError, RecursionError; a declared size is checked before
anything of that size is allocated; a genuine structure parses back to the values it was made from.

The profile (tests/conftest.py) is derandomized and keeps no example database: CI runs the same examples.
Each bug these properties found is pinned below as an @example, so it fails on the code before its fix.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import struct
import tempfile
import tomllib
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import example, given, settings
from hypothesis import strategies as st
from secure_iot_server import attestation, identity, key_policy, tpm
from secure_iot_server.attestation import Refused
from secure_iot_server.reference_values import (
    IN_TOTO_PAYLOAD_TYPE,
    REFERENCE_VALUES_PREDICATE_TYPE,
    STATEMENT_TYPES,
    Golden,
    ReferenceValuesError,
    pae,
    verify_bundle,
)
from secure_iot_server.trust import TrustError, model_minimums

FIXTURES = Path(__file__).parents[2] / "fixtures"
CAPTURED = json.loads((FIXTURES / "tpm" / "quote.json").read_text())
DEVICE_KEY = json.loads((FIXTURES / "tpm" / "device-key.json").read_text())
AK = bytes.fromhex(CAPTURED["ak_tpm2b_public"])
QUOTE = bytes.fromhex(CAPTURED["quote_tpms_attest"])
SIGNATURE = bytes.fromhex(CAPTURED["quote_tpmt_signature"])
KEY_PUBLIC = bytes.fromhex(DEVICE_KEY["key_public"])
CERTIFY = bytes.fromhex(DEVICE_KEY["certify"])

MANY = settings(max_examples=400, deadline=None)
SOME = settings(max_examples=150, deadline=None)


# --- TPM wire structures (TPM 2.0 Part 2, big-endian), encoded from fields ---------------------------


def tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def rsa_public(
    attributes: int,
    auth_policy: bytes,
    bits: int,
    exponent: int,
    modulus: bytes,
    *,
    kind: int = tpm.TPM_ALG_RSA,
    name_alg: int = tpm.TPM_ALG_SHA256,
    symmetric: int = tpm.TPM_ALG_NULL,
    scheme: int = tpm.TPM_ALG_RSASSA,
    scheme_hash: int = tpm.TPM_ALG_SHA256,
) -> bytes:
    """TPM2B_PUBLIC of an RSA key (TPMT_PUBLIC: type, nameAlg, objectAttributes, authPolicy, parameters, unique)."""
    body = (
        struct.pack(">HHI", kind, name_alg, attributes)
        + tpm2b(auth_policy)
        + struct.pack(">HHHHI", symmetric, scheme, scheme_hash, bits, exponent)
        + tpm2b(modulus)
    )
    return tpm2b(body)


def ecc_public(attributes: int, auth_policy: bytes, x: bytes, y: bytes, *, curve: int = tpm.TPM_ECC_NIST_P256) -> bytes:
    body = (
        struct.pack(">HHI", tpm.TPM_ALG_ECC, tpm.TPM_ALG_SHA256, attributes)
        + tpm2b(auth_policy)
        + struct.pack(">HHHHH", tpm.TPM_ALG_NULL, tpm.TPM_ALG_ECDSA, tpm.TPM_ALG_SHA256, curve, tpm.TPM_ALG_NULL)
        + tpm2b(x)
        + tpm2b(y)
    )
    return tpm2b(body)


CLOCK_INFO = struct.Struct(">QIIB")  # clock, resetCount, restartCount, safe


def quote_attest(
    signer: bytes, nonce: bytes, reset: int, restart: int, selection: bytes, digest: bytes, *, clock: int = 0
) -> bytes:
    """TPMS_ATTEST of a quote: magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion, TPMS_QUOTE_INFO."""
    return (
        struct.pack(">IH", tpm.TPM_GENERATED_VALUE, tpm.TPM_ST_ATTEST_QUOTE)
        + tpm2b(signer)
        + tpm2b(nonce)
        + CLOCK_INFO.pack(clock, reset, restart, 1)
        + struct.pack(">Q", 0)
        + selection
        + tpm2b(digest)
    )


def certify_attest(signer: bytes, extra: bytes, name: bytes, qualified: bytes) -> bytes:
    return (
        struct.pack(">IH", tpm.TPM_GENERATED_VALUE, tpm.TPM_ST_ATTEST_CERTIFY)
        + tpm2b(signer)
        + tpm2b(extra)
        + CLOCK_INFO.pack(0, 0, 0, 1)
        + struct.pack(">Q", 0)
        + tpm2b(name)
        + tpm2b(qualified)
    )


def rsassa(sig: bytes) -> bytes:
    return struct.pack(">HH", tpm.TPM_ALG_RSASSA, tpm.TPM_ALG_SHA256) + tpm2b(sig)


# The swtpm AK, taken apart into the fields it was made from (its authPolicy is empty).
AK_ATTRIBUTES, AK_BITS, AK_EXPONENT = struct.unpack_from(">I", AK, 6)[0], *struct.unpack_from(">HI", AK, 18)
AK_MODULUS = AK[26:]


def test_the_encoders_make_the_swtpm_captures_byte_for_byte() -> None:
    """The encoders the properties build with are TPM 2.0's: they reproduce what swtpm made."""
    assert rsa_public(AK_ATTRIBUTES, b"", AK_BITS, AK_EXPONENT, AK_MODULUS) == AK
    assert rsassa(SIGNATURE[6:]) == SIGNATURE
    quoted = tpm.parse_quote(QUOTE)
    assert quoted.pcrs == attestation.BOOT_PCRS  # so the swtpm selection is pcr_selection's
    assert QUOTE.endswith(tpm.pcr_selection(quoted.pcrs) + tpm2b(quoted.pcr_digest))
    key, certified = tpm.parse_ecc_public(KEY_PUBLIC), tpm.parse_certify(CERTIFY)
    point = key.key.public_numbers()
    assert ecc_public(key.attributes, key.auth_policy, point.x.to_bytes(32), point.y.to_bytes(32)) == KEY_PUBLIC
    assert CERTIFY.endswith(tpm2b(certified.name) + tpm2b(CERTIFY[-34:]))  # qualifiedName: a sha256 name


# --- byte-level mutations of genuine structures -------------------------------------------------------

BOUNDARY_U16 = (0, 1, 2, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
BOUNDARY_U32 = (0, 1, 3, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


@st.composite
def mutated(draw: st.DrawFn, genuine: bytes) -> bytes:
    """A genuine structure with a few edits: a size or count field (any offset) set to a boundary or any
    value, bytes changed, inserted or cut, or the end cut off."""
    data = bytearray(genuine)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(["u16", "u32", "byte", "insert", "delete", "truncate"]))
        if edit == "u16":
            data[at : at + 2] = struct.pack(">H", draw(st.sampled_from(BOUNDARY_U16) | st.integers(0, 0xFFFF)))
        elif edit == "u32":
            data[at : at + 4] = struct.pack(">I", draw(st.sampled_from(BOUNDARY_U32) | st.integers(0, 0xFFFFFFFF)))
        elif edit == "byte":
            data[at : at + 1] = bytes([draw(st.integers(0, 255))])
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


def parses_or_refuses(parse: Callable[[bytes], object], data: bytes) -> None:
    """The property itself: a value, or the parser's one refusal; any other exception fails the test."""
    with contextlib.suppress(tpm.TpmFormatError):
        parse(data)


PARSERS: dict[str, tuple[Callable[[bytes], object], bytes]] = {
    "TPM2B_PUBLIC rsa (AK)": (tpm.parse_public, AK),
    "TPMS_ATTEST quote": (tpm.parse_quote, QUOTE),
    "TPMT_SIGNATURE": (tpm.parse_signature, SIGNATURE),
    "TPM2B_PUBLIC ecc (device key)": (tpm.parse_ecc_public, KEY_PUBLIC),
    "TPMS_ATTEST certify": (tpm.parse_certify, CERTIFY),
}


@pytest.mark.parametrize("name", PARSERS)
@SOME
@given(data=st.data())
def test_any_bytes_and_any_edit_of_a_genuine_structure_parse_or_are_refused(name: str, data: st.DataObject) -> None:
    parse, genuine = PARSERS[name]
    parses_or_refuses(parse, data.draw(st.binary(max_size=1100) | mutated(genuine)))


def u16(valid: int) -> st.SearchStrategy[int]:
    return st.just(valid) | st.sampled_from(BOUNDARY_U16) | st.integers(0, 0xFFFF)


def u32(valid: int) -> st.SearchStrategy[int]:
    return st.just(valid) | st.sampled_from(BOUNDARY_U32) | st.integers(0, 0xFFFFFFFF)


@MANY
@given(
    attributes=u32(AK_ATTRIBUTES),
    auth_policy=st.just(b"") | st.binary(max_size=64),
    bits=u16(AK_BITS) | st.sampled_from(tpm.RSA_KEY_BITS),
    exponent=u32(AK_EXPONENT),
    modulus=st.just(AK_MODULUS)
    | st.binary(max_size=520)
    | st.integers(0, 255).map(lambda b: AK_MODULUS[:-1] + bytes([b])),
    scheme=u16(tpm.TPM_ALG_RSASSA),
)
@example(  # found: an exponent cryptography refuses (even, < 3) raised its ValueError: a 500 at /attestation/challenge
    attributes=AK_ATTRIBUTES, auth_policy=b"", bits=AK_BITS, exponent=2, modulus=AK_MODULUS, scheme=tpm.TPM_ALG_RSASSA
)
@example(  # found: an even modulus, likewise
    attributes=AK_ATTRIBUTES,
    auth_policy=b"",
    bits=AK_BITS,
    exponent=AK_EXPONENT,
    modulus=AK_MODULUS[:-1] + b"\x00",
    scheme=tpm.TPM_ALG_RSASSA,
)
def test_an_rsa_public_area_with_any_field_values_parses_or_is_refused(
    attributes: int, auth_policy: bytes, bits: int, exponent: int, modulus: bytes, scheme: int
) -> None:
    parses_or_refuses(tpm.parse_public, rsa_public(attributes, auth_policy, bits, exponent, modulus, scheme=scheme))


@st.composite
def rsa_modulus(draw: st.DrawFn) -> tuple[int, bytes]:
    bits = draw(st.sampled_from(tpm.RSA_KEY_BITS))
    n = draw(st.integers(2 ** (bits - 1), 2**bits - 1)) | 1  # odd, top bit set: a modulus cryptography accepts
    return bits, n.to_bytes(bits // 8)


@SOME
@given(
    attributes=st.integers(0, 0xFFFFFFFF),
    auth_policy=st.binary(max_size=64),
    modulus=rsa_modulus(),
    exponent=st.sampled_from([0, 3, 65537]) | st.integers(1, 0x7FFFFFFF).map(lambda e: 2 * e + 1),
)
def test_a_genuine_rsa_public_area_parses_to_the_values_it_was_made_from(
    attributes: int, auth_policy: bytes, modulus: tuple[int, bytes], exponent: int
) -> None:
    bits, n = modulus
    encoded = rsa_public(attributes, auth_policy, bits, exponent, n)
    parsed = tpm.parse_public(encoded)
    assert parsed.attributes == attributes
    assert parsed.key.public_numbers() == rsa.RSAPublicNumbers(exponent or 65537, int.from_bytes(n))
    assert parsed.name == b"\x00\x0b" + hashlib.sha256(encoded[2:]).digest()


@SOME
@given(
    signer=st.binary(max_size=66),
    nonce=st.binary(max_size=64),
    reset=st.integers(0, 0xFFFFFFFF),
    restart=st.integers(0, 0xFFFFFFFF),
    pcrs=st.sets(st.integers(0, 23)),
    digest=st.binary(max_size=64),
)
def test_a_genuine_quote_parses_to_the_values_it_was_made_from(
    signer: bytes, nonce: bytes, reset: int, restart: int, pcrs: set[int], digest: bytes
) -> None:
    selection = tpm.pcr_selection(tuple(pcrs))
    quoted = tpm.parse_quote(quote_attest(signer, nonce, reset, restart, selection, digest))
    assert quoted == tpm.Quote(signer, nonce, reset, restart, tuple(sorted(pcrs)), digest)


@SOME
@given(
    scalar=st.integers(1, 2**255),
    attributes=st.integers(0, 0xFFFFFFFF),
    auth_policy=st.binary(max_size=64),
    extra=st.binary(max_size=64),
    signature=st.binary(max_size=600),
)
def test_a_genuine_device_key_its_certification_and_a_signature_parse_back(
    scalar: int, attributes: int, auth_policy: bytes, extra: bytes, signature: bytes
) -> None:
    point = ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_numbers()
    key = tpm.parse_ecc_public(ecc_public(attributes, auth_policy, point.x.to_bytes(32), point.y.to_bytes(32)))
    assert (key.key.public_numbers(), key.attributes, key.auth_policy) == (point, attributes, auth_policy)
    certified = tpm.parse_certify(certify_attest(b"\x00\x0b" + bytes(32), extra, key.name, key.name))
    assert (certified.extra_data, certified.name) == (extra, key.name)
    assert tpm.parse_signature(rsassa(signature)) == signature


# Every size and count field at its largest, over a buffer far shorter than it declares.
SELECTION_AT = len(QUOTE) - len(tpm.pcr_selection(attestation.BOOT_PCRS)) - 34  # TPML_PCR_SELECTION.count
HUGE_DECLARATIONS = {
    "TPM2B_PUBLIC size": (tpm.parse_public, b"\xff\xff"),
    "authPolicy size": (
        tpm.parse_public,
        tpm2b(struct.pack(">HHI", tpm.TPM_ALG_RSA, tpm.TPM_ALG_SHA256, 0) + b"\xff\xff"),
    ),
    "quote: signer size": (tpm.parse_quote, QUOTE[:6] + b"\xff\xff"),
    "quote: selection count": (tpm.parse_quote, QUOTE[:SELECTION_AT] + b"\xff" * 4 + QUOTE[SELECTION_AT + 4 :]),
    "quote: sizeofSelect": (tpm.parse_quote, QUOTE[: SELECTION_AT + 6] + b"\xff" + QUOTE[SELECTION_AT + 7 :]),
    "signature size": (tpm.parse_signature, SIGNATURE[:4] + b"\xff\xff"),
    "certify: name size": (tpm.parse_certify, CERTIFY[:-72] + b"\xff\xff" + CERTIFY[-70:]),
}
ALLOCATION_BOUND = 16 * 1024  # bytes: what parsing any of these may allocate beyond the input itself


@pytest.mark.parametrize("field", HUGE_DECLARATIONS)
@settings(max_examples=40, deadline=None)
@given(tail=st.binary(max_size=64))
def test_a_declared_size_is_checked_before_anything_of_that_size_is_allocated(field: str, tail: bytes) -> None:
    parse, head = HUGE_DECLARATIONS[field]
    data = head + tail
    tracemalloc.start()
    try:
        parses_or_refuses(parse, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < ALLOCATION_BOUND + 4 * len(data), f"{field}: {peak} bytes allocated for {len(data)} bytes of input"


# --- the signed reference-values bundle (trust.py loads one per build; the server starts only if all verify) --

PIPELINE = ec.derive_private_key(0x5EC12E, ec.SECP256R1())  # stands in for the pipeline's cosign key
AUTHORITY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
REFERENCE = json.loads((FIXTURES / "firmware" / "reference-values.json").read_text())


def approved(predicate: dict[str, Any]) -> dict[str, Any]:
    """The predicate with the key approval the policy authority signs for it (key_policy.approval)."""
    events = tuple((int(e["pcr"]), str(e["digest"])) for e in predicate["event_log"])
    build = Golden(predicate["fit_sha256"], "", "", int(predicate["security_version"]), events)
    policy = key_policy.approval(build)
    signature = AUTHORITY.sign(policy, padding.PKCS1v15(), hashes.SHA256())
    approval = {
        "policy": policy.hex(),
        "signature": base64.b64encode(signature).decode(),
        "counter_at_most": build.security_version,
    }
    return predicate | {"key_approval": approval}


def statement(predicate: dict[str, Any]) -> dict[str, Any]:
    subject = [{"name": "fit.itb", "digest": {"sha256": predicate.get("fit_sha256")}}]
    return {
        "_type": STATEMENT_TYPES[0],
        "predicateType": REFERENCE_VALUES_PREDICATE_TYPE,
        "subject": subject,
        "predicate": predicate,
    }


GENUINE = statement(approved(REFERENCE))


def signed_bundle(payload: bytes) -> bytes:
    """A cosign v0.3 bundle's DSSE envelope over ``payload``, signed by PIPELINE over the PAE as cosign signs."""
    sig = PIPELINE.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"sig": base64.b64encode(sig).decode()}],
    }
    return json.dumps({"dsseEnvelope": envelope}).encode()


def loads_or_refuses(raw: bytes) -> Golden | None:
    """What trust.load_trust does with a bundle: verify it, then its key approval; ReferenceValuesError only."""
    try:
        build = verify_bundle(raw, PIPELINE.public_key())
        key_policy.verify_approval(build, AUTHORITY.public_key())
    except ReferenceValuesError:
        return None
    return build


def test_the_genuine_bundle_loads_to_its_reference_values() -> None:
    build = loads_or_refuses(signed_bundle(json.dumps(GENUINE).encode()))
    assert build is not None
    assert (build.hardware_model, build.firmware_version, build.security_version, build.fit_sha256) == (
        REFERENCE["hardware_model"],
        REFERENCE["firmware_version"],
        REFERENCE["security_version"],
        REFERENCE["fit_sha256"],
    )
    assert build.events == tuple((e["pcr"], e["digest"]) for e in REFERENCE["event_log"])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@MANY
@given(
    raw=st.binary(max_size=400)
    | JSON.map(lambda v: json.dumps(v).encode())
    | JSON.map(lambda v: json.dumps({"base64Signature": base64.b64encode(json.dumps(v).encode()).decode()}).encode())
    | JSON.map(lambda v: json.dumps({"dsseEnvelope": v}).encode())
)
@example(raw=b"[]")  # found: a bundle that is JSON but no object raised AttributeError
@example(raw=b"[" * 100_000)  # found: nesting deeper than json's stack raised RecursionError
def test_any_unsigned_bundle_is_refused(raw: bytes) -> None:
    assert loads_or_refuses(raw) is None


@st.composite
def edited(draw: st.DrawFn, genuine: dict[str, Any]) -> dict[str, Any]:
    """The genuine statement with one value somewhere in it replaced by any JSON value, or removed."""
    document = copy.deepcopy(genuine)
    parent: Any = None
    key: Any = None
    node: Any = document
    while isinstance(node, dict | list) and node and (parent is None or draw(st.booleans())):
        parent, key = node, draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        node = node[key]
    if draw(st.booleans()):
        parent[key] = draw(JSON | st.sampled_from([float("inf"), float("nan"), 2**64, -1, 10, "0" * 5000]))
    else:
        del parent[key]
    return document


def with_predicate(**changes: Any) -> dict[str, Any]:
    """The genuine statement with predicate fields changed (a security_version: its counter_at_most too)."""
    predicate = approved(REFERENCE) | changes
    if "security_version" in changes:
        predicate["key_approval"] = predicate["key_approval"] | {"counter_at_most": changes["security_version"]}
    return statement(predicate)


@MANY
@given(document=edited(GENUINE))
@example(document=with_predicate(security_version=float("inf")))  # found: int(Infinity) raised OverflowError
@example(document=with_predicate(security_version=2**64))  # found: the 8-byte counter's to_bytes raised OverflowError
@example(document=with_predicate(event_log=[{"pcr": 10, "digest": "00" * 32}, REFERENCE["event_log"][1]]))  # found:
# an event outside PCRs 0-9 passed the parser, and replay then raised Refused
@example(document=GENUINE | {"subject": [7]})  # found: a subject that is no object raised AttributeError
@example(document=with_predicate(key_approval=GENUINE["predicate"]["key_approval"] | {"counter_at_most": None}))
# found: counter_at_most was read outside the parser's try: int(None) raised TypeError
def test_any_edit_of_a_signed_statement_loads_or_is_refused(document: dict[str, Any]) -> None:
    """Signed after the edit: the properties of what is inside, past the signature check."""
    loads_or_refuses(signed_bundle(json.dumps(document).encode()))


@SOME
@given(
    model=st.text(min_size=1, max_size=30),
    version=st.text(min_size=1, max_size=30),
    security_version=st.integers(1, 2**64 - 1),
    kernel=st.binary(min_size=32, max_size=32),
)
def test_any_genuine_signed_statement_loads_to_its_values(
    model: str, version: str, security_version: int, kernel: bytes
) -> None:
    log = [{"pcr": 8, "digest": kernel.hex()}, {"pcr": 9, "digest": REFERENCE["fit_sha256"]}]
    predicate = REFERENCE | {
        "hardware_model": model,
        "firmware_version": version,
        "security_version": security_version,
        "event_log": log,
    }
    build = loads_or_refuses(signed_bundle(json.dumps(statement(approved(predicate))).encode()))
    assert build is not None
    assert (build.hardware_model, build.firmware_version, build.security_version) == (model, version, security_version)
    assert build.events == ((8, kernel.hex()), (9, REFERENCE["fit_sha256"]))


# --- models.toml in the trust directory: each hardware model's minimum security version -----------------

TOML_VALUES = st.sampled_from(["inf", "-inf", "nan", "1.5", "true", '"3"', "[1]", "{a = 1}", "-1", str(2**63 - 1), "0"])


@SOME
@given(
    models=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True),
        TOML_VALUES | st.integers(0, 2**63 - 1).map(str) | st.text(max_size=10),
        max_size=3,
    ),
    tail=st.text(max_size=30),
)
@example(models={"board-a": "inf"}, tail="")  # found: int(inf) raised OverflowError, a traceback at start
@example(models={"board-a": "1.5"}, tail="")  # found: a minimum of 1.5 was taken as 1
@example(models={"board-a": "true"}, tail="")  # found: a minimum of true was taken as 1
def test_any_models_toml_gives_its_integer_minimums_or_one_trust_error(models: dict[str, str], tail: str) -> None:
    text = "".join(f"[models.{name}]\nmin_security_version = {value}\n" for name, value in models.items()) + tail
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "models.toml"
        path.write_text(text)
        try:
            minimums = model_minimums(path)
        except TrustError as refused:
            assert "\n" not in str(refused)
            return
    written = tomllib.loads(text)["models"] if minimums else {}
    assert all(type(written[name]["min_security_version"]) is int and n >= 0 for name, n in minimums.items())


# --- the EK certificate a device presents (registration step 1) and a client certificate's role --------

MANUFACTURER_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # deterministic signatures
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)


def certificate(subject: str, issuer: str, public_key: Any, *, is_ca: bool) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(0x1234)
        .not_valid_before(ISSUED)
        .not_valid_after(ISSUED + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .sign(MANUFACTURER_KEY, None)
    )


MANUFACTURER_CA = certificate("manufacturer CA", "manufacturer CA", MANUFACTURER_KEY.public_key(), is_ca=True)
EK_KEY = ec.derive_private_key(0xE1, ec.SECP256R1()).public_key()
EK_DER = certificate("EK", "manufacturer CA", EK_KEY, is_ca=False).public_bytes(serialization.Encoding.DER)
VERSION_AT = EK_DER.index(b"\xa0\x03\x02\x01\x02") + 4  # TBSCertificate.version, v3 (= 2)


ENROLLED = {attestation.spki_sha256(EK_KEY): attestation.Enrolment("dev-1", "m", "", b"", b"", (2, 1, 1), False)}


def pem(der: bytes) -> str:
    return "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n"


@MANY
@given(der=st.binary(max_size=300) | mutated(EK_DER))
@example(der=EK_DER[:VERSION_AT] + b"\x05" + EK_DER[VERSION_AT + 1 :])  # found: x509.InvalidVersion, a 500
def test_any_ek_certificate_is_refused_with_a_step_or_accepted(der: bytes) -> None:
    with contextlib.suppress(Refused):
        attestation.verify_ek_certificate(pem(der), [MANUFACTURER_CA], ENROLLED.get, ISSUED + timedelta(days=1))
    try:
        cert = identity.peer_certificate({"extensions": {"tls": {"client_cert_der": der}}})
    except ValueError:
        return
    if cert is None:  # no bytes: no client certificate
        return
    assert identity.role_of(cert, [MANUFACTURER_CA], None) in {identity.OPERATOR, ""}


# --- the verify_* steps over a device's submission (what the API hands them after its body limits) ------

DEVICE_AK = tpm.parse_public(bytes.fromhex(DEVICE_KEY["ak_public"]))
CERTIFY_SIGNATURE = bytes.fromhex(DEVICE_KEY["certify_signature"])
POLICY = tpm.parse_ecc_public(KEY_PUBLIC).auth_policy
TLS_KEY = ec.derive_private_key(0x715, ec.SECP256R1()).public_key()
TLS_PEM = TLS_KEY.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
BUILD = Golden("f" * 64, "m", "1.0.0", 1, ((9, "ab" * 32),), approval=bytes(32))


def quote_signature(d: st.DataObject) -> None:
    quote, signature = d.draw(mutated(QUOTE) | st.just(QUOTE)), d.draw(mutated(SIGNATURE) | st.just(SIGNATURE))
    attestation.verify_quote_signature(tpm.parse_public(AK), quote, signature)


def pcr_digest(d: st.DataObject) -> None:
    event = st.tuples(st.integers(0, 23), st.binary(min_size=32, max_size=32).map(bytes.hex))  # as models.Event
    attestation.verify_pcr_digest(tpm.parse_quote(QUOTE), d.draw(st.lists(event, max_size=64)))


def device_key(d: st.DataObject) -> None:
    key = d.draw(mutated(KEY_PUBLIC) | st.just(KEY_PUBLIC))
    certify = d.draw(mutated(CERTIFY) | st.just(CERTIFY))
    signature = d.draw(mutated(CERTIFY_SIGNATURE) | st.just(CERTIFY_SIGNATURE))
    attestation.verify_device_key(DEVICE_AK, key, certify, signature, POLICY)


def approval_used(d: st.DataObject) -> None:
    attestation.verify_approval_used(BUILD, d.draw(st.text(max_size=64)))


def key_possession(d: st.DataObject) -> None:
    attestation.verify_key_possession(TLS_KEY, bytes(32), d.draw(st.binary(max_size=200)))


def tls_key(d: st.DataObject) -> None:
    edited = st.integers(27, len(TLS_PEM) - 27).map(lambda at: TLS_PEM[:at] + "B" + TLS_PEM[at + 1 :])
    attestation.verify_tls_key(
        TLS_KEY, bytes(32), d.draw(st.text(max_size=300) | edited), d.draw(st.binary(max_size=200))
    )


STEPS: dict[str, Callable[[st.DataObject], None]] = {
    "4 quote signature": quote_signature,
    "6 pcr digest": pcr_digest,
    "9 device key": device_key,
    "10 approval used": approval_used,
    "11 key possession": key_possession,
    "12 tls key": tls_key,
}


def test_the_genuine_submission_passes_its_steps() -> None:
    quote = attestation.verify_quote_signature(tpm.parse_public(AK), QUOTE, SIGNATURE)
    attestation.verify_pcr_digest(quote, [(9, hashlib.sha256(b"abc").hexdigest())])
    assert attestation.verify_device_key(DEVICE_AK, KEY_PUBLIC, CERTIFY, CERTIFY_SIGNATURE, POLICY).name == (
        tpm.parse_certify(CERTIFY).name
    )


@pytest.mark.parametrize("step", STEPS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_edit_of_a_submission_passes_a_step_or_is_refused_with_it(step: str, data: st.DataObject) -> None:
    with contextlib.suppress(Refused):
        STEPS[step](data)
