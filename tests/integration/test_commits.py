"""Signed-commit gate with a throwaway git repo and real ssh-keygen keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.project import pinned, run_tasks


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def keypair(tmp: Path, name: str) -> Path:
    key = tmp / name
    subprocess.run([pinned("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key], check=True)
    return key


def commit(repo: Path, message: str, key: Path | None) -> str:
    (repo / "file.txt").write_text(message)
    git(repo, "add", "file.txt")
    program = f"gpg.ssh.program={pinned('ssh-keygen')}"
    sign = (
        ["-c", "gpg.format=ssh", "-c", program, "-c", f"user.signingkey={key}", "commit", "-S"] if key else ["commit"]
    )
    git(repo, *sign, "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def signed_repo(tmp_path: Path, project: Path) -> tuple[Path, Path, dict[str, Path]]:
    keys = {name: keypair(tmp_path, name) for name in ("maintainer", "stranger")}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "maintainer@example.org")
    git(repo, "config", "user.name", "Maintainer")
    commit(repo, "root", keys["maintainer"])
    signers = project / ".github" / "allowed_signers"
    signers.parent.mkdir()
    pub = (tmp_path / "maintainer.pub").read_text().split()
    signers.write_text(f"maintainer@example.org {pub[0]} {pub[1]}\n")
    return repo, signers, keys


def test_all_signed_passes(project: Path, signed_repo: tuple[Path, Path, dict[str, Path]]) -> None:
    repo, _, keys = signed_repo
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, "signed change", keys["maintainer"])
    result = run_tasks("commits", "--repo", str(repo), root=project)
    assert result.returncode == 0, result.output
    assert "1 commit(s)" in result.output


def test_unsigned_and_unknown_signer_fail(project: Path, signed_repo: tuple[Path, Path, dict[str, Path]]) -> None:
    repo, _, keys = signed_repo
    base = git(repo, "rev-parse", "HEAD")
    good = commit(repo, "good", keys["maintainer"])
    unsigned = commit(repo, "unsigned", None)
    stranger = commit(repo, "stranger", keys["stranger"])
    result = run_tasks("commits", f"{base}..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 1, result.output
    assert f"{unsigned[:12]} unsigned" in result.output
    assert f"{stranger[:12]} signed, but by a key not in the allowed-signers file" in result.output
    assert f"✗ {good[:12]}" not in result.output
    failing = json.loads((project / "out" / "evidence.json").read_text())["stages"]["commits"]["details"]["failing"]
    assert failing == [stranger, unsigned]


def test_missing_allowed_signers_is_one_line(project: Path, signed_repo: tuple[Path, Path, dict[str, Path]]) -> None:
    repo, signers, _ = signed_repo
    signers.unlink()
    result = run_tasks("commits", "HEAD~0..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 2
    assert "allowed-signers file not found" in result.output


def test_bad_range_is_one_line(project: Path, signed_repo: tuple[Path, Path, dict[str, Path]]) -> None:
    repo, _, _ = signed_repo
    result = run_tasks("commits", "nope..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 2
    assert "is the range right?" in result.output


def test_an_empty_range_is_not_a_pass(project: Path, signed_repo: tuple[Path, Path, dict[str, Path]]) -> None:
    repo, _, _ = signed_repo
    result = run_tasks("commits", "HEAD..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 2
    assert "no commits in HEAD..HEAD" in result.output
