"""nox -s build"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from tasks.container import deployables, oci_registry
from tasks.container.build import Built, build_app, build_base, source_url
from tasks.context import Context, git_revision, source_date_epoch
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import DEPLOYABLES_MEDIA_TYPE, MANIFEST_MEDIA_TYPE


def stale(ctx: Context, record: Mapping[str, Any]) -> str | None:
    """For the pipeline's up-to-date check: the image pushed by digest, and its tag, must still be in the registry."""
    return oci_registry.unserved(record)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s build", description="hermetic image build, pushed by digest")
    parser.add_argument("--base", help="a pinned upstream base image BY DIGEST instead of the Debian-built one")
    parser.add_argument("--rebuild-base", action="store_true", help="rebuild the base rootfs even if cached")
    args = parser.parse_args(argv)
    upstream = ImageRef.parse(args.base, what="--base") if args.base else None
    dest = oci_registry.destination(ctx, rec)
    epoch = source_date_epoch(ctx, rec)
    revision = git_revision(ctx, rec)
    if upstream:
        base = Built(str(upstream), upstream.digest, "")
        rec.details["base_source"] = "upstream"
    else:
        base = build_base(ctx, rec, dest, epoch, rebuild=args.rebuild_base)
        rec.details["base_source"] = "mmdebstrap"
    rec.add_oci(base.ref, base.digest, MANIFEST_MEDIA_TYPE, output=False)
    image = build_app(ctx, rec, dest, base.ref, epoch, revision)
    rec.add_oci(image.ref, image.digest, MANIFEST_MEDIA_TYPE)
    # What the image was made from, by SHA-512 (the SBOM's deployable hashes). An upstream
    # base's packages are not downloaded here: they have none, and the SBOM counts them.
    manifest = ctx.stage_dir("build") / "deployables.json"
    deployables.write(manifest, [*base.installed, *image.installed])
    rec.add_output(manifest, DEPLOYABLES_MEDIA_TYPE)
    rec.details.update(
        {
            "image": image.ref,
            "digest": image.digest,
            "tag": image.tag,
            "base_image": base.ref,
            "source_date_epoch": epoch,
            "revision": revision,
            "source_url": source_url(),
        }
    )
    atomic.write_json(ctx.stage_dir("build") / "image.json", rec.details)
    rec.add_output(ctx.stage_dir("build") / "image.json", "application/json")
    console.print(f"[green]build: pass[/] — {image.ref}")
    return "pass"
