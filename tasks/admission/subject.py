"""What the policy stage checks: the chart release and the image under test, and how a check row is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from tasks.context import Context
from tasks.core.checks import Check
from tasks.core.console import console
from tasks.core.errors import EvidenceError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import MANIFEST_MEDIA_TYPE
from tasks.core.recorded import BuiltImage, MalformedRecord

STAGE = "policy"


CHART = "infra/charts/secure-iot"


RELEASE = "secure-iot"


NAMESPACE = "secure"


REPOSITORY = "127.0.0.1:5000/secure-iot-server"


# Used only when no passing build stage is recorded in out/evidence.json; said so in the
# output and the evidence. sha256("secure-iot admission test image").
TEST_DIGEST = "sha256:a67e4e474cae5c03121cb4aad821b120edeb4fb2961ac3d6af68e583ec55080f"


# What the Gatekeeper part writes under out/policy/ (the policy-controller part adds its own).
STAGE_OUTPUTS = (
    "gator-verify.txt",
    f"rendered/{RELEASE}.yaml",
    "gator-rendered.json",
    "gator-bad-manifest.json",
    "checks.json",
)


def expect(name: str, expected: str, outcome: str, passed: bool) -> Check:
    """An admission check row: what was checked, what had to happen, what did."""
    return Check(name, passed, outcome, expected)


@dataclass(frozen=True)
class Image:
    repository: str
    digest: str
    source: str

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"


def image_under_test(ctx: Context, rec: StageRecord) -> Image:
    """The digest the build stage pushed; a fixed test digest (said so) when there is none."""
    try:
        built = BuiltImage.read(ctx.evidence).image
    except MalformedRecord:
        raise  # a build recorded, but not an image by digest: no fixed digest stands in for it
    except EvidenceError as exc:
        console.print(
            f"  [yellow]no passing build in the evidence ({escape(str(exc))}): "
            f"rendering with the fixed test digest {TEST_DIGEST}[/]"
        )
        return Image(REPOSITORY, TEST_DIGEST, f"fixed test digest (no build evidence: {exc})")
    rec.add_oci(str(built), built.digest, MANIFEST_MEDIA_TYPE, output=False)
    return Image(REPOSITORY, built.digest, f"build evidence ({built})")


def rel(ctx: Context, path: Path) -> str:
    """Tools run in the repository root: their argv (and the evidence) names paths relative to it."""
    return str(path.relative_to(ctx.root)) if path.is_relative_to(ctx.root) else str(path)
