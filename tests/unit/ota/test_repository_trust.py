"""The signer verifies its repository before it signs anything again (issue #30): real python-tuf, real keys.

Whoever can write files in the repository directory (the web host, a CI cache) holds no key: a
planted target, a high-numbered role version, a bad root, a replayed timestamp or a planted bundle
is refused with one line naming the file, and nothing in the directory changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root

from tasks import ota
from tasks.core.errors import VerificationError
from tasks.ota import fleet, verified
from tasks.ota.repository import Config

MODEL = "m1"
ROLE = ota.role_name(MODEL)
CONFIG = Config((MODEL,), MODEL, {"root": 365, "targets": 90, "model": 90, "snapshot": 7, "timestamp": 1})


def custom(security_version: int, fit: str) -> dict[str, Any]:
    return {"firmware_version": "1.0", "security_version": security_version, "hardware_model": MODEL, "fit_digest": fit}


@pytest.fixture
def made(tmp_path: Path) -> tuple[ota.Repository, Path]:
    """A repository with two releases (bundles of random-looking bytes: the signer never opens them)."""
    repo = ota.Repository.open(tmp_path / "repository", ota.TufKeys(tmp_path / "keys"), CONFIG)
    for n in (1, 2):
        bundle = tmp_path / f"b{n}.raucb"
        bundle.write_bytes(bytes([n]) * 4096)
        repo.publish(MODEL, bundle, custom(n, f"sha256:{n}"))
    return repo, tmp_path


def reopen(repo: ota.Repository) -> ota.Repository:
    return ota.Repository.open(repo.directory, ota.TufKeys(repo.keys.directory), CONFIG)


def files(repo: ota.Repository) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in repo.directory.rglob("*") if p.is_file()}


def refused(repo: ota.Repository, match: str) -> None:
    before = files(repo)
    with pytest.raises(VerificationError, match=match) as caught:
        again = reopen(repo)
        again.publish(MODEL, repo.stored(next(iter(repo.roles[ROLE].signed.targets.values()))), custom(9, "x"))
    assert "\n" not in str(caught.value)
    assert files(repo) == before, "a refused run changed the repository"


def current_role(repo: ota.Repository) -> Path:
    return repo.metadata_dir / f"{repo.roles[ROLE].signed.version}.{ROLE}.json"


def test_the_genuine_repository_reopens_and_publishes(made: tuple[ota.Repository, Path]) -> None:
    repo, work = made
    repo.rotate_root(["root-4", "root-5", "root-6"])
    again = reopen(repo)
    assert again.root.signed.version == 2
    assert again.roles[ROLE].signed.version == repo.roles[ROLE].signed.version
    bundle = work / "b3.raucb"
    bundle.write_bytes(b"3" * 4096)
    again.publish(MODEL, bundle, custom(3, "sha256:3"))
    assert reopen(again).roles[ROLE].signed.targets[ota.target_path(MODEL)].custom["security_version"] == 3


def test_a_forged_target_in_the_model_role_is_refused(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    path = current_role(repo)
    doc = json.loads(path.read_text())
    doc["signed"]["targets"][ota.target_path(MODEL)]["custom"]["security_version"] = 999  # not re-signed
    path.write_text(json.dumps(doc))
    refused(repo, rf"{path.name}: not signed by the keys targets v\d+ trusts for {ROLE}")


def test_a_high_numbered_unsigned_role_version_is_refused(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    doc = json.loads(current_role(repo).read_text())
    doc["signed"]["version"] = 99
    planted = repo.metadata_dir / f"99.{ROLE}.json"
    planted.write_text(json.dumps(doc))
    refused(repo, rf"99.{ROLE}.json: {ROLE} v99, newer than the signed v\d+, not signed by its keys")


def test_a_replayed_old_timestamp_is_a_rollback_and_refused(made: tuple[ota.Repository, Path], tmp_path: Path) -> None:
    repo, work = made
    old = (repo.metadata_dir / "timestamp.json").read_bytes()
    bundle = work / "b3.raucb"
    bundle.write_bytes(b"3" * 4096)
    repo.publish(MODEL, bundle, custom(3, "sha256:3"))
    (repo.metadata_dir / "timestamp.json").write_bytes(old)  # genuine, validly signed, older
    refused(repo, r"snapshot.json: a validly signed snapshot v\d+, newer than the v\d+ the timestamp chain names")


def test_a_root_signed_by_a_stranger_is_refused(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    stranger = CryptoSigner.generate_ed25519()
    root = Metadata[Root].from_file(str(repo.metadata_dir / "1.root.json"))
    for keyid in list(root.signed.roles["root"].keyids):
        root.signed.revoke_key(keyid, "root")
    root.signed.add_key(stranger.public_key, "root")
    root.signed.roles["root"].threshold = 1
    root.signed.version = 2
    root.signatures.clear()
    root.sign(stranger)
    (repo.metadata_dir / "2.root.json").write_bytes(root.to_bytes())
    refused(repo, r"2.root.json: not signed by the keys root v1 trusts for root")


def test_a_first_root_the_signer_did_not_make_is_refused(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    stranger = CryptoSigner.generate_ed25519()
    root = Metadata[Root].from_file(str(repo.metadata_dir / "1.root.json"))
    for keyid in list(root.signed.roles["root"].keyids):
        root.signed.revoke_key(keyid, "root")
    root.signed.add_key(stranger.public_key, "root")
    root.signed.roles["root"].threshold = 1
    root.signatures.clear()
    root.sign(stranger)  # a self-consistent root: only the keys the signer holds tell it apart
    (repo.metadata_dir / "1.root.json").write_bytes(root.to_bytes())
    refused(repo, r"1.root.json: not the first root this signer made")


def test_a_root_past_the_chain_is_refused(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    shutil.copyfile(repo.metadata_dir / "1.root.json", repo.metadata_dir / "5.root.json")
    refused(repo, r"5.root.json: a root past the verified chain, which ends at 1.root.json")


def test_a_bundle_planted_at_a_signed_path_is_refused(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    stored = repo.stored(repo.roles[ROLE].signed.targets[ota.target_path(MODEL)])
    stored.write_bytes(b"\x01" * 4096)  # the old genuine bundle's bytes under the new one's name
    refused(repo, rf"{stored.name}: not the bundle signed as {MODEL}/firmware.raucb")


def test_a_symlinked_target_directory_is_refused(made: tuple[ota.Repository, Path], tmp_path: Path) -> None:
    repo, _ = made
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    model_dir = repo.targets_dir / MODEL
    for stored in model_dir.iterdir():
        shutil.copyfile(stored, elsewhere / stored.name)
    shutil.rmtree(model_dir)
    model_dir.symlink_to(elsewhere)  # the next bundle would be written outside the repository
    refused(repo, rf"targets/{MODEL}: a symlink in the OTA repository")
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(p.name for p in model_dir.iterdir())


def test_a_missing_timestamp_does_not_start_a_new_repository(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    (repo.metadata_dir / "timestamp.json").unlink()
    refused(repo, "holds files but no timestamp.json")


def test_a_role_file_the_snapshot_does_not_name_is_refused(made: tuple[ota.Repository, Path]) -> None:
    repo, _ = made
    shutil.copyfile(current_role(repo), repo.metadata_dir / "1.model-evil.json")
    refused(repo, r"1.model-evil.json: a role file the signed snapshot does not name")


def test_fleet_never_rolls_out_a_release_from_a_role_version_that_does_not_verify(
    made: tuple[ota.Repository, Path],
) -> None:
    repo, _ = made
    targets, unverified = repo.published(MODEL)
    assert [t.custom["security_version"] for t in targets] == [1, 2] and unverified == []
    first = next(p for v, p in sorted(verified.numbered(repo.metadata_dir, ROLE).items()) if v == 2)
    text = first.read_text()
    assert '"fit_digest": "sha256:1"' in text
    first.write_text(text.replace('"fit_digest": "sha256:1"', '"fit_digest": "sha256:X"'))  # an old version, forged
    again = reopen(repo)  # the current versions all verify: the signer may run
    with pytest.raises(
        VerificationError, match=rf"sha256:X: no release .*do not verify were not considered: 2.{ROLE}.json\)"
    ):
        fleet.find_release(again, MODEL, "sha256:X")
    assert fleet.find_release(again, MODEL, "sha256:2").custom["security_version"] == 2


def test_a_bundle_swapped_in_the_repository_while_rauc_verifies_it_is_not_what_gets_signed(
    made: tuple[ota.Repository, Path],
) -> None:
    """The writer swaps the stored release bundle for an old genuine one while the verify hook runs:
    what is signed for the group is the bundle the hook verified, not what the path holds afterwards."""
    repo, work = made
    repo = reopen(repo)  # a verified open, as `nox -s fleet` does
    release = fleet.find_release(repo, MODEL, "sha256:2")
    stored = repo.stored(release)
    genuine = stored.read_bytes()
    seen: list[str] = []

    def verify(bundle: Path) -> None:  # RAUC accepts the genuine release-2 bundle ... then the host swaps it
        seen.append(hashlib.sha256(bundle.read_bytes()).hexdigest())
        stored.write_bytes((work / "b1.raucb").read_bytes())

    fleet.reconcile(repo, fleet.Desired(MODEL, (fleet.Group("canary", 1, "sha256:2"),)), verify)
    group = repo.roles[ROLE].signed.targets[ota.target_path(MODEL, "canary")]
    assert seen == [hashlib.sha256(genuine).hexdigest()] == [group.hashes["sha256"]]
    assert group.custom["security_version"] == 2
    assert repo.checked(group).read_bytes() == genuine  # the group's stored bundle is the verified bytes
    stored.write_bytes(genuine)  # the release's own file put back: the repository reopens clean
    assert reopen(repo).roles[ROLE].signed.targets[ota.target_path(MODEL, "canary")].hashes == group.hashes


def test_a_verified_copy_changed_before_it_is_published_is_refused_and_nothing_is_signed(
    made: tuple[ota.Repository, Path],
) -> None:
    repo, work = made
    repo = reopen(repo)
    before = files(repo)

    def verify(bundle: Path) -> None:  # whatever changes the bytes between their verification and their signing
        bundle.write_bytes((work / "b1.raucb").read_bytes())

    with pytest.raises(VerificationError, match="not the bytes that were taken and verified") as caught:
        fleet.reconcile(repo, fleet.Desired(MODEL, (fleet.Group("canary", 1, "sha256:2"),)), verify)
    assert "\n" not in str(caught.value)
    assert files(repo) == before


@pytest.mark.parametrize("name", ["timestamp.json", "role"])
def test_a_metadata_file_with_a_json_key_twice_is_refused(made: tuple[ota.Repository, Path], name: str) -> None:
    """json.loads keeps the last of two equal keys and the signatures cover python-tuf's re-serialised
    form, so a file with an injected key would still verify: the signer's parser refuses it."""
    repo, _ = made
    path = current_role(repo) if name == "role" else repo.metadata_dir / name
    text = path.read_text()
    assert text.count('"signed": {') == 1
    path.write_text(text.replace('"signed": {', '"signed": {"version": 999, "expires": "2000-01-01T00:00:00Z", ', 1))
    refused(repo, rf"{path.name}: not strict JSON \(key '(expires|version)' twice in one JSON object\)")


def test_a_validly_signed_role_file_in_other_bytes_is_refused(made: tuple[ota.Repository, Path]) -> None:
    """The snapshot pins each role file's length and sha256, not only its version: the same signed role
    re-serialised (its signatures still verify) is not the file the snapshot names, here or on a device."""
    repo, _ = made
    path = current_role(repo)
    snapshot = json.loads((repo.metadata_dir / f"{repo.snapshot.signed.version}.snapshot.json").read_bytes())
    pinned = snapshot["signed"]["meta"][f"{ROLE}.json"]
    assert pinned["length"] == len(path.read_bytes())
    assert pinned["hashes"] == {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))  # the same JSON, other whitespace
    refused(repo, rf"{path.name}: not the bytes the signed metadata names")
