"""The printed registration code, and the only form of it the server keeps: a salted scrypt hash.

16 characters from a 32-letter alphabet without look-alikes (80 bits), grouped for the label.
The server compares scrypt(code) in constant time and locks a device out after a few wrong tries.
"""

from __future__ import annotations

import hashlib
import os
import secrets

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
GROUPS, GROUP = 4, 4
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, ~40 ms a try on this machine


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP))
    return "-".join(raw[i : i + GROUP] for i in range(0, len(raw), GROUP))


def normalise(code: str) -> bytes:
    return code.strip().upper().encode()


def hashed(code: str) -> dict[str, object]:
    """The manifest's record of the code: scrypt parameters, salt and hash (hex)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        normalise(code), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32
    )
    return {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex(), "hash": digest.hex()}
