"""The OTA keys under .keys/ota/ (0600, made if absent, never overwritten).

- TUF role keys (ed25519, PKCS#8 PEM): ``tuf/<name>.pem``. root-1..3 (threshold 2) and targets
  and model-<M> are offline keys (an HSM or an air-gapped laptop in production); snapshot and
  timestamp are the online keys the repository server holds.
- The update-signing PKI for RAUC (ECDSA P-256): ``rauc/ca.{key,pem}`` (offline in production)
  and ``rauc/signer.{key,pem}`` (the release pipeline's signer, codeSigning EKU). Its own CA,
  apart from the cosign key and the firmware FIT key.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from tasks.core import runner
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

KEY_DIR = ".keys/ota"
RAUC_CA_SUBJECT = "/CN=secure-iot update-signing CA"
RAUC_SIGNER_SUBJECT = "/CN=secure-iot update signer"
SIGNER_EXTENSIONS = (
    "[signer]\n"
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=critical,codeSigning\n"
    "subjectKeyIdentifier=hash\n"
    "authorityKeyIdentifier=keyid\n"
)


def _check_private(path: Path) -> None:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise SigningError(f"{path} is readable by group or others; chmod 600 it (it is never rewritten)")


def _install_new(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path`` (0600) only if no file is there: an existing key is never replaced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".new-") as tmp:
        fresh = Path(tmp) / path.name
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(fresh, path)
        except FileExistsError as exc:
            raise SigningError(f"{path} appeared while a new key was made; the existing one is kept") from exc


class TufKeys:
    """TUF role keys by name, made on first use: ``signer(name)`` and ``public(name)``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._signers: dict[str, CryptoSigner] = {}

    def path(self, name: str) -> Path:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise SigningError(f"{name!r}: a TUF key name is letters, digits, '-' and '_'")
        return self.directory / f"{name}.pem"

    def signer(self, name: str) -> CryptoSigner:
        if name not in self._signers:
            path = self.path(name)
            if not path.exists():
                pem = Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                _install_new(path, pem)
            _check_private(path)
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            public = SSlibKey.from_crypto(private.public_key())
            self._signers[name] = CryptoSigner(private, public)
        return self._signers[name]

    def public(self, name: str) -> Key:
        return self.signer(name).public_key


@dataclass(frozen=True)
class RaucPki:
    """The update-signing CA and its signer: the paths rauc reads."""

    ca_key: Path
    ca_cert: Path
    signer_key: Path
    signer_cert: Path


def rauc_pki(
    openssl: Tool, rec: StageRecord, directory: Path, *, ca_days: int = 3650, signer_days: int = 730
) -> RaucPki:
    """The CA and signer in ``directory``: made if absent, kept as they are if present."""
    pki = RaucPki(directory / "ca.key", directory / "ca.pem", directory / "signer.key", directory / "signer.pem")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for key in (pki.ca_key, pki.signer_key):
        if not key.exists():
            with tempfile.TemporaryDirectory(dir=directory, prefix=".new-") as tmp:
                fresh = Path(tmp) / key.name
                runner.run(
                    rec, openssl, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", fresh]
                )
                _install_new(key, fresh.read_bytes())
        _check_private(key)
    if not pki.ca_cert.exists():
        with tempfile.TemporaryDirectory(dir=directory, prefix=".new-") as tmp:
            fresh = Path(tmp) / "ca.pem"
            runner.run(
                rec,
                openssl,
                [
                    "req",
                    "-batch",
                    "-new",
                    "-x509",
                    "-key",
                    pki.ca_key,
                    "-out",
                    fresh,
                    "-days",
                    str(ca_days),
                    "-subj",
                    RAUC_CA_SUBJECT,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            )
            os.replace(fresh, pki.ca_cert)
    if not pki.signer_cert.exists():
        with tempfile.TemporaryDirectory(dir=directory, prefix=".new-") as tmp:
            work = Path(tmp)
            (work / "ext.cnf").write_text(SIGNER_EXTENSIONS)
            runner.run(
                rec,
                openssl,
                [
                    "req",
                    "-batch",
                    "-new",
                    "-key",
                    pki.signer_key,
                    "-subj",
                    RAUC_SIGNER_SUBJECT,
                    "-out",
                    work / "signer.csr",
                ],
            )
            runner.run(
                rec,
                openssl,
                [
                    "x509",
                    "-req",
                    "-in",
                    work / "signer.csr",
                    "-CA",
                    pki.ca_cert,
                    "-CAkey",
                    pki.ca_key,
                    "-set_serial",
                    str(int.from_bytes(os.urandom(8), "big")),
                    "-days",
                    str(signer_days),
                    "-extfile",
                    work / "ext.cnf",
                    "-extensions",
                    "signer",
                    "-out",
                    work / "signer.pem",
                ],
            )
            os.replace(work / "signer.pem", pki.signer_cert)
    return pki
