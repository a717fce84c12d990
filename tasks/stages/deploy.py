"""nox -s deploy"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from tasks import admission
from tasks.cluster import built_image, engines
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core.console import console
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s deploy", description="the chart, by digest, into the protected namespace"
    ).parse_args(argv)
    engine, kube, state = engines.ready(ctx, rec)
    image = built_image(ctx, rec)
    local = oci_registry.configured()
    if image.registry != local.address:
        raise InputError(f"{image.repository}: deploy copies from the local registry {local.address} only")
    oci_registry.ensure_running(ctx, rec)
    engine.publish(ctx, rec, state, image)
    done = kube.run(
        "helm",
        [
            "upgrade",
            "--install",
            admission.RELEASE,
            admission.CHART,
            "--namespace",
            admission.NAMESPACE,
            "--set-string",
            f"image.repository={image.repository}",
            "--set-string",
            f"image.digest={image.digest}",
            *engine.helm_wait,
        ],
        check=False,
        timeout=600,
    )
    rec.details.update({"image": str(image), "namespace": admission.NAMESPACE})
    if done.returncode != 0:
        rec.reason = f"helm upgrade --install {admission.RELEASE} failed: {done.tail(2)}"
        console.print(f"[red]deploy: FAIL[/] — {escape(rec.reason)}")
        return "fail"
    console.print(f"[green]deploy: PASS[/] — {engine.deployed(kube, rec, image)}")
    return "pass"
