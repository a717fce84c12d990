"""bench/fresh_machine.py: it reads the README's commands, and it can fail when a fresh machine lacks a file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench import fresh_machine
from tests.support.project import REPO

SCRIPT = REPO / "bench" / "fresh_machine.py"


def test_quickstart_commands_are_the_readme_block_without_comments() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert fresh_machine.quickstart_commands(readme) == ["./bootstrap.sh", "./bootstrap.sh nox -s tests"]


def test_quickstart_parsing_keeps_order_skips_blank_and_comment_lines() -> None:
    readme = (
        "# t\n\n## Quickstart\n\nText `x # y`.\n\n```sh\n# a comment line\n./a.sh --x=1   # first\n\n"
        "PYTHON=python3.11 ./b.sh nox -s c#d  # second, '#' inside a word stays\n```\n\n```sh\nnot this\n```\n"
        "## Next\n"
    )
    assert fresh_machine.quickstart_commands(readme) == ["./a.sh --x=1", "PYTHON=python3.11 ./b.sh nox -s c#d"]


@pytest.mark.parametrize(
    "readme",
    [
        "# no quickstart\n",
        "## Quickstart\n\nno block\n\n## Other\n```sh\nx\n```\n",
        "## Quickstart\n```sh\n# only\n```\n",
    ],
)
def test_quickstart_parsing_fails_closed(readme: str) -> None:
    with pytest.raises(fresh_machine.CheckError):
        fresh_machine.quickstart_commands(readme)


def test_warm_go_cache_is_copy_on_write(tmp_path: Path) -> None:
    """--warm-go-cache mounts the host's Go caches as an overlay lower layer: writes land in scratch only."""
    host = REPO.parent / "host-go"
    lines = fresh_machine.go_cache_mount(tmp_path / "root", host, tmp_path / "scratch")
    mount = next(line for line in lines if line.startswith("mount -t overlay"))
    assert f"lowerdir={host}," in mount and f"upperdir={tmp_path / 'scratch' / 'upper'}" in mount
    assert mount.endswith(str(tmp_path / "root") + fresh_machine.GO_CACHE_IN_ROOT)
    script = fresh_machine.enter_script(
        tmp_path / "root", tmp_path / "clone", fresh_machine.HostGo(Path("/go"), None, "go1.24"), {}, "true", host
    )
    assert f"lowerdir={host},upperdir={tmp_path / 'go-cache' / 'upper'}" in script
    assert "mount -t overlay" not in fresh_machine.enter_script(
        tmp_path / "root", tmp_path / "clone", fresh_machine.HostGo(Path("/go"), None, "go1.24"), {}, "true"
    )


def test_a_disk_too_small_for_a_run_is_refused_before_anything_starts(tmp_path: Path) -> None:
    fresh_machine.ensure_free_space(tmp_path, needed=1)
    with pytest.raises(fresh_machine.CheckError, match=r"GB free under .*; a full run needs"):
        fresh_machine.ensure_free_space(tmp_path, needed=10**18)


def _git(*args: str | Path, cwd: Path) -> str:
    return subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _drop_ssg_debian(lock: Path) -> None:
    """tools.lock with ssg-debian removed from the oscap-chroot apt route's `also` list."""
    text = lock.read_text(encoding="utf-8")
    section = re.search(r"^\[tools\.oscap-chroot\]\n(?:(?!\[).*\n)*", text, re.MULTILINE)
    assert section is not None, "tools.lock has no [tools.oscap-chroot]"
    edited = re.sub(r'"ssg-debian",\s*|,\s*"ssg-debian"|"ssg-debian"', "", section.group(0), count=1)
    lock.write_text(text[: section.start()] + edited + text[section.end() :], encoding="utf-8")
    also = tomllib.loads(lock.read_text(encoding="utf-8"))["tools"]["oscap-chroot"]["apt"]["also"]
    assert "ssg-debian" not in also and also, also


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the fresh-machine check needs root (mmdebstrap, mounts, chroot)")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed")
@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap is not installed")
def test_check_fails_when_the_fresh_machine_lacks_the_scap_content(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    _git("clone", "--quiet", REPO, scratch, cwd=tmp_path)
    _drop_ssg_debian(scratch / "tools.lock")
    _git("-c", "user.name=test", "-c", "user.email=test@invalid", "commit", "--quiet", "-am", "drop ssg", cwd=scratch)
    # Through nox, as the README runs every stage: bootstrap.sh's own venv holds only nox and uv,
    # so `./bootstrap.sh python -m tasks ...` cannot import tasks' dependencies on any machine.
    command = "./bootstrap.sh nox -s compliance"
    proc = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--repo",
            scratch,
            "--command",
            command,
            "--out",
            tmp_path / "out",
            "--timeout",
            "1200",
        ],
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert re.search(rf"^FAIL +[0-9.]+ s +{re.escape(command)}$", proc.stdout, re.MULTILINE), output
    assert re.search(rf"failed \(exit code [1-9][0-9]*\): {re.escape(command)}$", proc.stdout, re.MULTILINE), output
    assert "ssg-debian11-ds.xml" in output, output
    assert "LEFT BEHIND" not in output, output


def test_point_release_root_reads_only_the_suite_itself(tmp_path: Path) -> None:
    """--point-release-root: no -security, no -updates, so its packages are older than the minimums."""
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\n"
    )
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb http://mirror.invalid/debian bookworm main\ndeb http://x.invalid bookworm-updates main\n")
    written = fresh_machine.point_release_sources([deb822, one_line], tmp_path).read_text()
    assert written.count("Suites: bookworm\n") == 2 and "security" not in written and "updates" not in written
    with pytest.raises(fresh_machine.CheckError, match="no source for the bookworm suite"):
        only_security = tmp_path / "security.sources"
        only_security.write_text("Types: deb\nURIs: http://x.invalid\nSuites: bookworm-security\nComponents: main\n")
        fresh_machine.point_release_sources([only_security], tmp_path)
    recipe = fresh_machine.Recipe("amd64", "mmdebstrap 1.3.5", (deb822,), (), point_release=True)
    assert (
        "postgresql-15" in recipe.include
        and recipe.key() != fresh_machine.Recipe("amd64", "mmdebstrap 1.3.5", (deb822,), ()).key()
    )
