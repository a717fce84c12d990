"""Signed-commit gates (`nox -s commits`, and `nox -s fleet`'s "fleet change signed") with throwaway git
repositories and real ssh-keygen keys (and a real GnuPG key for the format test).

Each commit is judged by the trust anchors of its first parent (ADR 0024): the parent's
security-policy.yaml names the allowed-signers file, read from the parent too, never from the work tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.context import Context
from tasks.core.evidence import StageRecord
from tasks.source.commits import verify_signature
from tests.support.project import REPO, pinned, run_tasks

SIGNERS = ".github/allowed_signers"
GATES = ("commits", "fleet")


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env)
    return done.stdout.strip()


def keypair(tmp: Path, name: str) -> Path:
    key = tmp / name
    subprocess.run([pinned("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key], check=True)
    return key


def signer_line(key: Path, email: str) -> str:
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    return f"{email} {kind} {blob}\n"


def commit(repo: Path, message: str, key: Path | None, files: dict[str, str] | None = None) -> str:
    """Write ``files`` (default: file.txt = message), stage them, commit signed by ``key`` (None: unsigned)."""
    for name, text in (files or {"file.txt": message}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
        git(repo, "add", name)
    program = f"gpg.ssh.program={pinned('ssh-keygen')}"
    sign = (
        ["-c", "gpg.format=ssh", "-c", program, "-c", f"user.signingkey={key}", "commit", "-S"] if key else ["commit"]
    )
    git(repo, *sign, "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def anchored_repo(repo: Path, maintainer: Path, extra: dict[str, str] | None = None) -> str:
    """A repository whose root commit, signed by the maintainer, holds the policy and names the maintainer."""
    repo.mkdir(exist_ok=True)
    git(repo, "init", "-q")
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    git(repo, "config", "user.email", "maintainer@example.org")
    git(repo, "config", "user.name", "Maintainer")
    files = {
        "security-policy.yaml": (REPO / "security-policy.yaml").read_text(),
        SIGNERS: signer_line(maintainer, "maintainer@example.org"),
        **(extra or {}),
    }
    return commit(repo, "root: the policy and its signers", maintainer, files)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "keys").mkdir()
    return {name: keypair(tmp_path / "keys", name) for name in ("maintainer", "stranger", "newcomer")}


@pytest.fixture
def signed_repo(tmp_path: Path, project: Path, keys: dict[str, Path]) -> tuple[Path, dict[str, Path]]:
    """A repository apart from the project (`--repo`); the project's work tree holds no allowed-signers file."""
    repo = tmp_path / "repo"
    anchored_repo(repo, keys["maintainer"])
    return repo, keys


@pytest.fixture
def branch(project: Path, keys: dict[str, Path]) -> Path:
    """The project itself as the repository under test, on a branch off a signed main that holds fleet/."""
    fleet = {f"fleet/{p.name}": p.read_text() for p in (REPO / "fleet").iterdir() if p.is_file()}
    anchored_repo(project, keys["maintainer"], fleet)
    git(project, "checkout", "-q", "-b", "feature")
    return project


def fleet_change(repo: Path, note: str) -> dict[str, str]:
    """A harmless change to fleet/desired.toml (a comment): the commit that last changed fleet/."""
    return {"fleet/desired.toml": (REPO / "fleet" / "desired.toml").read_text() + f"# {note}\n"}


def run_gate(gate: str, root: Path, env: dict[str, str] | None = None, *args: str) -> tuple[int, str]:
    result = run_tasks(gate, *args, root=root, env=env)
    return result.returncode, result.output


def assert_refused(gate: str, code: int, output: str, line: str) -> None:
    assert code == 1, output[-3000:]
    assert line in output, output[-3000:]
    if gate == "fleet":
        assert "fleet reconcile refused" in output


def assert_passed(gate: str, code: int, output: str) -> None:
    if gate == "commits":
        assert code == 0, output[-3000:]
    else:  # past the signature check, the next input the fleet stage reads is the OTA config
        assert code == 2 and "not a valid OTA repository config" in output, output[-3000:]
        assert "fleet reconcile refused" not in output


def details(root: Path, stage: str) -> dict[str, object]:
    stages = json.loads((root / "out" / "evidence.json").read_text())["stages"]
    found: dict[str, object] = stages[stage]["details"]
    return found


def test_all_signed_passes(signed_repo: tuple[Path, dict[str, Path]], project: Path) -> None:
    repo, keys = signed_repo
    git(repo, "checkout", "-q", "-b", "feature")
    change = commit(repo, "signed change", keys["maintainer"])
    result = run_tasks("commits", "--repo", str(repo), root=project)
    assert result.returncode == 0, result.output
    assert "1 commit(s)" in result.output
    root = git(repo, "rev-parse", "main")
    assert details(project, "commits")["anchors"] == {change: f"parent {root}"}


def test_unsigned_and_unknown_signer_fail(signed_repo: tuple[Path, dict[str, Path]], project: Path) -> None:
    repo, keys = signed_repo
    base = git(repo, "rev-parse", "HEAD")
    good = commit(repo, "good", keys["maintainer"])
    unsigned = commit(repo, "unsigned", None)
    stranger = commit(repo, "stranger", keys["stranger"])
    result = run_tasks("commits", f"{base}..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 1, result.output
    assert f"{unsigned[:12]} unsigned" in result.output
    assert f"{stranger[:12]} signed, but by a key not in the allowed-signers file" in result.output
    assert f"✗ {good[:12]}" not in result.output
    assert details(project, "commits")["failing"] == [stranger, unsigned]


def test_missing_pinned_allowed_signers_is_one_line(
    signed_repo: tuple[Path, dict[str, Path]], project: Path, tmp_path: Path
) -> None:
    repo, _ = signed_repo
    missing = tmp_path / "nowhere" / "allowed_signers"
    result = run_tasks("commits", "HEAD", "--repo", str(repo), "--allowed-signers", str(missing), root=project)
    assert result.returncode == 2
    assert "allowed-signers file not found" in result.output


def test_a_parent_without_the_signers_file_refuses_its_child(
    signed_repo: tuple[Path, dict[str, Path]], project: Path
) -> None:
    repo, keys = signed_repo
    git(repo, "rm", "-q", SIGNERS)
    gone = commit(repo, "drop the signers file", keys["maintainer"])
    after = commit(repo, "signed, but nothing to trust it by", keys["maintainer"])
    result = run_tasks("commits", "main~2..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 1, result.output
    assert f"{after[:12]} no trust anchor: parent {gone[:12]} has no {SIGNERS}" in result.output


def test_bad_range_is_one_line(signed_repo: tuple[Path, dict[str, Path]], project: Path) -> None:
    repo, _ = signed_repo
    result = run_tasks("commits", "nope..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 2
    assert "is the range right?" in result.output


def test_an_empty_range_is_not_a_pass(signed_repo: tuple[Path, dict[str, Path]], project: Path) -> None:
    repo, _ = signed_repo
    result = run_tasks("commits", "HEAD..HEAD", "--repo", str(repo), root=project)
    assert result.returncode == 2
    assert "no commits in HEAD..HEAD" in result.output


def test_a_root_commit_needs_a_pinned_signers_file(
    signed_repo: tuple[Path, dict[str, Path]], project: Path, tmp_path: Path
) -> None:
    """The first commit has no parent to take anchors from: only an operator's file outside the change."""
    repo, keys = signed_repo
    root = git(repo, "rev-parse", "HEAD")
    refused = run_tasks("commits", root, "--repo", str(repo), root=project)
    assert refused.returncode == 1, refused.output
    assert f"{root[:12]} no trust anchor: a commit without a parent needs --allowed-signers" in refused.output
    inside = repo / SIGNERS
    result = run_tasks("commits", root, "--repo", str(repo), "--allowed-signers", str(inside), root=project)
    assert result.returncode == 2 and "inside the repository under test" in result.output, result.output
    pinned_file = tmp_path / "pinned_signers"
    pinned_file.write_text(signer_line(keys["maintainer"], "maintainer@example.org"))
    result = run_tasks("commits", root, "--repo", str(repo), "--allowed-signers", str(pinned_file), root=project)
    assert result.returncode == 0, result.output
    digest = hashlib.sha256(pinned_file.read_bytes()).hexdigest()
    assert details(project, "commits")["anchors"] == {root: f"pinned {pinned_file} sha256:{digest}"}


@pytest.mark.parametrize("gate", GATES)
def test_an_unsigned_commit_cannot_plant_a_key(gate: str, branch: Path, keys: dict[str, Path]) -> None:
    """(a) an unsigned commit adds K, the next commit (the fleet change) is signed by K."""
    trusted = (branch / SIGNERS).read_text()
    plant = commit(branch, "add a key", None, {SIGNERS: trusted + signer_line(keys["newcomer"], "k@example.org")})
    signed = commit(branch, "fleet: signed by the planted key", keys["newcomer"], fleet_change(branch, "K"))
    code, output = run_gate(gate, branch)
    assert_refused(gate, code, output, f"{plant[:12]} unsigned")
    if gate == "commits":  # the K-signed commit is judged by its parent, which does name K: the plant is the failure
        assert details(branch, "commits")["failing"] == [plant]
        assert details(branch, "commits")["anchors"] == {
            signed: f"parent {plant}",
            plant: "none",  # unsigned: no anchor was consulted
        }


@pytest.mark.parametrize("gate", GATES)
def test_a_commit_cannot_sign_with_the_key_it_adds(gate: str, branch: Path, keys: dict[str, Path]) -> None:
    """(b) one commit adds K to the allowed signers and is signed by K."""
    trusted = (branch / SIGNERS).read_text()
    files = {SIGNERS: trusted + signer_line(keys["newcomer"], "k@example.org"), **fleet_change(branch, "K")}
    selfish = commit(branch, "fleet: add my key and sign with it", keys["newcomer"], files)
    code, output = run_gate(gate, branch)
    assert_refused(gate, code, output, f"{selfish[:12]}")
    assert "signed, but by a key not in the allowed-signers file" in output


@pytest.mark.parametrize("gate", GATES)
def test_a_trusted_key_can_admit_a_new_one(gate: str, branch: Path, keys: dict[str, Path]) -> None:
    """(c) a commit signed by a trusted key adds K; the next commit, signed by K, passes."""
    trusted = (branch / SIGNERS).read_text()
    admit = commit(branch, "admit K", keys["maintainer"], {SIGNERS: trusted + signer_line(keys["newcomer"], "k@x")})
    signed = commit(branch, "fleet: signed by K", keys["newcomer"], fleet_change(branch, "K"))
    code, output = run_gate(gate, branch)
    assert_passed(gate, code, output)
    if gate == "commits":
        assert details(branch, "commits")["anchors"] == {
            signed: f"parent {admit}",
            admit: f"parent {git(branch, 'rev-parse', 'main')}",
        }


@pytest.mark.parametrize("gate", GATES)
def test_the_policy_cannot_repoint_the_signers_file(gate: str, branch: Path, keys: dict[str, Path]) -> None:
    """(d) the change points gates.commits.allowed_signers at a file it adds, naming K, and signs with K."""
    policy = (branch / "security-policy.yaml").read_text()
    assert f"allowed_signers: {SIGNERS}" in policy
    files = {
        "security-policy.yaml": policy.replace(f"allowed_signers: {SIGNERS}", "allowed_signers: .github/mine"),
        ".github/mine": signer_line(keys["newcomer"], "k@example.org"),
        **fleet_change(branch, "K"),
    }
    repointed = commit(branch, "fleet: my own signers file", keys["newcomer"], files)
    code, output = run_gate(gate, branch)
    assert_refused(gate, code, output, f"{repointed[:12]} signed, but by a key not in the allowed-signers file")


@pytest.fixture
def openpgp(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A throwaway GnuPG home holding one ultimately trusted signing key: (environment, fingerprint)."""
    gpg = str(pinned("gpg"))  # tools.lock: installed if absent, so this test never skips
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}

    def run(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([gpg, "--batch", *args], input=stdin, env=env, check=True, capture_output=True, text=True)
        return done.stdout

    run("--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "pgp <pgp@x>", "ed25519", "sign", "never")
    listing = run("--with-colons", "--list-secret-keys")
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    run("--import-ownertrust", stdin=f"{fingerprint}:6:\n")  # ultimately trusted, as one's own key is
    try:
        yield {"GNUPGHOME": str(home)}, fingerprint
    finally:
        subprocess.run(
            [str(Path(gpg).with_name("gpgconf")), "--kill", "gpg-agent"], env=env, check=False, capture_output=True
        )


@pytest.mark.parametrize("gate", GATES)
def test_an_openpgp_signature_is_refused(gate: str, branch: Path, openpgp: tuple[dict[str, str], str]) -> None:
    """(e) git picks the verifier from the signature block: an OpenPGP signature by a key this machine's
    GnuPG trusts would pass verify-commit despite gpg.format=ssh. The policy names SSH signatures only."""
    gnupg, fingerprint = openpgp
    env = {**os.environ, **gnupg}
    for name, text in fleet_change(branch, "openpgp").items():
        (branch / name).write_text(text)
        git(branch, "add", name)
    git(
        branch,
        "-c",
        "gpg.format=openpgp",
        "-c",
        f"user.signingkey={fingerprint}",
        "commit",
        "-S",
        "-q",
        "-m",
        "fleet: pgp",
        env=env,
    )
    signed = git(branch, "rev-parse", "HEAD")
    assert git(branch, "log", "-1", "--format=%G?", env=env) == "G"  # a good signature, as far as GnuPG goes
    code, output = run_gate(gate, branch, gnupg)
    assert_refused(gate, code, output, f"{signed[:12]} signed in a format the policy does not name: openpgp")


def test_git_is_never_asked_to_run_another_verifier(
    branch: Path, openpgp: tuple[dict[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth beneath the format check: with the OpenPGP commit's own signer trusted by this
    GnuPG home, git's verification still does not call it good, because no OpenPGP verifier can run."""
    gnupg, fingerprint = openpgp
    env = {**os.environ, **gnupg}
    git(
        branch,
        "-c",
        "gpg.format=openpgp",
        "commit",
        "--allow-empty",
        f"--gpg-sign={fingerprint}",
        "-qm",
        "pgp",
        env=env,
    )
    assert git(branch, "log", "-1", "--format=%G?", env=env) == "G"  # good, as far as this GnuPG goes
    sha = git(branch, "rev-parse", "HEAD")
    signers = (branch / SIGNERS).read_bytes()
    monkeypatch.setenv("GNUPGHOME", gnupg["GNUPGHOME"])  # what the verifying machine's GnuPG trusts
    ctx = Context.create(root=branch).bind(StageRecord(stage="test", root=branch))
    code, _ = verify_signature(ctx, StageRecord(stage="commits", root=branch), branch, sha, signers)
    assert code != "G"


def test_an_x509_signature_block_is_refused(signed_repo: tuple[Path, dict[str, Path]], project: Path) -> None:
    """A commit object whose gpgsig header holds an X.509 (gpgsm) block is refused by its format."""
    repo, _ = signed_repo
    head = git(repo, "cat-file", "commit", "HEAD").split("\n\n", 1)[0]
    kept = [line for line in head.split("\n") if line.split(" ", 1)[0] in ("tree", "author", "committer")]
    x509 = [
        "-----BEGIN SIGNED MESSAGE-----",
        "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQME",
        "-----END SIGNED MESSAGE-----",
    ]
    block = "gpgsig " + "\n ".join(x509)
    raw = "\n".join([kept[0], f"parent {git(repo, 'rev-parse', 'HEAD')}", *kept[1:], block]) + "\n\nx509\n"
    sha = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=repo,
        input=raw,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    result = run_tasks("commits", f"{sha}^!", "--repo", str(repo), root=project)
    assert result.returncode == 1, result.output
    assert f"{sha[:12]} signed in a format the policy does not name: x509" in result.output


def test_the_fleet_gate_without_a_base_branch_is_one_line(branch: Path) -> None:
    result = run_tasks("fleet", "--base", "no-such-branch", root=branch)
    assert result.returncode == 2, result.output
    assert "no merge base between HEAD and 'no-such-branch'" in result.output
    assert "--base" in result.output.splitlines()[-1]


# --- adversarial review (issue #30): what the parent-anchor rule alone let through -------------------------


def signed_merge(repo: Path, key: Path, other: str) -> str:
    """Merge ``other`` into HEAD keeping HEAD's tree (HEAD stays the first parent), signed by ``key``."""
    git(repo, "merge", "-q", "--no-commit", "--no-ff", "-s", "ours", other)
    git(repo, *signing(key), "commit", "-S", "-q", "-m", f"merge {other}")
    return git(repo, "rev-parse", "HEAD")


def signing(key: Path) -> list[str]:
    return ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.program={pinned('ssh-keygen')}", "-c", f"user.signingkey={key}"]


def admit_then_remove(repo: Path, keys: dict[str, Path]) -> tuple[str, str]:
    """On main: the maintainer admits the stranger's key, then removes it. (admit, revoke)."""
    git(repo, "checkout", "-q", "main")
    trusted = (repo / SIGNERS).read_text()
    admit = commit(
        repo, "admit stranger", keys["maintainer"], {SIGNERS: trusted + signer_line(keys["stranger"], "s@x")}
    )
    revoke = commit(repo, "remove stranger", keys["maintainer"], {SIGNERS: trusted})
    return admit, revoke


@pytest.mark.parametrize("how", ["branched", "merged-back", "through-a-trusted-commit"])
@pytest.mark.parametrize("gate", GATES)
def test_a_removed_key_cannot_sign_from_history_before_its_removal(
    gate: str, how: str, branch: Path, keys: dict[str, Path]
) -> None:
    """C7: the holder of a removed key branches from a commit that still listed it (its parent's anchors
    name the key): directly, merging main back in with that branch as first parent, or on top of a
    commit a still trusted key made there. The base's tip, where the key is gone, judges too."""
    admit, revoke = admit_then_remove(branch, keys)
    git(branch, "checkout", "-q", "-B", "feature", admit)
    parent = commit(branch, "older work", keys["maintainer"]) if how == "through-a-trusted-commit" else admit
    evil = commit(branch, "fleet: signed by a removed key", keys["stranger"], fleet_change(branch, "evil"))
    if how == "merged-back":
        signed_merge(branch, keys["stranger"], "main")
    line = f"{evil[:12]} signed, but by a key not in the allowed-signers file: judged by range start {revoke[:12]}"
    code, output = run_gate(gate, branch)
    assert_refused(gate, code, output, line)
    if gate == "commits":
        anchors = details(branch, "commits")["anchors"]
        assert isinstance(anchors, dict) and anchors[evil] == f"parent {parent} and range start {revoke}"
        code, output = run_gate(gate, branch, None, f"{revoke}..HEAD")  # an explicit range: A is the start
        assert_refused(gate, code, output, line)


def test_a_still_trusted_key_signs_from_older_history(branch: Path, keys: dict[str, Path]) -> None:
    """The control: branching from older history is allowed to a key both there and at the base's tip."""
    admit, revoke = admit_then_remove(branch, keys)
    git(branch, "checkout", "-q", "-B", "feature", admit)
    old = commit(branch, "from older history", keys["maintainer"])
    code, output = run_gate("commits", branch)
    assert_passed("commits", code, output)
    assert details(branch, "commits")["anchors"] == {old: f"parent {admit} and range start {revoke}"}


@pytest.mark.parametrize("at", ["head", "plant"])
@pytest.mark.parametrize("gate", GATES)
def test_a_tag_named_like_the_base_is_not_the_base(gate: str, at: str, branch: Path, keys: dict[str, Path]) -> None:
    """C8: git resolves `main` to refs/tags/main before refs/heads/main. A tag `main` at HEAD emptied the
    range; at the planting commit it started the range after the plant. The base is a branch ref only."""
    trusted = (branch / SIGNERS).read_text()
    plant = commit(branch, "add a key", None, {SIGNERS: trusted + signer_line(keys["newcomer"], "k@example.org")})
    commit(branch, "fleet: signed by the planted key", keys["newcomer"], fleet_change(branch, "K"))
    git(branch, "tag", "main", "HEAD" if at == "head" else plant)
    code, output = run_gate(gate, branch)
    assert_refused(gate, code, output, f"{plant[:12]} unsigned")


@pytest.mark.parametrize("base", ["-x", "main..", "@{-1}"])
@pytest.mark.parametrize("gate", GATES)
def test_a_base_that_is_not_a_branch_name_is_one_line(gate: str, base: str, branch: Path) -> None:
    code, output = run_gate(gate, branch, None, f"--base={base}")
    assert code == 2, output[-2000:]
    assert f"--base {base!r} is not a branch name" in output.splitlines()[-1]


def test_the_fleet_gate_refuses_an_older_commit_of_the_base(branch: Path, keys: dict[str, Path]) -> None:
    """C8: nothing since the base is accepted only at the base's tip; an older commit of it (an earlier
    desired state, signed in its day) is not reconciled."""
    git(branch, "checkout", "-q", "main")
    change = commit(branch, "fleet: a desired state", keys["maintainer"], fleet_change(branch, "old"))
    commit(branch, "fleet: the next one", keys["maintainer"], fleet_change(branch, "new"))
    git(branch, "checkout", "-q", "--detach", change)
    code, output = run_gate("fleet", branch)
    assert_refused("fleet", code, output, f"HEAD {change[:12]} is behind refs/heads/main")
    git(branch, "checkout", "-q", "main")
    assert_passed("fleet", *run_gate("fleet", branch))


def backdated(repo: Path, key: Path, message: str) -> str:
    (repo / "file.txt").write_text(message)
    git(repo, "add", "file.txt")
    date = {"GIT_COMMITTER_DATE": "2019-06-01T00:00:00Z", "GIT_AUTHOR_DATE": "2019-06-01T00:00:00Z"}
    git(repo, *signing(key), "commit", "-S", "-q", "-m", message, env={**os.environ, **date})
    return git(repo, "rev-parse", "HEAD")


def test_a_key_with_a_validity_window_is_refused_not_backdated(branch: Path, keys: dict[str, Path]) -> None:
    """C9: git verifies at the committer date, which the signer writes: a key `valid-before` 2020 signed a
    commit dated 2019. A line with valid-before, valid-after or cert-authority is refused, naming the line."""
    git(branch, "checkout", "-q", "main")
    line = 's@x valid-before="20200101" ' + signer_line(keys["stranger"], "s@x").split(" ", 1)[1]
    timed = commit(branch, "stranger until 2020", keys["maintainer"], {SIGNERS: (branch / SIGNERS).read_text() + line})
    git(branch, "checkout", "-q", "-B", "feature")
    late = backdated(branch, keys["stranger"], "backdated")
    code, output = run_gate("commits", branch)
    assert_refused("commits", code, output, f"{late[:12]} no trust anchor: parent {timed[:12]}'s {SIGNERS}:2 sets")
    assert "valid-before, which the signer's own commit date decides; remove the key's line" in output


@pytest.mark.parametrize("option", ["cert-authority", 'VALID-AFTER="20300101"'])
def test_a_pinned_file_with_a_validity_option_is_one_line(
    option: str, signed_repo: tuple[Path, dict[str, Path]], project: Path, tmp_path: Path
) -> None:
    repo, keys = signed_repo
    pinned_file = tmp_path / "pinned_signers"
    key = signer_line(keys["maintainer"], "").strip()
    pinned_file.write_text(f'# who signs\nmaintainer@example.org namespaces="git",{option} {key} valid-before\n')
    result = run_tasks("commits", "HEAD", "--repo", str(repo), "--allowed-signers", str(pinned_file), root=project)
    assert result.returncode == 2, result.output
    assert f"{pinned_file}:2 sets {option.split('=')[0].lower()}," in result.output.splitlines()[-1]


def test_a_comment_that_names_an_option_is_not_one(
    signed_repo: tuple[Path, dict[str, Path]], project: Path, tmp_path: Path
) -> None:
    repo, keys = signed_repo
    pinned_file = tmp_path / "pinned_signers"
    pinned_file.write_text(signer_line(keys["maintainer"], "maintainer@example.org").strip() + " valid-before soon\n")
    result = run_tasks("commits", "HEAD", "--repo", str(repo), "--allowed-signers", str(pinned_file), root=project)
    assert result.returncode == 0, result.output


@pytest.mark.parametrize("how", ["replace", "graft"])
@pytest.mark.parametrize("gate", GATES)
def test_replace_refs_and_grafts_do_not_hide_a_commit(gate: str, how: str, branch: Path, keys: dict[str, Path]) -> None:
    """C10: refs/replace/ swaps the unsigned plant for a signed decoy; info/grafts makes the signed child's
    parent main, so the listed range skips the plant. Neither is followed by the gates."""
    trusted = (branch / SIGNERS).read_text()
    plant = commit(branch, "add a key", None, {SIGNERS: trusted + signer_line(keys["newcomer"], "k@example.org")})
    signed = commit(branch, "fleet: signed by the planted key", keys["newcomer"], fleet_change(branch, "K"))
    if how == "replace":
        tree = f"{plant}^{{tree}}"  # the plant's tree, adding the key, in a commit the maintainer signed
        decoy = git(branch, *signing(keys["maintainer"]), "commit-tree", "-S", "-p", "main", "-m", "decoy", tree)
        git(branch, "replace", plant, decoy)
    else:
        (branch / ".git" / "info").mkdir(exist_ok=True)
        (branch / ".git" / "info" / "grafts").write_text(f"{signed} {git(branch, 'rev-parse', 'main')}\n")
    code, output = run_gate(gate, branch)
    assert_refused(gate, code, output, f"{plant[:12]} unsigned")


def test_a_shallow_clone_is_one_line(signed_repo: tuple[Path, dict[str, Path]], project: Path, tmp_path: Path) -> None:
    repo, keys = signed_repo
    commit(repo, "second", keys["maintainer"])
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    result = run_tasks("commits", "HEAD", "--repo", str(shallow), root=project)
    assert result.returncode == 2, result.output
    assert "is a shallow clone, whose history ends early: fetch full history (fetch-depth: 0)" in result.output


def test_the_fleet_gate_reads_the_committed_desired_state(branch: Path, keys: dict[str, Path]) -> None:
    """C11: `git update-index --skip-worktree` hides a work-tree edit from `git status`; the stage reads
    fleet/desired.toml from the verified commit, and still refuses an uncommitted change it can see."""
    head = commit(branch, "fleet: signed", keys["maintainer"], fleet_change(branch, "signed"))
    committed = (branch / "fleet" / "desired.toml").read_text()
    git(branch, "update-index", "--skip-worktree", "fleet/desired.toml")
    (branch / "fleet" / "desired.toml").write_text('model = "not what was signed"\n')
    assert git(branch, "status", "--porcelain", "--", "fleet/") == ""
    code, output = run_gate("fleet", branch)
    assert_passed("fleet", code, output)  # past the signature, and past the desired state: it is the signed one
    assert (branch / "out" / "fleet" / "desired.toml").read_text() == committed
    inputs = json.loads((branch / "out" / "evidence.json").read_text())["stages"]["fleet"]["inputs"]
    assert [i["digest"] for i in inputs] == ["sha256:" + hashlib.sha256(committed.encode()).hexdigest()]
    git(branch, "update-index", "--no-skip-worktree", "fleet/desired.toml")
    code, output = run_gate("fleet", branch)
    assert_refused("fleet", code, output, "uncommitted changes in fleet/:")
    assert head == git(branch, "rev-parse", "HEAD")
