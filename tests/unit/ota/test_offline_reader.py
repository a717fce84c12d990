"""The offline bundle reader on a hostile USB stick (issue #30): nothing is read before it is bounded.

A device reads the stick through the real client (ota.update, python-tuf's Updater, TarFetcher).
Every stick here is made from a genuine offline bundle, then edited: a sparse or PAX-resized
``timestamp.json``, a link, a path trick, a name twice, a million members, random edits. The update
is refused with ``UpdateRefused`` (never another exception), the device is unchanged, and the
reader's peak memory stays far below what the stick claims (tracemalloc, around the whole update).

The device's counter (5) is above the published target's security version (1): an edit that TUF
still accepts ends in a refusal before any download, so RAUC is never reached and no tool runs.
"""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks import ota
from tasks.core.errors import VerificationError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.ota import offline
from tasks.ota.repository import Config

MODEL = "m1"
CONFIG = Config((MODEL,), MODEL, {"root": 365, "targets": 90, "model": 90, "snapshot": 7, "timestamp": 1})
CLAIMED = 256 << 20  # what the hostile member claims
PEAK = 32 << 20  # what the whole refused update may allocate at its peak
UNUSED = Tool("unused", "0", Path("/nonexistent"))  # RAUC is never reached: every case is refused before


@dataclass(frozen=True)
class Stick:
    genuine: bytes
    members: list[tuple[tarfile.TarInfo, bytes]]
    root_v1: bytes
    work: Path


@pytest.fixture(scope="module")
def stick(tmp_path_factory: pytest.TempPathFactory) -> Stick:
    work = tmp_path_factory.mktemp("offline-reader")
    repo = ota.Repository.open(work / "repository", ota.TufKeys(work / "keys"), CONFIG)
    bundle = work / "b.raucb"
    bundle.write_bytes(b"\x01" * 8192)
    custom = {"firmware_version": "0.9", "security_version": 1, "hardware_model": MODEL}
    repo.publish(MODEL, bundle, custom)
    out = work / "usb.tar"
    offline.write(repo, MODEL, out)
    with tarfile.open(out) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]  # type: ignore[union-attr]
    return Stick(out.read_bytes(), members, repo.trusted_root(1), work)


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _edited(
    stick: Stick, name: str, edit: Callable[[tarfile.TarInfo, bytes], list[tuple[tarfile.TarInfo, bytes]]]
) -> bytes:
    out: list[tuple[tarfile.TarInfo, bytes]] = []
    for info, data in stick.members:
        out.extend(edit(info, data) if info.name == name else [(info, data)])
    return _tar(out)


def _refused(stick: Stick, data: bytes, tmp: Path, match: str | None = None) -> int:
    """Run a factory-fresh device's update from ``data``; assert the refusal; return the peak bytes allocated."""
    tmp.mkdir(parents=True, exist_ok=True)
    usb = tmp / "usb.tar"
    usb.write_bytes(data)
    (tmp / "ca.pem").write_bytes(b"unused")
    (tmp / "factory.fit").write_bytes(b"factory")
    device = ota.Device.provision(
        tmp / "device",
        model=MODEL,
        trusted_root=stick.root_v1,
        keyring=tmp / "ca.pem",
        fit=tmp / "factory.fit",
        version="1.0",
        security_version=5,
    )
    before = device.state
    rec = StageRecord(stage="update", root=tmp)
    tracemalloc.start()
    try:
        with pytest.raises(ota.UpdateRefused, match=match):
            ota.update(device, ota.Source.offline(usb), rauc=UNUSED, mksquashfs=UNUSED, rec=rec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert device.state == before and not (device.directory / "slots" / "B" / "image.fit").exists()
    return peak


def test_the_genuine_stick_passes_tuf_and_stops_at_the_devices_counter(stick: Stick, tmp_path: Path) -> None:
    assert _refused(stick, stick.genuine, tmp_path, "security version 1, below the device's counter 5") < PEAK


def _sparse(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    """GNU sparse 0.1 in PAX headers: no data on the stick, 256 MiB of holes once read."""
    info = tarfile.TarInfo(info.name)
    info.pax_headers = {"GNU.sparse.map": "0,0", "GNU.sparse.size": str(CLAIMED)}
    return [(info, b"")]


def _pax_size(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    """A PAX 'size' record that overrides the header's: 256 MiB claimed, the real bytes present."""
    info = tarfile.TarInfo(info.name)
    info.size = len(data)
    info.pax_headers = {"size": str(CLAIMED)}
    return [(info, data)]


def _symlink(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    link = tarfile.TarInfo(info.name)
    link.type, link.linkname = tarfile.SYMTYPE, "/dev/zero"
    return [(link, b"")]


def _twice(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(info, data), (info, data)]


def _dotdot(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    copy = tarfile.TarInfo(f"metadata/../{info.name}")
    copy.size = len(data)
    return [(info, data), (copy, data)]


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        (_sparse, "not a regular, non-sparse file"),
        (_pax_size, "bytes past the end of the file"),
        (_symlink, "not a regular, non-sparse file"),
        (_twice, "'metadata/timestamp.json' twice"),
        (_dotdot, "not a plain path under metadata/ or targets/"),
    ],
    ids=["sparse", "pax-size", "symlink", "twice", "dotdot"],
)
def test_a_hostile_timestamp_member_is_refused_before_it_is_read(
    stick: Stick,
    tmp_path: Path,
    edit: Callable[[tarfile.TarInfo, bytes], list[tuple[tarfile.TarInfo, bytes]]],
    refusal: str,
) -> None:
    data = _edited(stick, "metadata/timestamp.json", edit)
    assert len(data) < 64 << 10  # a small stick
    assert _refused(stick, data, tmp_path, f"download failed.*{refusal}") < PEAK


def test_a_stick_with_more_members_than_a_bundle_has_is_refused(stick: Stick, tmp_path: Path) -> None:
    filler = [(tarfile.TarInfo(f"metadata/{n}.filler.json"), b"") for n in range(offline.MAX_MEMBERS)]
    data = _tar([*stick.members, *filler], fmt=tarfile.USTAR_FORMAT)
    assert _refused(stick, data, tmp_path, f"more than {offline.MAX_MEMBERS} members") < PEAK


def _pax_header_blocks(data: bytes) -> list[int]:
    return [
        at
        for at in range(0, len(data), 512)
        if data[at + 156 : at + 157] == b"x" and data[at + 257 : at + 262] == b"ustar"
    ]


def test_a_pax_header_that_claims_256_mib_is_refused(stick: Stick, tmp_path: Path) -> None:
    def commented(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        info = tarfile.TarInfo(info.name)
        info.size, info.pax_headers = len(data), {"comment": "a PAX header"}
        return [(info, data)]

    blocks = bytearray(_edited(stick, "metadata/timestamp.json", commented))
    at = _pax_header_blocks(bytes(blocks))[0]
    blocks[at + 124 : at + 136] = b"%011o\0" % CLAIMED  # tarfile reads a PAX header whole, at its claimed size
    blocks[at + 148 : at + 156] = b" " * 8
    blocks[at + 148 : at + 156] = b"%06o\0 " % sum(blocks[at : at + 512])
    assert _refused(stick, bytes(blocks), tmp_path, "download failed") < PEAK


HEADER_FIELDS = [0, 100, 124, 130, 136, 148, 156, 157, 257, 345, 511]  # name, mode, size, mtime, chksum, type, ...
NEGATIVE = b"\xff" * 12  # a base-256 number field: -1, which tarfile takes as a size
PATCHES = st.binary(min_size=1, max_size=16) | st.sampled_from(
    [b"77777777777\0", b"\x80" + b"\xff" * 11, NEGATIVE, b"x", b"S"]
)
Patch = tuple[bool, int, int, bytes]  # (in a header?, which member, offset in its header block or its data, bytes)
Change = tuple[list[Patch], bool, str, int, bytes]
PAX_HEADER_CLAIMS_256_MIB: Change = (
    [(True, 0, 156, b"x"), (True, 0, 124, b"%011o\0" % CLAIMED)],
    True,
    "as is",
    0,
    b"",
)
TIMESTAMP_SIZE_IS_MINUS_ONE: Change = ([(True, 1, 124, NEGATIVE)], True, "extended", 0, b"\0" * 2048)


@st.composite
def changes(draw: st.DrawFn) -> Change:
    """Patches on members' header fields and data, checksums fixed (or not), then cut short or extended."""
    patches = draw(
        st.lists(
            st.tuples(
                st.booleans(), st.integers(0, 20), st.sampled_from(HEADER_FIELDS) | st.integers(0, 4096), PATCHES
            ),
            max_size=4,
        )
    )
    how = draw(st.sampled_from(["as is", "cut", "extended"]))
    return patches, draw(st.booleans()), how, draw(st.integers(0, 1 << 20)), draw(st.binary(max_size=2048))


def _apply(stick: Stick, change: Change) -> bytes:
    patches, fix_checksums, how, cut, tail = change
    data = bytearray(stick.genuine)
    touched = set()
    for in_header, member, offset, patch in patches:
        info = stick.members[member % len(stick.members)][0]
        start = info.offset if in_header else info.offset_data
        at = min(start + offset % 512 if in_header else start + offset, len(data) - 1)
        data[at : at + len(patch)] = patch
        touched.add(info.offset)
    for block in sorted(touched) if fix_checksums else []:  # so tarfile takes the edited header as a header
        data[block + 148 : block + 156] = b" " * 8
        data[block + 148 : block + 156] = b"%06o\0 " % sum(data[block : block + 512])
    if how == "cut":
        return bytes(data[: cut % (len(data) + 1)])
    return bytes(data + tail) if how == "extended" else bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=changes(), noise=st.none() | st.binary(max_size=4096))
@example(
    change=PAX_HEADER_CLAIMS_256_MIB, noise=None
)  # the first header made a PAX header of 256 MiB, on a small stick
@example(change=([], False, "as is", 0, b""), noise=b"")
@example(change=TIMESTAMP_SIZE_IS_MINUS_ONE, noise=None)  # member 1 is timestamp.json
def test_any_edited_or_random_stick_is_refused_cleanly_within_bounded_memory(
    stick: Stick, tmp_path_factory: pytest.TempPathFactory, change: Change, noise: bytes | None
) -> None:
    data = _apply(stick, change) if noise is None else noise
    assert _refused(stick, data, tmp_path_factory.mktemp("case")) < PEAK


def _negative_size(stick: Stick, name: str, padding: int) -> bytes:
    """The genuine stick with ``name``'s size field set to -1 (base-256), then ``padding`` zero bytes."""
    data = bytearray(stick.genuine)
    info = next(info for info, _ in stick.members if info.name == name)
    at = info.offset + (512 if info.pax_headers else 0)  # the member's own ustar header, after its PAX header
    assert data[at : at + 100].rstrip(b"\0").endswith(name.rpartition("/")[2].encode())
    data[at + 124 : at + 136] = NEGATIVE
    data[at + 148 : at + 156] = b" " * 8
    data[at + 148 : at + 156] = b"%06o\0 " % sum(data[at : at + 512])
    return bytes(data) + b"\0" * padding  # bytes after the archive's end: a tar reader ignores them


def test_a_negative_member_size_is_refused_before_the_rest_of_the_stick_is_read(stick: Stick, tmp_path: Path) -> None:
    """Python's tarfile takes a base-256 size of -1 as it is; a reader that then counts down to zero
    would read the whole rest of the stick in one chunk (here 64 MiB of padding, twice the bound)."""
    data = _negative_size(stick, "metadata/timestamp.json", 2 * PEAK)
    probe = tmp_path / "probe.tar"
    probe.write_bytes(data)
    with pytest.raises(offline.BadBundle, match=r"'metadata/timestamp\.json': a negative size or offset in its header"):
        offline.index(probe)
    assert _refused(stick, data, tmp_path / "update", "download failed.*negative size") < PEAK


def test_the_stick_carries_the_verified_metadata_and_bundle_not_what_the_disk_holds_later(stick: Stick) -> None:
    """After the signer verified the repository, a writer swaps a metadata file and the bundle on disk:
    the stick is written from the verified bytes, and a bundle no longer the signed one is refused."""
    repo = ota.Repository.open(stick.work / "repository", ota.TufKeys(stick.work / "keys"), CONFIG)
    timestamp = repo.metadata_dir / "timestamp.json"
    verified_timestamp = timestamp.read_bytes()
    timestamp.write_bytes(verified_timestamp.replace(b'"signed": {', b'"signed": {"x": 1, ', 1))
    try:
        out = stick.work / "again.tar"
        offline.write(repo, MODEL, out)
        with tarfile.open(out) as archive:
            assert archive.extractfile("metadata/timestamp.json").read() == verified_timestamp  # type: ignore[union-attr]
        (target,) = repo.roles[ota.role_name(MODEL)].signed.targets.values()
        bundle = repo.stored(target)
        genuine = bundle.read_bytes()
        bundle.write_bytes(b"\x02" * len(genuine))
        try:
            with pytest.raises(VerificationError, match=f"{bundle.name}: not the bundle signed as {target.path}"):
                offline.write(repo, MODEL, stick.work / "planted.tar")
            assert not (stick.work / "planted.tar").exists()
        finally:
            bundle.write_bytes(genuine)
    finally:
        timestamp.write_bytes(verified_timestamp)
