"""Reference values: the TPM's extend, the event log of the boot command, the comparison."""

from __future__ import annotations

import hashlib
import json

import pytest

from tasks.core.errors import InputError
from tasks.firmware import fdt, measurements
from tests.support.project import REPO

FIXTURES = REPO / "tests" / "fixtures" / "firmware"


def blob(root: fdt.Node) -> bytes:
    return fdt.serialize(fdt.Tree(root, rsvmap=b"\0" * 16, strings=b"", boot_cpuid=0))


def control_dtb(modulus: bytes, bits: int) -> bytes:
    key = fdt.Node(
        f"key-{measurements.KEY_NAME}",
        [("rsa,modulus", modulus), ("rsa,num-bits", bits.to_bytes(4, "big")), ("required", b"conf\0")],
    )
    return blob(fdt.Node("", children=[fdt.Node("signature", children=[key])]))


def fit() -> bytes:
    return blob(fdt.Node("", [("description", b"a FIT\0")], [fdt.Node("images"), fdt.Node("configurations")]))


def test_extend_is_sha256_of_old_value_and_digest() -> None:
    digest = hashlib.sha256(b"measured").hexdigest()
    expected = hashlib.sha256(bytes(32) + bytes.fromhex(digest)).hexdigest()
    assert measurements.extend(measurements.ZERO, digest) == expected


def test_pcr9_is_the_fit_extended_into_zero_and_pcr8_the_key_modulus() -> None:
    modulus = bytes(range(256)) + bytes(range(128))  # 384 bytes: RSA-3072
    image, control = fit(), control_dtb(modulus, 3072)
    doc = measurements.reference_values(image, control, "1.2.3", 4, "qemu-virt-a57")
    fit_digest = hashlib.sha256(image).hexdigest()
    assert doc["pcrs"]["9"] == hashlib.sha256(bytes(32) + hashlib.sha256(image).digest()).hexdigest()
    assert doc["pcrs"]["8"] == measurements.extend(measurements.ZERO, hashlib.sha256(modulus).hexdigest())
    assert [e["pcr"] for e in doc["event_log"]] == [8, 9]
    assert doc["event_log"][1]["digest"] == doc["fit_sha256"] == fit_digest
    assert all(doc["pcrs"][str(i)] == measurements.ZERO for i in range(8))
    assert (doc["firmware_version"], doc["security_version"], doc["pcr_bank"]) == ("1.2.3", 4, "sha256")
    json.dumps(doc)  # a JSON document as it is


def test_a_fit_with_trailing_bytes_is_refused() -> None:
    """U-Boot hashes totalsize bytes: a file longer than that would not match its measurement."""
    with pytest.raises(InputError, match="totalsize"):
        measurements.events(fit() + b"\0", control_dtb(bytes(384), 3072))


@pytest.mark.parametrize(("modulus", "bits"), [(bytes(384), 2048), (b"", 3072)])
def test_a_key_whose_size_does_not_add_up_is_refused(modulus: bytes, bits: int) -> None:
    with pytest.raises(InputError, match="rsa,modulus"):
        measurements.events(fit(), control_dtb(modulus, bits))


def test_a_control_dtb_without_the_key_is_refused() -> None:
    with pytest.raises(InputError, match="no usable /signature/key-secure-iot-fw"):
        measurements.events(fit(), blob(fdt.Node("")))


def test_differences_name_each_pcr_that_differs_or_is_missing() -> None:
    reference = json.loads((FIXTURES / "reference-values.json").read_text())
    measured = {i: v for i, v in measurements.expected(reference).items() if i != 3}
    measured[9] = measurements.ZERO
    differs = measurements.differences(measured, reference)
    assert set(differs) == {3, 9}
    assert differs[3].startswith("measured nothing")
    assert measurements.differences(measurements.expected(reference), reference) == {}
