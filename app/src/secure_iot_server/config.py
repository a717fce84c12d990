"""Settings read from the environment (SECURE_IOT_*), and spelled back into one for a launcher."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY = 16 * 1024


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path("devices.db")  # the SQLite file, unless db_url is given
    db_url: str | None = None  # e.g. postgresql+psycopg://user:password@host:5432/fleet (database.py)
    db_migrate: bool = True  # at start, migrate the schema to head; off: only check it is there
    max_body: int = DEFAULT_MAX_BODY
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    trust_dir: Path | None = None  # attestation trust (trust.py); without it registration answers 503
    min_security_version: int = 0
    tls_cert: Path | None = None  # server certificate; with tls_key and client_ca the server speaks mTLS
    tls_key: Path | None = None
    client_ca: Path | None = None  # PEM bundle: the operator CA(s) and the fleet CA

    @property
    def database(self) -> Path | str:
        """What the stores open: the database URL when set, else the SQLite file."""
        return self.db_url or self.db_path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        max_body = int(env.get("SECURE_IOT_MAX_BODY", DEFAULT_MAX_BODY))
        port = int(env.get("SECURE_IOT_PORT", DEFAULT_PORT))
        if max_body <= 0:
            raise ValueError("SECURE_IOT_MAX_BODY must be a positive number of bytes")
        if not 0 < port < 65536:
            raise ValueError("SECURE_IOT_PORT must be between 1 and 65535")
        names = {
            "tls_cert": "SECURE_IOT_TLS_CERT",
            "tls_key": "SECURE_IOT_TLS_KEY",
            "client_ca": "SECURE_IOT_CLIENT_CA",
        }
        tls = {field: Path(env[var]) for field, var in names.items() if env.get(var)}
        if tls and len(tls) != len(names):
            raise ValueError("mTLS needs all of " + ", ".join(names.values()))
        migrate = env.get("SECURE_IOT_DB_MIGRATE", "1").strip().lower()
        if migrate not in {"1", "true", "yes", "0", "false", "no"}:
            raise ValueError("SECURE_IOT_DB_MIGRATE must be 1/true/yes or 0/false/no")
        return cls(
            db_path=Path(env.get("SECURE_IOT_DB", "devices.db")),
            db_url=env.get("SECURE_IOT_DB_URL") or None,
            db_migrate=migrate in {"1", "true", "yes"},
            max_body=max_body,
            host=env.get("SECURE_IOT_HOST", DEFAULT_HOST),
            port=port,
            trust_dir=Path(env["SECURE_IOT_TRUST_DIR"]) if env.get("SECURE_IOT_TRUST_DIR") else None,
            min_security_version=int(env.get("SECURE_IOT_MIN_SECURITY_VERSION", "0")),
            **tls,
        )

    def to_env(self) -> dict[str, str]:
        """The environment ``from_env`` reads back into these very settings: what a launcher of the
        server (tests, bench) passes, built from a Settings value instead of spelled by hand."""
        env = {
            "SECURE_IOT_DB": str(self.db_path),
            "SECURE_IOT_DB_MIGRATE": "1" if self.db_migrate else "0",
            "SECURE_IOT_MAX_BODY": str(self.max_body),
            "SECURE_IOT_HOST": self.host,
            "SECURE_IOT_PORT": str(self.port),
            "SECURE_IOT_MIN_SECURITY_VERSION": str(self.min_security_version),
        }
        optional = {
            "SECURE_IOT_DB_URL": self.db_url,
            "SECURE_IOT_TRUST_DIR": self.trust_dir,
            "SECURE_IOT_TLS_CERT": self.tls_cert,
            "SECURE_IOT_TLS_KEY": self.tls_key,
            "SECURE_IOT_CLIENT_CA": self.client_ca,
        }
        return env | {var: str(value) for var, value in optional.items() if value is not None}
