"""tasks/ spells the fleet server's environment once (tasks/device/server_settings.py) without importing
the app: what it writes, the app's ``Settings.from_env()`` reads back as the settings it meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secure_iot_server.config import Settings

from tasks.device.server_settings import ServerSettings

# What the pipeline sets, the same for both sides (the app's Settings has these fields too).
SET: dict[str, Any] = {
    "host": "10.66.1.10",
    "port": 8443,
    "db_path": Path("/state/fleet.db"),
    "trust_dir": Path("/state/trust"),
    "tls_cert": Path("/state/server.pem"),
    "tls_key": Path("/state/server.key"),
    "client_ca": Path("/state/client-ca.pem"),
}


def _server(min_security_version: int | None) -> ServerSettings:
    return ServerSettings(**SET, min_security_version=min_security_version)


def _app(min_security_version: int) -> Settings:
    return Settings(**SET, min_security_version=min_security_version)


def test_what_tasks_writes_the_app_reads_back() -> None:
    assert Settings.from_env(_server(3).to_env()) == _app(3)
    assert Settings.from_env(_server(None).to_env()) == _app(0)  # unset: the app's own floor


def test_tasks_spells_each_variable_as_the_app_does() -> None:
    ours = _server(3).to_env()
    assert ours.items() <= _app(3).to_env().items()


def test_the_process_gets_the_app_on_its_path() -> None:
    env = _server(None).env(Path("/repo/app/src"))
    assert env["PYTHONPATH"] == "/repo/app/src"
    assert "SECURE_IOT_MIN_SECURITY_VERSION" not in env
