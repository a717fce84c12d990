"""One firmware build in a project of its own: shared by the firmware integration and e2e tests.

The project is a copy of what the firmware stage reads (tools.lock, firmware/, the policy, the
key-mode trusted root), so its signing keys (.keys/firmware, and the cosign pair that signs the
reference values) are made in the test's own .keys, never in the checkout. The caches
(tools, pinned inputs, U-Boot, tpm_tis.ko) are the machine's, as for any run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.media_types import REFERENCE_VALUES_PREDICATE_TYPE
from tests.support.project import REPO, Result, pinned, run_tasks

EPOCH = "1700000000"  # a fixed SOURCE_DATE_EPOCH: the copy is not a git checkout


@dataclass
class FirmwareProject:
    root: Path

    @property
    def out(self) -> Path:
        return self.root / "out"

    def run(self, *args: str, timeout: float = 3600, env: dict[str, str] | None = None) -> Result:
        return run_tasks(
            *args,
            root=self.root,
            timeout=timeout,
            env={"SOURCE_DATE_EPOCH": EPOCH, "SECURE_IOT_OUT": str(self.out), **(env or {})},
        )

    def stage(self, name: str) -> dict[str, Any]:
        return dict(json.loads((self.out / "evidence.json").read_text())["stages"][name])

    def output(self, stage: str, media_type: str) -> Path:
        found = [o for o in self.stage(stage)["outputs"] if o["media_type"] == media_type]
        assert len(found) == 1, (stage, media_type, found)
        return self.root / str(found[0]["name"])

    def copy(self, to: Path) -> FirmwareProject:
        shutil.copytree(self.root, to, symlinks=True)
        return FirmwareProject(to)


def firmware_project(work: Path) -> FirmwareProject:
    root = work / "project"
    root.mkdir(parents=True)
    for name in ("tools.lock", "security-policy.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "firmware", root / "firmware")
    trusted_root = Path("infra/policies/sigstore/trusted-root-keymode.json")  # offline key-mode bundle checks
    (root / trusted_root).parent.mkdir(parents=True)
    shutil.copy(REPO / trusted_root, root / trusted_root)
    return FirmwareProject(root)


# What the supply-chain stages read besides: tool locks, VEX, schemas, the Rego policy.
# the demo vulnerability DB is rebuilt from its workspace by tools/grype-db-builder once it ages out
SUPPLY_CHAIN = (
    "requirements/tools",
    "vex",
    "schemas",
    "infra/policies/sigstore/rego",
    "tools/grype-db-builder",
    "tests/fixtures/grype/workspace",
)


def resign_reference_values(project: FirmwareProject, keys: Path) -> None:
    """Another signer's reference-values bundle for the same FIT: a fresh cosign key pair in ``keys``."""
    cosign = str(pinned("cosign"))
    env = {**os.environ, "COSIGN_PASSWORD": ""}
    keys.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [cosign, "generate-key-pair", "--output-key-prefix", str(keys / "cosign")],
        env=env,
        check=True,
        capture_output=True,
    )
    firmware = project.out / "firmware"
    bundle = firmware / "reference-values.sigstore.json"
    bundle.unlink()
    subprocess.run(
        [
            cosign,
            "attest-blob",
            "--yes",
            "--key",
            str(keys / "cosign.key"),
            "--tlog-upload=false",
            "--new-bundle-format",
            "--bundle",
            str(bundle),
            "--type",
            REFERENCE_VALUES_PREDICATE_TYPE,
            "--predicate",
            str(firmware / "reference-values.json"),
            str(firmware / "image.fit"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )


def with_supply_chain(project: FirmwareProject) -> FirmwareProject:
    """``project`` with the files `sbom/scan/provenance/sign/verify -- --subject firmware` read."""
    for name in SUPPLY_CHAIN:
        if not (project.root / name).exists():
            shutil.copytree(REPO / name, project.root / name)
    return project


def built_firmware(work: Path) -> FirmwareProject:
    project = firmware_project(work)
    result = project.run("keys")  # the cosign key that signs the reference values, in the project's .keys
    assert result.returncode == 0, result.output[-4000:]
    result = project.run("firmware")
    assert result.returncode == 0, result.output[-4000:]
    return project
