"""The server's settings: ``Settings.to_env()`` is what ``Settings.from_env()`` reads back, for any value."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from secure_iot_server.config import Settings

paths = st.builds(Path, st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=20))
words = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=20)


@given(
    db_path=paths,
    db_url=st.none() | words,
    db_migrate=st.booleans(),
    max_body=st.integers(1, 2**31),
    host=words,
    port=st.integers(1, 65535),
    trust_dir=st.none() | paths,
    min_security_version=st.integers(0, 2**31),
    tls=st.none() | st.tuples(paths, paths, paths),
)
def test_to_env_round_trips_through_from_env(
    db_path: Path,
    db_url: str | None,
    db_migrate: bool,
    max_body: int,
    host: str,
    port: int,
    trust_dir: Path | None,
    min_security_version: int,
    tls: tuple[Path, Path, Path] | None,
) -> None:
    cert, key, ca = tls or (None, None, None)
    settings = Settings(
        db_path=db_path,
        db_url=db_url,
        db_migrate=db_migrate,
        max_body=max_body,
        host=host,
        port=port,
        trust_dir=trust_dir,
        min_security_version=min_security_version,
        tls_cert=cert,
        tls_key=key,
        client_ca=ca,
    )
    assert Settings.from_env(settings.to_env()) == settings


def test_the_defaults_round_trip_and_name_only_the_server_variables() -> None:
    env = Settings().to_env()
    assert Settings.from_env(env) == Settings()
    assert all(name.startswith("SECURE_IOT_") for name in env)
    assert "SECURE_IOT_TLS_CERT" not in env  # unset stays unset: plain HTTP


def test_from_env_still_refuses_half_of_mtls() -> None:
    env = Settings(tls_cert=Path("server.pem")).to_env()
    with pytest.raises(ValueError, match="mTLS needs all of"):
        Settings.from_env(env)
