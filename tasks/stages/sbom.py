"""nox -s sbom"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.analysis.sbom import SOURCE_EXCLUDES, generate, image_ref
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import MANIFEST_MEDIA_TYPE


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sbom", description="SPDX + CycloneDX SBOMs of image and source")
    parser.parse_args(argv)
    ref = image_ref(ctx)
    oci_registry.ensure_for(ctx, rec, ref)
    rec.add_oci(ref, ref.split("@", 1)[1], MANIFEST_MEDIA_TYPE, output=False)
    image = generate(ctx, rec, f"registry:{ref}", "image")
    excludes = [arg for path in SOURCE_EXCLUDES for arg in ("--exclude", path)]
    source = generate(ctx, rec, f"dir:{ctx.root}", "source", [*excludes, "--source-name", "secure-iot"])
    rec.details.update({"image": ref, "packages": {"image": image, "source": source}})
    console.print(f"[green]sbom: pass[/] — image {image['spdx']} packages, source {source['spdx']} packages")
    return "pass"
