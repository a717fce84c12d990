"""The factory: per device a TPM (swtpm state, real EK) with a manufacturer-signed EK certificate in its NV
and the anti-rollback counter (key_policy.py), a registration code printed once, and a manufacturing
record in a manifest the manufacturer signs.

What leaves the factory for the fleet server is the signed manifest and the CA *certificate*;
the code's only other trace is its salted scrypt hash in the manifest.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tasks.context import Context
from tasks.core import atomic
from tasks.core.evidence import StageRecord
from tasks.core.media_types import MANUFACTURING_MANIFEST_TYPE
from tasks.device import key_policy, manufacturer, registration_code
from tasks.device.manufacturer import Manufacturer
from tasks.device.tpm2 import EK_CERT_NV_INDEX, EK_HANDLE, tpm2
from tasks.firmware import swtpm


@dataclass(frozen=True)
class Manufactured:
    device_id: str
    state: Path  # the device's swtpm state directory
    code: str  # the printed label: shown once, never written by the factory


@dataclass(frozen=True)
class Batch:
    devices: list[Manufactured]
    manifest: Path
    signature: Path


def manufacture_one(
    ctx: Context, rec: StageRecord, maker: Manufacturer, directory: Path, model: str
) -> tuple[Manufactured, dict[str, object]]:
    device_id = f"sid-{secrets.token_hex(5)}"
    home = directory / "devices" / device_id
    state = home / "tpm"
    swtpm.manufacture_state(ctx, rec, state)
    with swtpm.running(ctx, rec, state, home / "swtpm.log") as tpm:
        tpm2(ctx, rec, tpm, ["readpublic", "-c", EK_HANDLE, "-f", "pem", "-o", home / "ek.pem"])
        cert = manufacturer.ek_certificate(maker, (home / "ek.pem").read_bytes(), device_id)
        der = cert.public_bytes(serialization.Encoding.DER)
        atomic.write_bytes(home / "ek-cert.der", der)
        tpm2(
            ctx,
            rec,
            tpm,
            [
                "nvdefine",
                EK_CERT_NV_INDEX,
                "-C",
                "o",
                "-s",
                str(len(der)),
                "-a",
                "ownerread|ownerwrite|authread|no_da",
            ],
        )
        tpm2(ctx, rec, tpm, ["nvwrite", EK_CERT_NV_INDEX, "-C", "o", "-i", home / "ek-cert.der"])
        key_policy.define_counter(ctx, rec, tpm, home)  # the anti-rollback counter every key approval names
    code = registration_code.new_code()
    record: dict[str, object] = {
        "device_id": device_id,
        "model": model,
        "ek_certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "registration_code": registration_code.hashed(code),
    }
    return Manufactured(device_id, state, code), record


def manufacture(ctx: Context, rec: StageRecord, directory: Path, count: int, maker: Manufacturer, model: str) -> Batch:
    """``count`` devices of hardware ``model`` and one manifest (its exact bytes signed with the manufacturer
    CA's key): the model is what the fleet server judges each device's boots against."""
    made, records = [], []
    for _ in range(count):
        device, record = manufacture_one(ctx, rec, maker, directory, model)
        made.append(device)
        records.append(record)
    document = {
        "type": MANUFACTURING_MANIFEST_TYPE,
        "manufacturer": maker.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "devices": records,
    }
    manifest = directory / f"manifest-{made[0].device_id if made else 'empty'}.json"
    data = json.dumps(document, indent=2, sort_keys=True).encode()
    atomic.write_bytes(manifest, data)
    signature = manifest.with_name(manifest.name + ".sig")
    atomic.write_bytes(signature, maker.sign(data))
    return Batch(made, manifest, signature)


def manufacturer_for(directory: Path, name: str = "Secure-IoT Devices Ltd") -> Manufacturer:
    """The factory's CA: created once, reused for every later batch."""
    if (directory / "manufacturer-ca.key").is_file():
        return manufacturer.load(directory)
    maker = manufacturer.create(name)
    manufacturer.save(maker, directory)
    return maker
