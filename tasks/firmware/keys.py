"""The firmware signing key: RSA-3072 in .keys/firmware/ (0600), separate from cosign's, never overwritten.

mkimage reads ``<name>.key`` to sign and ``<name>.crt`` for the public key it writes into the
control DTB. RSA, not ECDSA: with U-Boot 2023.01 `mkimage -r` does not mark an ECDSA key
required, and Debian's U-Boot verifies RSA only. A key that exists is kept as it is (after a
mode check); a missing one is made. In production the private key lives in an HSM and mkimage
signs through PKCS#11 (`-N pkcs11`, README "Firmware and secure boot").
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.console import console
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord
from tasks.firmware.measurements import KEY_NAME

KEY_DIR = ".keys/firmware"
KEY_BITS = 3072
SUBJECT = "/CN=secure-iot firmware signing"


def rsa_private_key(ctx: Context, rec: StageRecord, key: Path, bits: int, what: str) -> Path:
    """An RSA private key at ``key``, made with openssl if absent (0600, linked in: never overwritten);
    an existing one is kept as it is, after a mode check."""
    if key.exists():
        if stat.S_IMODE(key.stat().st_mode) & 0o077:
            raise SigningError(f"{key} is readable by group or others; chmod 600 it (it is never rewritten)")
        return key
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=key.parent, prefix=".new-") as tmp:
        fresh = Path(tmp) / key.name
        runner.run(
            rec,
            ctx.tool("openssl"),
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", fresh],
        )
        os.chmod(fresh, 0o600)
        try:
            os.link(fresh, key)  # fails if a key appeared meanwhile: never overwrite one
        except FileExistsError as exc:
            raise SigningError(f"{key} appeared while a new key was made; the existing one is kept") from exc
    console.print(f"  {what}: made {key} (RSA-{bits}, 0600)")
    return key


def key_dir(ctx: Context) -> Path:
    return ctx.root / KEY_DIR


def signing_key(ctx: Context, rec: StageRecord, keydir: Path, *, subject: str = SUBJECT) -> Path:
    """``keydir/<name>.key`` and ``.crt``: made if absent (the key 0600), refused if readable by others."""
    keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key, crt = keydir / f"{KEY_NAME}.key", keydir / f"{KEY_NAME}.crt"
    openssl = ctx.tool("openssl")
    rsa_private_key(ctx, rec, key, KEY_BITS, "firmware key")
    if not crt.exists():
        with tempfile.TemporaryDirectory(dir=keydir, prefix=".new-") as tmp:
            fresh = Path(tmp) / crt.name
            args: list[str | Path] = [
                "req",
                "-batch",
                "-new",
                "-x509",
                "-key",
                key,
                "-out",
                fresh,
                "-days",
                "3650",
                "-subj",
                subject,
            ]
            runner.run(rec, openssl, args)
            os.replace(fresh, crt)
    return key
