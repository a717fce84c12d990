"""nox -s sign"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from tasks import signing
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core.evidence import StageRecord, Verdict
from tasks.subjects import IMAGE, SUBJECTS


def stale(ctx: Context, record: Mapping[str, Any]) -> str | None:
    """For the pipeline's up-to-date check: the firmware artifact `--subject firmware` pushed must
    still be in the registry, by digest and tag (the image's run pushes nothing: no OCI output)."""
    return oci_registry.unserved(record)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sign", description="cosign signature, attestations, blob bundles")
    parser.add_argument("--subject", choices=tuple(SUBJECTS), default=IMAGE.names.name, help="what to sign")
    subject = SUBJECTS[parser.parse_args(argv).subject]
    signer = signing.configured(ctx)
    return subject.sign(ctx, rec, signer)
