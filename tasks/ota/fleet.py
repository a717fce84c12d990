"""The fleet's desired state (fleet/desired.toml) reconciled into the TUF repository, wave by wave.

Each group gets its own target path, ``<model>/groups/<group>/firmware.raucb``, in the model's
role; its custom metadata is the published release's plus ``group`` and ``wave``. The commit
check (signed by an allowed key) is the stage's: it needs the source layer.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.errors import InputError, VerificationError
from tasks.core.media_types import DIGEST
from tasks.ota.repository import Repository, role_name, target_path

if TYPE_CHECKING:
    from tuf.api.metadata import TargetFile

DESIRED = "fleet/desired.toml"


@dataclass(frozen=True)
class Group:
    name: str
    wave: int
    release: str  # the FIT's "sha256:…", or "" for nothing yet


@dataclass(frozen=True)
class Desired:
    model: str
    groups: tuple[Group, ...]


def load(path: Path) -> Desired:
    try:
        raw = tomllib.loads(path.read_text())
        groups = tuple(Group(str(g["name"]), int(g["wave"]), str(g.get("release", ""))) for g in raw["group"])
        desired = Desired(str(raw["model"]), groups)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a valid fleet desired state ({exc}); see README 'Over-the-air updates'") from exc
    names = [g.name for g in groups]
    if len(set(names)) != len(names) or any(not n.replace("-", "").isalnum() for n in names):
        raise InputError(f"{path}: group names must be unique, letters, digits and '-'")
    bad = [g.name for g in groups if g.release and not DIGEST.match(g.release)]
    if bad:
        raise InputError(f"{path}: release of {', '.join(bad)} is not a sha256:<64 hex> FIT digest")
    return desired


@dataclass(frozen=True)
class Move:
    group: str
    wave: int
    release: str
    result: str  # "published" | "unchanged" | "waiting for wave N" | "nothing yet"


def current(repo: Repository, model: str, group: str) -> str:
    target = repo.roles[role_name(model)].signed.targets.get(target_path(model, group))
    return str(target.custom.get("fit_digest", "")) if target is not None else ""


def find_release(repo: Repository, model: str, fit_digest: str) -> TargetFile:
    """The newest target `nox -s release` published for this FIT (the model's own path, not a group's).

    Only role versions whose signatures verify against the current delegation count: a version on disk
    that does not (planted, or signed by a model key since rotated out) is never a release to roll out."""
    targets, unverified = repo.published(model)
    found = [t for t in targets if t.path == target_path(model) and t.custom.get("fit_digest") == fit_digest]
    if not found:
        ignored = f" (role files that do not verify were not considered: {', '.join(p.name for p in unverified)})"
        raise VerificationError(
            f"{fit_digest}: no release of model {model} carries this FIT{ignored if unverified else ''}; "
            "run `nox -s release`"
        )
    return found[-1]


def reconcile(repo: Repository, desired: Desired, verify: Callable[[Path], None]) -> list[Move]:
    """Publish each group's release, wave by wave; ``verify`` (RAUC against the update CA) refuses a bad bundle.

    ``verify`` gets a private copy of the release's bundle (``Repository.take``), and that copy is what
    is published: a writer of the repository who swaps the stored file meanwhile changes nothing signed."""
    before = {g.name: current(repo, desired.model, g.name) for g in desired.groups}
    moves = []
    for group in sorted(desired.groups, key=lambda g: (g.wave, g.name)):
        if not group.release:
            moves.append(Move(group.name, group.wave, "", "nothing yet"))
            continue
        if before[group.name] == group.release:
            moves.append(Move(group.name, group.wave, group.release, "unchanged"))
            continue
        behind = [g for g in desired.groups if g.wave < group.wave and before[g.name] != group.release]
        if behind:
            moves.append(Move(group.name, group.wave, group.release, f"waiting for wave {min(g.wave for g in behind)}"))
            continue
        release = find_release(repo, desired.model, group.release)
        custom = {**release.custom, "group": group.name, "wave": group.wave}
        with repo.take(release) as copy:  # held to the release's signed hashes; verified and signed as taken
            verify(copy.path)
            repo.publish(desired.model, copy, custom, group=group.name)
        moves.append(Move(group.name, group.wave, group.release, "published"))
    return moves
