"""The mTLS repository's ASGI app: only regular files inside the directory, fresh after a re-sign."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tasks.ota import repository_app


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    (repo / "metadata").mkdir(parents=True)
    (repo / "metadata" / "timestamp.json").write_text("v1")
    (tmp_path / "secret").write_text("outside")
    (repo / "metadata" / "link").symlink_to(tmp_path / "secret")
    monkeypatch.setattr(repository_app, "ROOT", repo.resolve())
    return repo


def get(path: str, method: str = "GET") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(repository_app.app({"type": "http", "method": method, "path": path}, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_files_inside_are_served_and_a_replaced_one_is_fresh(root: Path) -> None:
    assert get("/metadata/timestamp.json") == (200, b"v1")
    new = root / "metadata" / ".timestamp.json.tmp"
    new.write_text("v2, re-signed")
    os.replace(new, root / "metadata" / "timestamp.json")  # as the repository writes it
    assert get("/metadata/timestamp.json") == (200, b"v2, re-signed")


@pytest.mark.parametrize("path", ["/../secret", "/metadata/../../secret", "/metadata/link", "/metadata", "/nope.json"])
def test_nothing_outside_no_symlink_out_no_listing(root: Path, path: str) -> None:
    assert get(path)[0] == 404


def test_only_get_and_head(root: Path) -> None:
    assert get("/metadata/timestamp.json", "PUT")[0] == 405
    assert get("/metadata/timestamp.json", "HEAD") == (200, b"")
