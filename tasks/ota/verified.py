"""The repository's signed state as the signer may trust it: verified before anything is signed again.

The repository directory is served by a web host and may pass through a CI cache; whoever can
write files there holds no key. Were the signer to load those files as they are and sign them
again, a planted target (an old genuine bundle with a forged ``security_version``) or a
high-numbered role version would be laundered under the offline keys. So the signer loads the
directory the way a device does, with python-tuf's own checks (``verify_delegate``,
``verify_length_and_hashes``), anchored in the root keys it holds, not in the files:

- root: ``1.root.json`` names only root keys the signer holds and carries a threshold of their
  signatures; each ``N+1.root.json`` is signed by a threshold of root N's keys and of its own.
  A root file past the end of that chain is refused.
- timestamp (signed per the last root) -> the snapshot version it names -> ``targets`` and each
  delegated model role at the version (and length/hashes, when present) the snapshot names,
  signed by the keys and threshold the root or the targets delegation names.
- no metadata file is newer than the version the verified chain names, and no role file is
  there that the snapshot does not name: a replayed old timestamp (rollback) or a planted file is
  refused, never ignored.
- each file is read once (``taken.read``: no symlink followed, at most ``MAX_METADATA``) and parsed
  strictly: a JSON object with a key twice is refused, since the signatures cover python-tuf's
  re-serialised form and a duplicate would let two different files carry the same signatures.
  The verified bytes are kept (``State.raw``): the snapshot and timestamp the signer writes pin
  their length and sha256, and the offline bundle carries them, never a re-read of the disk.

Expiry is not checked: refreshing expired metadata is the signer's job, and a writer without
keys cannot make a signature whatever the dates. Any failure is one ``VerificationError`` naming
the file and what failed; the caller has then signed and written nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api.exceptions import LengthOrHashMismatchError, RepositoryError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, T, Targets, Timestamp
from tuf.api.serialization import DeserializationError

from tasks.core.errors import VerificationError
from tasks.ota import taken

if TYPE_CHECKING:
    from securesystemslib.signer import Key

# python-tuf's client refuses a targets file over 5 MB; the signer reads nothing larger either
MAX_METADATA = 8 << 20
REFUSAL = "refusing to sign over it, nothing was written; restore the repository from the signer's last run"


@dataclass
class State:
    root: Metadata[Root]
    timestamp: Metadata[Timestamp]
    snapshot: Metadata[Snapshot]
    targets: Metadata[Targets]
    roles: dict[str, Metadata[Targets]]
    raw: dict[str, bytes]  # each verified file's bytes as read, by file name


def refused(path: Path, what: str) -> VerificationError:
    return VerificationError(f"{path}: {what}; {REFUSAL}")


def numbered(metadata_dir: Path, role: str) -> dict[int, Path]:
    """The ``N.<role>.json`` files in the directory, by N (the only names a device ever fetches)."""
    pattern = re.compile(rf"([1-9][0-9]{{0,17}})\.{re.escape(role)}\.json")
    found = {}
    for path in metadata_dir.iterdir():
        match = pattern.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _read(path: Path) -> bytes:
    return taken.read(path, MAX_METADATA, REFUSAL)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"key {twice[0]!r} twice in one JSON object")
    return dict(pairs)


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes) -> Any:
    """``data`` as JSON, refusing what ``json.loads`` would quietly accept: a key twice (the last wins), NaN."""
    return json.loads(data.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_constant)


def _parse(path: Path, data: bytes, kind: type[T]) -> Metadata[T]:
    try:
        strict_json(data)
    except ValueError as exc:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        raise refused(path, f"not strict JSON ({exc})") from None
    try:
        md: Metadata[T] = Metadata.from_bytes(data)
    except DeserializationError as exc:
        raise refused(path, f"not TUF metadata ({exc})") from exc
    if md.signed.type != kind.type:
        raise refused(path, f"is {md.signed.type!r} metadata, expected {kind.type!r}")
    return md


def _signed_by(path: Path, md: Metadata[Any], delegator: Root | Targets, role: str, by: str) -> None:
    """``md`` carries the threshold of signatures ``delegator`` requires for ``role``."""
    try:
        delegator.verify_delegate(role, md.signed_bytes, md.signatures)
    except (RepositoryError, ValueError) as exc:
        raise refused(path, f"not signed by the keys {by} trusts for {role} ({exc})") from exc


def verified(
    path: Path, kind: type[T], delegator: Root | Targets, role: str, by: str, raw: dict[str, bytes] | None = None
) -> Metadata[T]:
    """``path`` parsed as ``kind`` and signed for ``role`` per ``delegator`` (named ``by`` in refusals);
    its bytes kept in ``raw`` under its name."""
    data = _read(path)
    md = _parse(path, data, kind)
    _signed_by(path, md, delegator, role, by)
    if raw is not None:
        raw[path.name] = data
    return md


def _named(
    path: Path, kind: type[T], meta: MetaFile, delegator: Root | Targets, role: str, by: str, raw: dict[str, bytes]
) -> Metadata[T]:
    """The role file a verified snapshot or timestamp names: its signatures, version, and the length and
    hashes the signer pinned (a validly signed file in other bytes, re-serialised, is refused too)."""
    data = _read(path)
    md = _parse(path, data, kind)
    _signed_by(path, md, delegator, role, by)
    if md.signed.version != meta.version:
        raise refused(path, f"says version {md.signed.version}, the signed metadata names {meta.version}")
    try:
        meta.verify_length_and_hashes(data)
    except LengthOrHashMismatchError as exc:
        raise refused(path, f"not the bytes the signed metadata names ({exc})") from exc
    raw[path.name] = data
    return md


def root_chain(metadata_dir: Path, held: Iterable[Key], raw: dict[str, bytes]) -> Metadata[Root]:
    """The newest root reachable from version 1, which must be signed by root keys the signer holds;
    each root's bytes kept in ``raw``."""
    keys = {key.keyid: key for key in held}
    if not keys:
        raise VerificationError(f"{metadata_dir}: the signer holds no root key to verify the repository with")
    first = metadata_dir / "1.root.json"
    raw[first.name] = _read(first)
    root = _parse(first, raw[first.name], Root)
    strangers = [k for k in root.signed.roles[Root.type].keyids if root.signed.keys.get(k) != keys.get(k)]
    if strangers or root.signed.version != 1:
        raise refused(first, f"not the first root this signer made (root keys it does not hold: {strangers})")
    _signed_by(first, root, root.signed, Root.type, "this root")
    files = numbered(metadata_dir, Root.type)
    version = 1
    while version + 1 in files:
        path = files[version + 1]
        data = _read(path)
        new = _parse(path, data, Root)
        if new.signed.version != version + 1:
            raise refused(path, f"says version {new.signed.version}, its file name says {version + 1}")
        _signed_by(path, new, root.signed, Root.type, f"root v{version}")
        _signed_by(path, new, new.signed, Root.type, "this root")
        root, version, raw[path.name] = new, version + 1, data
    beyond = sorted(n for n in files if n > version)
    if beyond:
        raise refused(files[beyond[0]], f"a root past the verified chain, which ends at {version}.root.json")
    return root


def _nothing_newer(
    metadata_dir: Path, kind: type[T], role: str, version: int, delegator: Root | Targets, by: str
) -> None:
    """No file claims a newer version of ``role`` than the verified chain names."""
    for number, path in sorted(numbered(metadata_dir, role).items()):
        if number <= version:
            continue
        try:
            verified(path, kind, delegator, role, by)
        except VerificationError:
            raise refused(path, f"{role} v{number}, newer than the signed v{version}, not signed by its keys") from None
        raise refused(
            path,
            f"a validly signed {role} v{number}, newer than the v{version} the timestamp chain names: "
            "a replayed old timestamp or snapshot (rollback), or a signing run cut short",
        )


def load(metadata_dir: Path, held_root_keys: Iterable[Key]) -> State:
    """The verified repository in ``metadata_dir`` (see the module docstring for what is checked)."""
    raw: dict[str, bytes] = {}
    root = root_chain(metadata_dir, held_root_keys, raw)
    by_root = f"root v{root.signed.version}"
    timestamp = verified(metadata_dir / "timestamp.json", Timestamp, root.signed, Timestamp.type, by_root, raw)
    snap_meta = timestamp.signed.snapshot_meta
    snapshot = _named(
        metadata_dir / f"{snap_meta.version}.snapshot.json",
        Snapshot,
        snap_meta,
        root.signed,
        Snapshot.type,
        by_root,
        raw,
    )
    _nothing_newer(metadata_dir, Snapshot, Snapshot.type, snap_meta.version, root.signed, by_root)
    metas = dict(snapshot.signed.meta)
    targets_meta = metas.pop("targets.json", None)
    if targets_meta is None:
        raise refused(metadata_dir / f"{snap_meta.version}.snapshot.json", "names no targets role")
    targets = _named(
        metadata_dir / f"{targets_meta.version}.targets.json",
        Targets,
        targets_meta,
        root.signed,
        Targets.type,
        by_root,
        raw,
    )
    _nothing_newer(metadata_dir, Targets, Targets.type, targets_meta.version, root.signed, by_root)
    by_targets = f"targets v{targets.signed.version}"
    roles = {}
    for filename, meta in sorted(metas.items()):
        name = filename.removesuffix(".json")
        path = metadata_dir / f"{meta.version}.{name}.json"
        if not filename.endswith(".json") or "/" in name or name in (Root.type, Timestamp.type, Snapshot.type):
            raise refused(metadata_dir / f"{snap_meta.version}.snapshot.json", f"names an unexpected role {filename!r}")
        roles[name] = _named(path, Targets, meta, targets.signed, name, by_targets, raw)
        _nothing_newer(metadata_dir, Targets, name, meta.version, targets.signed, by_targets)
    known = {Root.type, Snapshot.type, Targets.type, *roles}
    for path in sorted(metadata_dir.glob("*.json")):
        role = path.name.removesuffix(".json").partition(".")[2]
        if path.name != "timestamp.json" and role not in known:
            raise refused(path, "a role file the signed snapshot does not name")
    return State(root, timestamp, snapshot, targets, roles, raw)


def history(metadata_dir: Path, role: str, delegator: Targets) -> tuple[list[Metadata[Targets]], list[Path]]:
    """Every version of a delegated role on disk, oldest first: those signed per ``delegator`` (the
    current targets delegation, so a version signed by a key since rotated out is not trusted), and
    the files that are not."""
    good, bad = [], []
    for _, path in sorted(numbered(metadata_dir, role).items()):
        try:
            good.append(verified(path, Targets, delegator, role, "the current targets delegation"))
        except VerificationError:
            bad.append(path)
    return good, bad
