"""The tamper builders change exactly what they say, on a FIT-shaped tree."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from tasks.core.errors import VerificationError
from tasks.firmware import fdt, tamper


def fit(kernel: bytes) -> bytes:
    image = fdt.Node(
        "kernel-1",
        [("data", kernel), ("type", b"kernel\0")],
        [fdt.Node("hash-1", [("algo", b"sha256\0"), ("value", hashlib.sha256(kernel).digest())])],
    )
    conf = fdt.Node(
        "conf-1",
        [("kernel", b"kernel-1\0"), ("security-version", (2).to_bytes(4, "big"))],
        [fdt.Node("signature-1", [("algo", b"sha256,rsa3072\0"), ("value", b"\x01" * 384)])],
    )
    root = fdt.Node("", [], [fdt.Node("images", children=[image]), fdt.Node("configurations", children=[conf])])
    return fdt.serialize(fdt.Tree(root, b"\0" * 16, b"", 0, slack=177))  # mkimage leaves such free space


@pytest.fixture
def genuine(tmp_path: Path) -> Path:
    path = tmp_path / "genuine.fit"
    path.write_bytes(fit(gzip.compress(b"Image" * 1000, mtime=0)))
    return path


def test_the_writer_round_trips_with_the_free_space(genuine: Path) -> None:
    assert fdt.serialize(fdt.parse(genuine.read_bytes())) == genuine.read_bytes()
    assert fdt.totalsize(genuine.read_bytes()) == genuine.stat().st_size


def test_flipped_byte_changes_one_bit_of_the_kernel_and_nothing_else(genuine: Path, tmp_path: Path) -> None:
    out = tamper.flipped_byte(genuine, tmp_path / "bad.fit")
    before, after = genuine.read_bytes(), out.read_bytes()
    assert len(before) == len(after)
    assert sum(bin(a ^ b).count("1") for a, b in zip(before, after, strict=True)) == 1


def test_unsigned_drops_the_signature_node_only(genuine: Path, tmp_path: Path) -> None:
    conf = fdt.parse(tamper.unsigned(genuine, tmp_path / "bad.fit").read_bytes()).root.find(tamper.CONF)
    assert [c.name for c in conf.children] == [] and conf.has("security-version")


def test_mix_and_match_takes_the_kernel_and_its_hash_node(genuine: Path, tmp_path: Path) -> None:
    other = tmp_path / "older.fit"
    other.write_bytes(fit(gzip.compress(b"Image" * 1000, compresslevel=1, mtime=0)))
    mixed = fdt.parse(tamper.mix_and_match(genuine, other, tmp_path / "bad.fit").read_bytes()).root
    theirs = fdt.parse(other.read_bytes()).root
    assert mixed.find(tamper.KERNEL).get("data") == theirs.find(tamper.KERNEL).get("data")
    assert mixed.find(f"{tamper.KERNEL}/hash-1").get("value") == theirs.find(f"{tamper.KERNEL}/hash-1").get("value")
    ours = fdt.parse(genuine.read_bytes()).root
    assert mixed.find(f"{tamper.CONF}/signature-1").get("value") == ours.find(f"{tamper.CONF}/signature-1").get("value")


def test_mixing_identical_kernels_would_prove_nothing(genuine: Path, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="same kernel bytes"):
        tamper.mix_and_match(genuine, genuine, tmp_path / "bad.fit")


def test_a_fit_the_writer_cannot_round_trip_is_refused(genuine: Path, tmp_path: Path) -> None:
    """Bytes past totalsize would be lost by the writer: the case would no longer be what it says."""
    odd = tmp_path / "odd.fit"
    odd.write_bytes(genuine.read_bytes() + b"trailing")
    with pytest.raises(VerificationError, match="round-trip"):
        tamper.flipped_byte(odd, tmp_path / "bad.fit")
