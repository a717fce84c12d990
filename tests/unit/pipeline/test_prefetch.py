"""The pipeline's background builds (tasks/toolchain/prefetch.py): what it names, that it installs
through the tools stage, and that it is stopped by PID when the pipeline ends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.catalogue import BUILT_FROM_SOURCE, CATALOGUE
from tasks.toolchain import load, prefetch
from tasks.toolchain.lock import current_platform
from tests.support.project import REPO

if TYPE_CHECKING:
    import pytest

HELLO = b"#!/bin/sh\necho 'hello 1.2.3'\n"


def test_every_prefetched_tool_is_a_pinned_go_build_of_a_real_stage() -> None:
    pins = load(REPO / "tools.lock")
    for stage, tools in BUILT_FROM_SOURCE.items():
        assert stage in CATALOGUE, stage
        for tool in tools:
            assert tool in pins and pins[tool].go is not None, (stage, tool)


def project_with_hello(tmp_path: Path) -> Path:
    release = tmp_path / "release" / "hello"
    release.parent.mkdir()
    release.write_bytes(HELLO)
    root = tmp_path / "project"
    root.mkdir()
    (root / "tools.lock").write_text(
        'schema = 1\n[tools.hello]\nversion = "1.2.3"\nwhy = "a test tool"\nversion_args = ["--version"]\n'
        f'[tools.hello.download."{current_platform()}"]\nurl = "{release.as_uri()}"\n'
        f'sha256 = "{hashlib.sha256(HELLO).hexdigest()}"\n'
    )
    return root


def test_background_installs_through_the_tools_stage_then_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = project_with_hello(tmp_path)
    with prefetch.background(root, root / "out", ["hello", "not-pinned"]) as child:
        assert child is not None
        assert child.wait(timeout=120) == 0, (root / "out" / "tools" / "prefetch.log").read_text()
    assert prefetch.missing(root, ["hello"]) == []
    record = json.loads((root / "out" / "evidence.json").read_text())["stages"]["tools"]
    assert record["verdict"] == "pass" and record["details"]["tools"]["hello"]["route"] == "download"
    with prefetch.background(root, root / "out", ["hello"]) as again:
        assert again is None  # cached: nothing is started


def test_a_pipeline_that_ends_first_stops_the_background_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = project_with_hello(tmp_path)
    with prefetch.background(root, root / "out", ["hello"]) as child:
        assert child is not None
    assert child.poll() is not None  # stopped (or done) and reaped: no process outlives the pipeline
