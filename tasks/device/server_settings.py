"""The fleet server (app/src/secure_iot_server) as a process: the settings the pipeline gives it and
the one command that runs it, wherever it runs (on 127.0.0.1 for the attest stage, in the fleet
namespace for the network stage).

tasks/ does not import the app: it runs it as ``python -m secure_iot_server`` with ``PYTHONPATH``
set to app/src, so the process has the app's own dependencies and nothing of the pipeline's. The
``SECURE_IOT_*`` variables are spelled here once for tasks/, as the app's ``Settings.to_env()``
spells them; tests/unit/app/test_server_settings.py holds the two together (what this module
writes, the app's ``Settings.from_env()`` reads back as the same settings).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tasks.core import runner

PYTHON = runner.Tool("python3", f"{sys.version_info.major}.{sys.version_info.minor}", Path(sys.executable), "host")
ARGV = ("-m", "secure_iot_server")


@dataclass(frozen=True)
class ServerSettings:
    """What the pipeline sets of the app's Settings: where it listens, its database, its trust
    directory and mTLS material; the security-version floor only when given (else the app's 0)."""

    host: str
    port: int
    db_path: Path
    trust_dir: Path
    tls_cert: Path
    tls_key: Path
    client_ca: Path
    min_security_version: int | None = None
    db_url: str | None = None  # a database URL instead of db_path (it may carry a password: environment only)

    def to_env(self) -> dict[str, str]:
        env = {
            "SECURE_IOT_HOST": self.host,
            "SECURE_IOT_PORT": str(self.port),
            "SECURE_IOT_DB": str(self.db_path),
            "SECURE_IOT_TRUST_DIR": str(self.trust_dir),
        }
        if self.db_url is not None:
            env["SECURE_IOT_DB_URL"] = self.db_url
        if self.min_security_version is not None:
            env["SECURE_IOT_MIN_SECURITY_VERSION"] = str(self.min_security_version)
        env["SECURE_IOT_TLS_CERT"] = str(self.tls_cert)
        env["SECURE_IOT_TLS_KEY"] = str(self.tls_key)
        env["SECURE_IOT_CLIENT_CA"] = str(self.client_ca)
        return env

    def env(self, app_src: Path) -> dict[str, str]:
        """The server process's environment: the app's sources on its path, then its settings."""
        return {"PYTHONPATH": str(app_src), **self.to_env()}
