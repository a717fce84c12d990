"""TPM2_ActivateCredential in software, for tests whose EK is a software key (tests/support/identities.py
`endorsement_key`): what a TPM holding that EK would unwrap from the fleet server's credential.

The server's own MakeCredential is cross-checked against a real TPM (swtpm) in the e2e registration
tests; this lets a unit test get past the credential step without one, so the steps after it (the
registration code and its lockout) can be driven concurrently and fast.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from secure_iot_server import tpm


def activate(ek: rsa.RSAPrivateKey, credential: bytes, ak_name: bytes) -> bytes:
    """The secret inside ``credential`` (tpm2-tools' file format) for the AK named ``ak_name``; raises
    ValueError if the credential was not made for this EK and AK, as the TPM refuses it."""
    _magic, _version, id_size = struct.unpack_from(">IIH", credential)
    id_object = credential[10 : 10 + id_size]
    (seed_size,) = struct.unpack_from(">H", credential, 10 + id_size)
    encrypted_seed = credential[12 + id_size : 12 + id_size + seed_size]
    seed = ek.decrypt(
        encrypted_seed,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\0"),
    )
    (outer_size,) = struct.unpack_from(">H", id_object)
    outer, enc_identity = id_object[2 : 2 + outer_size], id_object[2 + outer_size :]
    hmac_key = tpm.kdfa(seed, b"INTEGRITY", b"", b"", 256)
    if not hmac.compare_digest(hmac.new(hmac_key, enc_identity + ak_name, hashlib.sha256).digest(), outer):
        raise ValueError("the credential's integrity check fails for this AK")
    sym_key = tpm.kdfa(seed, b"STORAGE", ak_name, b"", 128)
    decryptor = Cipher(algorithms.AES128(sym_key), CFB(b"\0" * 16)).decryptor()
    plain = decryptor.update(enc_identity) + decryptor.finalize()
    (size,) = struct.unpack_from(">H", plain)
    return plain[2 : 2 + size]
