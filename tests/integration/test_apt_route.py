"""The apt route's version policy (ADR 0021), with the real apt-get and dpkg.

A Debian archive keeps only the newest build of a package, so tools.lock's version of an apt
tool is a minimum: a newer build is accepted, an older installed build is upgraded, and a build
still below the minimum is refused. This is shown against a local, file:// Debian repository
of a throwaway package (built with dpkg-deb, indexed with dpkg-scanpackages), read through a
private apt configuration (APT_CONFIG): the machine's own sources and lists are not touched;
the probe package is installed into the machine's dpkg database and purged afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.project import pinned, run_tasks

PROBE = "secure-iot-apt-probe"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/etc/debian_version").exists(), reason="the apt route installs as root on Debian"
)


def _purge() -> None:
    subprocess.run(["dpkg", "--purge", PROBE], capture_output=True, check=False)


def build_deb(out: Path, version: str) -> Path:
    """A package whose one binary prints its version, as the pinned tools do."""
    tree = out / f"tree-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr" / "bin").mkdir(parents=True)
    binary = tree / "usr" / "bin" / PROBE
    binary.write_text(f"#!/bin/sh\necho '{PROBE} {version}'\n")
    binary.chmod(0o755)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {PROBE}\nVersion: {version}\nArchitecture: all\nMaintainer: tests <tests@localhost>\n"
        "Description: the apt route's test package\n"
    )
    deb = out / f"{PROBE}_{version}_all.deb"
    subprocess.run([pinned("dpkg-deb"), "--root-owner-group", "--build", tree, deb], check=True, capture_output=True)
    return deb


def publish(repo: Path, debs: list[Path]) -> None:
    """A flat repository (`deb [trusted=yes] file:<repo> ./`) serving exactly ``debs``."""
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    for deb in debs:
        shutil.copy2(deb, repo / deb.name)
    scan = shutil.which("dpkg-scanpackages") or "/usr/bin/dpkg-scanpackages"
    packages = subprocess.run([scan, "--multiversion", "."], cwd=repo, capture_output=True, text=True, check=True)
    (repo / "Packages").write_text(packages.stdout)


@pytest.fixture
def apt_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    pinned("dpkg-source")  # dpkg-dev: dpkg-scanpackages
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "parts"):
        (state / sub).mkdir(parents=True)
    (state / "sources.list").write_text(f"deb [trusted=yes] file:{tmp_path / 'repo'} ./\n")
    config = state / "apt.conf"
    config.write_text(
        f'Dir::Etc::sourcelist "{state / "sources.list"}";\n'
        f'Dir::Etc::sourceparts "{state / "parts"}";\n'
        f'Dir::State::Lists "{state / "lists"}";\n'
        f'Dir::Cache "{state / "cache"}";\n'
    )
    _purge()
    yield {"APT_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    _purge()


def project_pinning(root: Path, minimum: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "tools.lock").write_text(
        "schema = 1\n"
        "[tools.probe]\n"
        f'version = "{minimum}"\n'
        'why = "the apt route under test"\n'
        'version_args = ["--version"]\n'
        f'binary = "{PROBE}"\n'
        f'apt = {{ package = "{PROBE}" }}\n'
    )
    return root


def installed() -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", PROBE], capture_output=True, text=True, check=True
    ).stdout


def test_newer_build_accepted_older_upgraded_below_minimum_refused(tmp_path: Path, apt_env: dict[str, str]) -> None:
    debs = {v: build_deb(tmp_path, v) for v in ("1.0-1", "1.2-1", "1.2-1+deb12u1")}
    project = project_pinning(tmp_path / "project", "1.2")

    # An older build is present (the machine came with it); the archive has the pinned 1.2: upgraded.
    subprocess.run(["dpkg", "-i", debs["1.0-1"]], check=True, capture_output=True)
    publish(tmp_path / "repo", [debs["1.2-1"]])
    done = run_tasks("tools", "--json", "probe", root=project, env=apt_env)
    assert done.returncode == 0, done.output
    assert installed() == "1.2-1"
    shown = json.loads(done.stdout[done.stdout.index("{") :])["probe"]
    assert shown["route"] == "apt (1.2-1)" and shown["version"] == "1.2"

    # The archive moved on (a security build replaced 1.2-1): installed by the same route, accepted.
    _purge()
    publish(tmp_path / "repo", [debs["1.2-1+deb12u1"]])
    done = run_tasks("tools", "--json", "probe", root=project, env=apt_env)
    assert done.returncode == 0, done.output
    assert json.loads(done.stdout[done.stdout.index("{") :])["probe"]["route"] == "apt (1.2-1+deb12u1)"
    evidence = json.loads((project / "out" / "evidence.json").read_text())
    assert evidence["stages"]["tools"]["tools"]["probe"] == "1.2"  # the build that ran, not only the pin

    # A minimum above anything the archive offers: refused in one line that says what to do.
    _purge()
    subprocess.run(["dpkg", "-i", debs["1.0-1"]], check=True, capture_output=True)
    publish(tmp_path / "repo", [debs["1.0-1"]])
    project_pinning(project, "1.5")
    done = run_tasks("tools", "probe", root=project, env=apt_env)
    assert done.returncode != 0
    assert f"Debian package {PROBE} is 1.0-1, below the minimum 1.5 tools.lock accepts" in done.output
    assert "apt-get update" in done.output
    assert installed() == "1.0-1"  # nothing was downgraded or removed on the way
