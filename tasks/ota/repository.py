"""The TUF update repository, with python-tuf's Metadata API (not hand-rolled JSON).

Layout (consistent snapshots, served as static files)::

    metadata/N.root.json  N.targets.json  N.model-<M>.json  N.snapshot.json  timestamp.json
    targets/<M>/<sha256>.firmware.raucb

Roles: root (threshold 2 of 3 offline keys), targets (offline; delegates, lists nothing itself),
one delegated role per hardware model ``model-<M>`` trusted for ``<M>/*`` and ``<M>/groups/*/*``
only (terminating), snapshot and timestamp (online keys, short expiry). A model has one target
path, ``<M>/firmware.raucb``, and one per fleet group, ``<M>/groups/<G>/firmware.raucb``: each
release replaces its hash and custom metadata; old files stay (consistent snapshots) so a device
mid-download is never cut off.

The directory is served by a web host and cached by CI, so nothing in it is trusted as it lies:
``open`` verifies every role file from the root keys the signer holds (tasks/ota/verified.py)
and re-hashes every listed bundle before anything is signed again; a failure signs nothing.
The verified metadata bytes are kept (``raw``): the snapshot and timestamp pin the length and
sha256 of exactly those bytes, and the offline bundle and a device's first root come from them.
A bundle is published from a private copy taken once (tasks/ota/taken.py), never from a path a
writer of the directory could swap between its verification and its signing.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from tasks.core import atomic
from tasks.core.errors import InputError, SigningError, VerificationError
from tasks.ota import taken, verified
from tasks.ota.keys import TufKeys
from tasks.ota.taken import Digest, Taken

CONFIG = "infra/ota/repository.toml"
ROOT_KEYS = ("root-1", "root-2", "root-3")
ROOT_THRESHOLD = 2
BUNDLE_NAME = "firmware.raucb"
SERIALIZER = JSONSerializer(compact=False)
PLANTED = "a file planted in the repository: remove it and restore it from the release's bundles/"


@dataclass(frozen=True)
class Config:
    models: tuple[str, ...]
    default_model: str
    expiry_days: Mapping[str, int]


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text())
        models = tuple(str(m) for m in raw["models"])
        expiry = {role: int(raw["expiry_days"][role]) for role in ("root", "targets", "model", "snapshot", "timestamp")}
        default = str(raw.get("default_model", models[0]))
    except (OSError, tomllib.TOMLDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: not a valid OTA repository config ({exc}); see README 'Over-the-air updates'"
        ) from exc
    if default not in models or any(not m.replace("-", "").isalnum() for m in models):
        raise InputError(f"{path}: models must be names of letters, digits and '-', default_model one of them")
    return Config(models, default, expiry)


def role_name(model: str) -> str:
    return f"model-{model}"


def target_path(model: str, group: str | None = None) -> str:
    """A model's one target path, or a device group's (fleet/ desired state, `nox -s fleet`)."""
    return f"{model}/{BUNDLE_NAME}" if group is None else f"{model}/groups/{group}/{BUNDLE_NAME}"


def _expires(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


@dataclass
class Repository:
    """The repository in ``directory``; ``keys`` signs. Every change writes new versions, never edits."""

    directory: Path
    keys: TufKeys
    config: Config
    root: Metadata[Root] = field(init=False)
    targets: Metadata[Targets] = field(init=False)
    roles: dict[str, Metadata[Targets]] = field(init=False, default_factory=dict)
    snapshot: Metadata[Snapshot] = field(init=False)
    timestamp: Metadata[Timestamp] = field(init=False)
    raw: dict[str, bytes] = field(init=False, default_factory=dict)  # metadata file name -> the verified bytes

    @property
    def metadata_dir(self) -> Path:
        return self.directory / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.directory / "targets"

    @classmethod
    def open(cls, directory: Path, keys: TufKeys, config: Config) -> Repository:
        repo = cls(directory, keys, config)
        repo._no_links()
        if (repo.metadata_dir / "timestamp.json").exists():
            repo._load()
        elif repo.metadata_dir.is_dir() and any(repo.metadata_dir.iterdir()):
            raise VerificationError(
                f"{repo.metadata_dir}: holds files but no timestamp.json; refusing to make a new repository over "
                "it (devices would be frozen on the old versions): restore the repository from the signer's last run"
            )
        else:
            repo._create()
        missing = [m for m in config.models if role_name(m) not in repo.roles]
        if missing:
            repo._delegate(missing)
        return repo

    # --- reading ---------------------------------------------------------------------------
    def _no_links(self) -> None:
        """No symlink in the tree: the signer writes only inside the directory, wherever a writer pointed a name."""
        inside = self.targets_dir.rglob("*") if self.targets_dir.is_dir() else iter(())
        for path in (self.directory, self.metadata_dir, self.targets_dir, *inside):
            if path.is_symlink():
                raise VerificationError(f"{path}: a symlink in the OTA repository; refusing to write through it")

    def _load(self) -> None:
        """The repository as the signer last signed it, or a refusal: nothing on disk is trusted unverified."""
        state = verified.load(self.metadata_dir, [self.keys.public(n) for n in self._root_key_names()])
        self.root, self.timestamp, self.snapshot = state.root, state.timestamp, state.snapshot
        self.targets, self.roles, self.raw = state.targets, state.roles, state.raw
        for role in self.roles.values():
            for target in role.signed.targets.values():
                self.checked(target)

    # --- creating --------------------------------------------------------------------------
    def _create(self) -> None:
        days = self.config.expiry_days
        root = Root(expires=_expires(days["root"]), consistent_snapshot=True)
        for name in ROOT_KEYS:
            root.add_key(self.keys.public(name), "root")
        root.roles["root"].threshold = ROOT_THRESHOLD
        for role in ("targets", "snapshot", "timestamp"):
            root.add_key(self.keys.public(role), role)
        self.root = Metadata(root)
        self.targets = Metadata(Targets(expires=_expires(days["targets"])))
        self.targets.signed.delegations = Delegations(keys={}, roles={})
        self.snapshot = Metadata(Snapshot(expires=_expires(days["snapshot"])))
        self.timestamp = Metadata(Timestamp(expires=_expires(days["timestamp"])))
        self._sign_write(self.root, "root", [self.keys.signer(n) for n in ROOT_KEYS])
        self._sign_write(self.targets, "targets")
        self._snapshot_and_timestamp()

    def _delegate(self, models: Iterable[str]) -> None:
        delegations = self.targets.signed.delegations
        if delegations is None or delegations.roles is None:
            raise SigningError("the targets role has no delegations table; recreate the repository")
        for model in models:
            name = role_name(model)
            key = self.keys.public(name)
            delegations.keys[key.keyid] = key
            delegations.roles[name] = DelegatedRole(
                name, [key.keyid], 1, True, paths=[f"{model}/*", f"{model}/groups/*/*"]
            )
            self.roles[name] = Metadata(Targets(expires=_expires(self.config.expiry_days["model"])))
            self._sign_write(self.roles[name], name)
        self._bump(self.targets, self.config.expiry_days["targets"])
        self._sign_write(self.targets, "targets")
        self._snapshot_and_timestamp()

    # --- writing ---------------------------------------------------------------------------
    def _sign_write(self, md: Metadata[Any], name: str, signers: Iterable[Any] | None = None) -> None:
        md.signatures.clear()
        for signer in signers if signers is not None else [self.keys.signer(name)]:
            md.sign(signer, append=True)
        filename = "timestamp.json" if name == "timestamp" else f"{md.signed.version}.{name}.json"
        data = md.to_bytes(SERIALIZER)
        atomic.write_bytes(self.metadata_dir / filename, data)
        self.raw[filename] = data

    def _pinned(self, md: Metadata[Any], name: str) -> MetaFile:
        """The snapshot's (or timestamp's) entry for a role file: its version, length and sha256 of its bytes."""
        data = self.raw[f"{md.signed.version}.{name}.json"]
        return MetaFile(md.signed.version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})

    def metadata(self, filename: str) -> bytes:
        """A metadata file's verified bytes (one this run verified or wrote): never a re-read of the disk."""
        return self.raw[filename]

    @staticmethod
    def _bump(md: Metadata[Any], days: float) -> None:
        signed: Signed = md.signed
        signed.version += 1
        signed.expires = _expires(days)

    def _snapshot_and_timestamp(self, *, timestamp_days: float | None = None) -> None:
        snap = self.snapshot.signed
        snap.meta = {"targets.json": self._pinned(self.targets, "targets")}
        for name, md in sorted(self.roles.items()):
            snap.meta[f"{name}.json"] = self._pinned(md, name)
        self._bump(self.snapshot, self.config.expiry_days["snapshot"])
        self._sign_write(self.snapshot, "snapshot")
        self.refresh_timestamp(days=timestamp_days)

    def refresh_timestamp(self, *, days: float | None = None) -> None:
        """A new timestamp over the current snapshot: what the online server does on a schedule."""
        self.timestamp.signed.snapshot_meta = self._pinned(self.snapshot, "snapshot")
        self._bump(self.timestamp, self.config.expiry_days["timestamp"] if days is None else days)
        self._sign_write(self.timestamp, "timestamp")

    def publish(
        self, model: str, bundle: Path | Taken, custom: Mapping[str, Any], *, group: str | None = None
    ) -> TargetFile:
        """``bundle`` becomes ``<model>/firmware.raucb`` (or the group's path) in the model's role, with ``custom``.

        A path is taken once first; a ``Taken`` copy (one RAUC verified) is stored as it is, hashed again
        while it is written, and refused unless it is still the bytes its digest names: the hashes signed
        are those of the bytes taken, whatever happens to any path meanwhile."""
        if isinstance(bundle, Path):
            with taken.taken(bundle, "nothing was published or signed") as copy:
                return self.publish(model, copy, custom, group=group)
        name = role_name(model)
        if name not in self.roles:
            raise InputError(
                f"{model}: not a model of this repository ({CONFIG} lists {', '.join(self.config.models)})"
            )
        target = TargetFile(bundle.digest.length, dict(bundle.digest.hashes), target_path(model, group))
        target.unrecognized_fields["custom"] = dict(custom)
        stored = self.stored(target)
        stored.parent.mkdir(parents=True, exist_ok=True)
        if stored.exists() or stored.is_symlink():
            self.checked(target)
        else:
            taken.store(bundle, stored)
        self.roles[name].signed.targets[target.path] = target
        self.resign(name)
        return target

    def resign(self, name: str, *, signer_name: str | None = None) -> None:
        """A new version of role ``name`` as it stands now, signed by ``signer_name`` (default: its own key),
        then a new snapshot and timestamp. Publishing and the attack tests both go through here."""
        md = self.targets if name == "targets" else self.roles[name]
        days = self.config.expiry_days["targets" if name == "targets" else "model"]
        self._bump(md, days)
        self._sign_write(md, name, [self.keys.signer(signer_name or name)])
        self._snapshot_and_timestamp()

    def published(self, model: str) -> tuple[list[TargetFile], list[Path]]:
        """Every target the model's role ever signed, oldest first, from the versions on disk whose signatures
        verify against the current targets delegation; and the role files that do not (never trusted)."""
        good, bad = verified.history(self.metadata_dir, role_name(model), self.targets.signed)
        return [t for md in good for t in md.signed.targets.values()], bad

    def stored(self, target: TargetFile) -> Path:
        """Where a target's file lives (consistent snapshots: prefixed by its sha256)."""
        directory, _, base = target.path.rpartition("/")
        return self.targets_dir / directory / f"{target.hashes['sha256']}.{base}"

    def checked(self, target: TargetFile) -> Path:
        """A target's stored file, re-hashed: a file planted at a signed path is refused, never listed or signed."""
        path = self.stored(target)
        taken.check(path, _digest(target), f"the bundle signed as {target.path}", PLANTED)
        return path

    def take(self, target: TargetFile) -> AbstractContextManager[Taken]:
        """A private copy of a target's stored file, held to its signed length and hashes: verify it, then
        publish it (``publish``), and the bytes signed are the bytes verified."""
        what = f"the bundle signed as {target.path}"
        return taken.taken(self.stored(target), PLANTED, expected=_digest(target), what=what)

    def rotate_root(self, new_keys: Iterable[str], *, threshold: int = ROOT_THRESHOLD) -> int:
        """Root v(N+1) trusts ``new_keys``; signed by the old and the new threshold. Returns N+1."""
        old = list(self.root.signed.roles["root"].keyids)
        old_signers = [s for s in (self.keys.signer(n) for n in self._root_key_names()) if s.public_key.keyid in old]
        root = self.root.signed
        for keyid in old:
            root.revoke_key(keyid, "root")
        names = list(new_keys)
        for name in names:
            root.add_key(self.keys.public(name), "root")
        root.roles["root"].threshold = threshold
        self._bump(self.root, self.config.expiry_days["root"])
        self._sign_write(self.root, "root", [*old_signers, *(self.keys.signer(n) for n in names)])
        return root.version

    def _root_key_names(self) -> list[str]:
        return sorted(p.stem for p in self.keys.directory.glob("root-*.pem"))

    def trusted_root(self, version: int = 1) -> bytes:
        """The root a device is provisioned with (version 1 by default: it walks the chain), as verified."""
        return self.metadata(f"{version}.root.json")


def _digest(target: TargetFile) -> Digest:
    return Digest(target.length, dict(target.hashes))
