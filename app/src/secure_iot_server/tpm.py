"""TPM 2.0 wire structures the server reads, and the server's half of credential activation.

Only what attestation needs, parsed strictly (TPM 2.0 Library Part 2, big-endian): an AK's
TPM2B_PUBLIC (its name, RSA key and attributes), a quote's TPMS_ATTEST, a TPMT_SIGNATURE, and
TPM2_MakeCredential done in software against the EK public key from the EK *certificate* (Part 1
§24: seed -> OAEP "IDENTITY", KDFa "STORAGE" -> AES-128-CFB, KDFa "INTEGRITY" -> HMAC), so only
the TPM holding that EK can recover the secret, and only for the AK with exactly that name.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

TPM_ALG_RSA = 0x0001
TPM_ALG_SHA256 = 0x000B
TPM_ALG_NULL = 0x0010
TPM_ALG_RSASSA = 0x0014
TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
# TPMA_OBJECT bits an attestation key must carry (Part 2 §8.3): a restricted signing key born in this TPM.
FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN = 1 << 1, 1 << 4, 1 << 5
RESTRICTED, DECRYPT, SIGN = 1 << 16, 1 << 17, 1 << 18
AK_REQUIRED = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN
RSA_KEY_BITS = (2048, 3072, 4096)  # the RSA sizes a TPM makes (TPMI_RSA_KEY_BITS) that are not too weak
CREDENTIAL_FILE_MAGIC = 0xBADCC0DE  # tpm2-tools' credential file: magic, version 1, ID_OBJECT, ENCRYPTED_SECRET


class TpmFormatError(ValueError):
    """A TPM structure is truncated, has trailing bytes or a value this verifier does not accept."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise TpmFormatError(f"truncated: wanted {n} bytes at offset {self.at} of {len(self.data)}")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def sized(self) -> bytes:
        return self.take(self.u16())

    def end(self) -> None:
        if self.at != len(self.data):
            raise TpmFormatError(f"{len(self.data) - self.at} trailing bytes")


@dataclass(frozen=True)
class PublicKey:
    """An RSA key's TPMT_PUBLIC: its TPM name (nameAlg || H(TPMT_PUBLIC)), attributes and key."""

    name: bytes
    attributes: int
    key: rsa.RSAPublicKey

    @property
    def is_attestation_key(self) -> bool:
        return self.attributes & AK_REQUIRED == AK_REQUIRED and not self.attributes & DECRYPT


def parse_public(tpm2b_public: bytes) -> PublicKey:
    """TPM2B_PUBLIC of an RSA signing key with sha256 name algorithm and RSASSA-SHA256 scheme."""
    outer = _Reader(tpm2b_public)
    body = outer.sized()
    outer.end()
    r = _Reader(body)
    if r.u16() != TPM_ALG_RSA:
        raise TpmFormatError("public area: not an RSA key")
    if r.u16() != TPM_ALG_SHA256:
        raise TpmFormatError("public area: name algorithm is not sha256")
    attributes = r.u32()
    r.sized()  # authPolicy
    if r.u16() != TPM_ALG_NULL:  # symmetric: a signing key has none
        raise TpmFormatError("public area: a signing key with a symmetric algorithm")
    scheme = r.u16()
    if scheme != TPM_ALG_RSASSA or r.u16() != TPM_ALG_SHA256:
        raise TpmFormatError("public area: signing scheme is not RSASSA-SHA256")
    bits, exponent = r.u16(), r.u32() or 65537
    modulus = r.sized()
    r.end()
    if bits not in RSA_KEY_BITS or len(modulus) * 8 != bits:
        raise TpmFormatError(f"public area: RSA key of {bits} bits, modulus of {len(modulus)} bytes")
    try:
        key = rsa.RSAPublicNumbers(exponent, int.from_bytes(modulus, "big")).public_key()
    except ValueError as exc:  # e.g. an even or too small exponent, an even modulus
        raise TpmFormatError(f"public area: not an RSA public key ({exc})") from None
    return PublicKey(struct.pack(">H", TPM_ALG_SHA256) + hashlib.sha256(body).digest(), attributes, key)


@dataclass(frozen=True)
class Quote:
    """TPMS_ATTEST of a quote: who signed, the nonce it carries, which PCRs and their digest."""

    signer: bytes
    nonce: bytes
    reset_count: int
    restart_count: int
    pcrs: tuple[int, ...]  # the sha256 bank's selection, ascending
    pcr_digest: bytes


def parse_quote(attest: bytes) -> Quote:
    r = _Reader(attest)
    if r.u32() != TPM_GENERATED_VALUE:
        raise TpmFormatError("attest: magic is not TPM_GENERATED_VALUE (not made by a TPM)")
    if r.u16() != TPM_ST_ATTEST_QUOTE:
        raise TpmFormatError("attest: not a quote")
    signer, nonce = r.sized(), r.sized()
    r.u64()  # clock
    reset_count, restart_count = r.u32(), r.u32()
    r.u8()  # safe
    r.u64()  # firmwareVersion
    pcrs: list[int] = []
    for _ in range(r.u32()):
        bank, bitmap = r.u16(), r.take(r.u8())
        if bank != TPM_ALG_SHA256:
            raise TpmFormatError(f"attest: PCR bank {bank:#06x} selected; only sha256 is accepted")
        pcrs += [8 * i + b for i, byte in enumerate(bitmap) for b in range(8) if byte >> b & 1]
    digest = r.sized()
    r.end()
    return Quote(signer, nonce, reset_count, restart_count, tuple(sorted(pcrs)), digest)


def parse_signature(tpmt_signature: bytes) -> bytes:
    """The RSASSA-SHA256 signature bytes of a TPMT_SIGNATURE."""
    r = _Reader(tpmt_signature)
    if r.u16() != TPM_ALG_RSASSA or r.u16() != TPM_ALG_SHA256:
        raise TpmFormatError("signature: not RSASSA-SHA256")
    sig = r.sized()
    r.end()
    return sig


def kdfa(key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int) -> bytes:
    """KDFa with HMAC-SHA256 in counter mode (Part 1 §11.4.10.2); the label's NUL is part of it."""
    out, counter = b"", 0
    while len(out) * 8 < bits:
        counter += 1
        block = struct.pack(">I", counter) + label + b"\0" + context_u + context_v + struct.pack(">I", bits)
        out += hmac.new(key, block, hashlib.sha256).digest()
    return out[: bits // 8]


def make_credential(ek: rsa.RSAPublicKey, ak_name: bytes, secret: bytes) -> bytes:
    """TPM2_MakeCredential against an RSA EK (AES-128-CFB, sha256), in tpm2-tools' file format."""
    seed = os.urandom(32)
    encrypted_seed = ek.encrypt(
        seed, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\0")
    )
    sym_key = kdfa(seed, b"STORAGE", ak_name, b"", 128)
    encryptor = Cipher(algorithms.AES128(sym_key), CFB(b"\0" * 16)).encryptor()
    enc_identity = encryptor.update(struct.pack(">H", len(secret)) + secret) + encryptor.finalize()
    hmac_key = kdfa(seed, b"INTEGRITY", b"", b"", 256)
    outer = hmac.new(hmac_key, enc_identity + ak_name, hashlib.sha256).digest()
    id_object = struct.pack(">H", len(outer)) + outer + enc_identity
    return (
        struct.pack(">II", CREDENTIAL_FILE_MAGIC, 1)
        + struct.pack(">H", len(id_object))
        + id_object
        + struct.pack(">H", len(encrypted_seed))
        + encrypted_seed
    )


def pcr_composite_digest(values: list[bytes]) -> bytes:
    """What a quote signs over its selection: sha256 of the selected PCR values, in index order."""
    return hashlib.sha256(b"".join(values)).digest()


TPM_ALG_ECC = 0x0023
TPM_ALG_ECDSA = 0x0018
TPM_ECC_NIST_P256 = 0x0003
TPM_ST_ATTEST_CERTIFY = 0x8017
TPM_CC_POLICY_PCR = 0x0000017F
USER_WITH_AUTH, ADMIN_WITH_POLICY = 1 << 6, 1 << 7
# TPMA_OBJECT of the device key: born in this TPM, never leaves it, signs, and is usable only
# through its policy (no userWithAuth: no password can stand in for the PCR policy).
DEVICE_KEY_REQUIRED = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | SIGN


@dataclass(frozen=True)
class DeviceKey:
    """An ECC P-256 signing key's TPMT_PUBLIC: its TPM name, attributes, authPolicy and public key."""

    name: bytes
    attributes: int
    auth_policy: bytes
    key: ec.EllipticCurvePublicKey

    @property
    def policy_bound(self) -> bool:
        """fixedTPM|fixedParent|sensitiveDataOrigin|sign, and neither userWithAuth nor decrypt/restricted."""
        forbidden = USER_WITH_AUTH | DECRYPT | RESTRICTED
        return self.attributes & DEVICE_KEY_REQUIRED == DEVICE_KEY_REQUIRED and not self.attributes & forbidden


def parse_ecc_public(tpm2b_public: bytes) -> DeviceKey:
    """TPM2B_PUBLIC of an ECC NIST P-256 key with sha256 name algorithm and ECDSA-SHA256 scheme."""
    outer = _Reader(tpm2b_public)
    body = outer.sized()
    outer.end()
    r = _Reader(body)
    if r.u16() != TPM_ALG_ECC:
        raise TpmFormatError("public area: not an ECC key")
    if r.u16() != TPM_ALG_SHA256:
        raise TpmFormatError("public area: name algorithm is not sha256")
    attributes = r.u32()
    auth_policy = r.sized()
    if r.u16() != TPM_ALG_NULL:
        raise TpmFormatError("public area: a signing key with a symmetric algorithm")
    if r.u16() != TPM_ALG_ECDSA or r.u16() != TPM_ALG_SHA256:
        raise TpmFormatError("public area: signing scheme is not ECDSA-SHA256")
    if r.u16() != TPM_ECC_NIST_P256:
        raise TpmFormatError("public area: curve is not NIST P-256")
    if r.u16() != TPM_ALG_NULL:
        raise TpmFormatError("public area: a signing key with a KDF")
    x, y = r.sized(), r.sized()
    r.end()
    if len(x) != 32 or len(y) != 32:
        raise TpmFormatError("public area: P-256 point coordinates are not 32 bytes")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError:
        raise TpmFormatError("public area: not a point on P-256") from None
    name = struct.pack(">H", TPM_ALG_SHA256) + hashlib.sha256(body).digest()
    return DeviceKey(name, attributes, auth_policy, key)


@dataclass(frozen=True)
class Certification:
    """TPMS_ATTEST of TPM2_Certify: the signer, and the name of the object the TPM vouches it holds."""

    signer: bytes
    extra_data: bytes
    name: bytes


def parse_certify(attest: bytes) -> Certification:
    r = _Reader(attest)
    if r.u32() != TPM_GENERATED_VALUE:
        raise TpmFormatError("attest: magic is not TPM_GENERATED_VALUE (not made by a TPM)")
    if r.u16() != TPM_ST_ATTEST_CERTIFY:
        raise TpmFormatError("attest: not a certification")
    signer, extra = r.sized(), r.sized()
    r.take(8 + 4 + 4 + 1 + 8)  # clockInfo, firmwareVersion
    name = r.sized()
    r.sized()  # qualifiedName
    r.end()
    return Certification(signer, extra, name)


def pcr_selection(pcrs: tuple[int, ...]) -> bytes:
    """TPML_PCR_SELECTION of one sha256 bank (3-byte bitmap, PCRs 0-23)."""
    bitmap = bytearray(3)
    for index in pcrs:
        bitmap[index // 8] |= 1 << (index % 8)
    return struct.pack(">IHB", 1, TPM_ALG_SHA256, 3) + bytes(bitmap)


def policy_pcr_digest(pcrs: tuple[int, ...], values: dict[int, bytes]) -> bytes:
    """The policy digest of one TPM2_PolicyPCR from a fresh session (Part 3 §23.7):
    H(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(selected PCR values in index order))."""
    pcr_digest = hashlib.sha256(b"".join(values[i] for i in sorted(pcrs))).digest()
    return hashlib.sha256(bytes(32) + struct.pack(">I", TPM_CC_POLICY_PCR) + pcr_selection(pcrs) + pcr_digest).digest()


TPM_CC_POLICY_NV = 0x00000149
TPM_CC_POLICY_AUTHORIZE = 0x0000016A
TPM_EO_UNSIGNED_LE = 0x0009  # PolicyNV: the NV contents <= operandB, unsigned
# TPMA_OBJECT tpm2-tools' `loadexternal -G rsa` gives an external RSA public key (measured with
# tpm2-tools 5.4 on swtpm): userWithAuth|sign|decrypt; scheme and symmetric NULL; exponent explicit.
EXTERNAL_RSA_ATTRIBUTES = USER_WITH_AUTH | SIGN | DECRYPT
# TPMA_NV of the anti-rollback counter as the factory defines it (nt=counter|ownerread|ownerwrite|no_da:
# only the owner hierarchy may read or raise it) once it has been written (TPMA_NV_WRITTEN): its name
# enters PolicyNV (measured: `tpm2 nvreadpublic` says 0x22020012).
NV_COUNTER_ATTRIBUTES = 0x22020012
NV_COUNTER_SIZE = 8


def external_rsa_name(key: rsa.RSAPublicKey) -> bytes:
    """The TPM name of an RSA public key loaded with `tpm2 loadexternal -G rsa`: sha256 of its TPMT_PUBLIC."""
    numbers = key.public_numbers()
    modulus = numbers.n.to_bytes((key.key_size + 7) // 8, "big")
    public = (
        struct.pack(">HHIH", TPM_ALG_RSA, TPM_ALG_SHA256, EXTERNAL_RSA_ATTRIBUTES, 0)
        + struct.pack(">HHHI", TPM_ALG_NULL, TPM_ALG_NULL, key.key_size, numbers.e)
        + struct.pack(">H", len(modulus))
        + modulus
    )
    return struct.pack(">H", TPM_ALG_SHA256) + hashlib.sha256(public).digest()


def nv_name(index: int, attributes: int, size: int) -> bytes:
    """The name of an NV index with no authPolicy: sha256 of its TPMS_NV_PUBLIC (Part 2 §13.5)."""
    public = struct.pack(">IHIHH", index, TPM_ALG_SHA256, attributes, 0, size)
    return struct.pack(">H", TPM_ALG_SHA256) + hashlib.sha256(public).digest()


def policy_nv_digest(previous: bytes, name: bytes, operand: bytes, operation: int, offset: int = 0) -> bytes:
    """TPM2_PolicyNV (Part 3 §23.9): H(previous || CC || H(operandB || offset || operation) || nvIndex name)."""
    args = hashlib.sha256(operand + struct.pack(">HH", offset, operation)).digest()
    return hashlib.sha256(previous + struct.pack(">I", TPM_CC_POLICY_NV) + args + name).digest()


def policy_authorize_digest(authority_name: bytes, policy_ref: bytes = b"") -> bytes:
    """TPM2_PolicyAuthorize (Part 3 §23.16) from a fresh session: H(H(0^32 || CC || keySign name) || policyRef)."""
    inner = hashlib.sha256(bytes(32) + struct.pack(">I", TPM_CC_POLICY_AUTHORIZE) + authority_name).digest()
    return hashlib.sha256(inner + policy_ref).digest()
