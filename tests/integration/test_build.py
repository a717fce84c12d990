"""Registry lifecycle, reproducible builds and the build's bad-input paths, with the real tools."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.core.processes import alive, free_port
from tests.support.project import REPO, run_tasks


@pytest.fixture
def registry_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        "SECURE_IOT_REGISTRY_PORT": str(free_port()),
        "SECURE_IOT_REGISTRY_DIR": str(tmp_path / "registry"),
        "SECURE_IOT_OUT": str(tmp_path / "out"),
    }
    yield env
    run_tasks("registry", "stop", root=REPO, env=env)


def test_registry_starts_is_reused_and_stops_by_pid(registry_env: dict[str, str]) -> None:
    assert run_tasks("registry", "start", root=REPO, env=registry_env).returncode == 0
    pid_file = Path(registry_env["SECURE_IOT_REGISTRY_DIR"]) / "registry.pid"
    pid = pid_file.read_text().strip()
    assert alive(int(pid))
    again = run_tasks("registry", "start", root=REPO, env=registry_env)
    assert again.returncode == 0 and pid_file.read_text().strip() == pid  # reused, not restarted
    status = run_tasks("registry", "status", root=REPO, env=registry_env)
    assert status.returncode == 0 and f"up (pid {pid})" in status.output
    stopped = run_tasks("registry", "stop", root=REPO, env=registry_env)
    assert stopped.returncode == 0 and "stopped" in stopped.output
    assert not alive(int(pid)) and not pid_file.exists()
    assert run_tasks("registry", "status", root=REPO, env=registry_env).returncode == 1


def test_port_taken_by_something_else_is_one_clear_line(registry_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(registry_env["SECURE_IOT_REGISTRY_PORT"])))
        squatter.listen()
        result = run_tasks("registry", "start", root=REPO, env=registry_env)
    assert result.returncode == 2
    assert "is in use by another process" in result.stderr and "Traceback" not in result.output


def test_base_by_tag_is_refused(registry_env: dict[str, str]) -> None:
    result = run_tasks("build", "--base", "docker.io/library/python:3.11-slim", root=REPO, env=registry_env)
    assert result.returncode == 2
    assert "must be given by digest" in result.stderr


@pytest.mark.slow
def test_containerfile_error_fails_closed(project: Path, registry_env: dict[str, str]) -> None:
    shutil.copytree(REPO / "app", project / "app", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    containerfile = project / "app" / "Containerfile"
    containerfile.write_text(containerfile.read_text().replace("COPY src ", "COPY no-such-dir "))
    result = run_tasks("build", root=project, env={**registry_env, "SOURCE_DATE_EPOCH": "1764000000"})
    assert result.returncode == 2
    assert "buildah exited" in result.stderr
    record = json.loads((Path(registry_env["SECURE_IOT_OUT"]) / "evidence.json").read_text())["stages"]["build"]
    assert record["verdict"] == "error"
    assert not [o for o in record["outputs"] if o["kind"] == "oci"]


@pytest.mark.slow
def test_two_clean_builds_give_the_same_digest(tmp_path: Path, registry_env: dict[str, str]) -> None:
    """Same commit: two cold builds (fresh base rootfs, fresh storage), then a warm rebuild on
    the second one's storage — local state must not leak into the digest."""
    digests = []
    runs: tuple[tuple[str, str, list[str]], ...] = (
        ("one", "one", ["--rebuild-base"]),
        ("two", "two", ["--rebuild-base"]),
        ("warm", "two", []),
    )
    for attempt, storage, flags in runs:
        env = {
            **registry_env,
            "SECURE_IOT_CONTAINERS_DIR": str(tmp_path / storage / "containers"),
            "SECURE_IOT_OUT": str(tmp_path / attempt / "out"),
        }
        result = run_tasks("build", *flags, root=REPO, env=env, timeout=1800)
        assert result.returncode == 0, result.output[-2000:]
        details = json.loads((tmp_path / attempt / "out" / "evidence.json").read_text())["stages"]["build"]["details"]
        digests.append((details["digest"], details["base_image"]))
    assert digests[0] == digests[1] == digests[2]


def test_push_refused_is_one_clear_line(registry_env: dict[str, str]) -> None:
    """A registry that does not answer: nothing is recorded as built."""
    closed = {**registry_env, "SECURE_IOT_REGISTRY": f"127.0.0.1:{free_port()}/nowhere"}
    result = run_tasks("build", root=REPO, env=closed, timeout=900)
    assert result.returncode == 2
    assert "buildah exited" in result.stderr and "Traceback" not in result.output
    record = json.loads((Path(registry_env["SECURE_IOT_OUT"]) / "evidence.json").read_text())["stages"]["build"]
    assert record["verdict"] == "error" and not [o for o in record["outputs"] if o["kind"] == "oci"]


def test_sbom_of_an_image_that_is_not_there_fails_closed(registry_env: dict[str, str]) -> None:
    from tasks.core.evidence import EvidenceStore

    out = Path(registry_env["SECURE_IOT_OUT"])
    missing = f"127.0.0.1:{registry_env['SECURE_IOT_REGISTRY_PORT']}/secure-iot-server@sha256:{'0' * 64}"
    with EvidenceStore(out / "evidence.json").open_stage("build", REPO) as rec:
        rec.add_oci(missing, f"sha256:{'0' * 64}", "application/vnd.oci.image.manifest.v1+json")
        rec.verdict = "pass"
    result = run_tasks("sbom", root=REPO, env=registry_env)
    assert result.returncode == 2
    assert "syft exited" in result.stderr and "Traceback" not in result.output
    assert json.loads((out / "evidence.json").read_text())["stages"]["sbom"]["verdict"] == "error"


def test_sbom_without_a_build_says_what_to_run(registry_env: dict[str, str]) -> None:
    result = run_tasks("sbom", root=REPO, env=registry_env)
    assert result.returncode == 2
    assert "run `nox -s build` first" in result.stderr


def test_only_the_loopback_host_is_local() -> None:
    from tasks.container.oci_registry import is_local

    assert is_local("127.0.0.1:5000/secure-iot-server") and is_local("localhost/x")
    for ref in ("localhost.evil.example/x", "127.0.0.1.nip.io/x", "localhostile.example/x", "ghcr.io/a/b"):
        assert not is_local(ref), ref


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"sources.list": "deb http://deb.example/debian bookworm main\n"}, ["sources.list"]),
        ({"sources.list.d/debian.sources": "Types: deb\nSuites: bookworm\n"}, ["sources.list.d/debian.sources"]),
        (
            {
                "sources.list": "# only a comment\n",
                "sources.list.d/a.list": "deb http://deb.example/debian bookworm main\n",
                "sources.list.d/b.sources": "Types: deb\n",
                "sources.list.d/c.list.disabled": "deb http://deb.example/x bookworm main\n",
            },
            ["sources.list.d/a.list", "sources.list.d/b.sources"],
        ),
    ],
)
def test_apt_sources_are_read_the_way_apt_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], expected: list[str]
) -> None:
    from tasks.toolchain.archive import apt_sources

    monkeypatch.delenv("SECURE_IOT_APT_SOURCES", raising=False)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert apt_sources(tmp_path) == [tmp_path / e for e in expected]


def test_no_apt_sources_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.core.errors import InputError
    from tasks.toolchain.archive import apt_sources

    monkeypatch.delenv("SECURE_IOT_APT_SOURCES", raising=False)
    with pytest.raises(InputError, match="no package sources"):
        apt_sources(tmp_path)
    monkeypatch.setenv("SECURE_IOT_APT_SOURCES", str(tmp_path / "missing.sources"))
    with pytest.raises(InputError, match="SECURE_IOT_APT_SOURCES: no such file"):
        apt_sources(tmp_path)
