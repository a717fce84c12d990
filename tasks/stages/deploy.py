"""nox -s deploy"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from tasks import admission, signing
from tasks.cluster import admitted_pods, built_image, ready
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core import runner
from tasks.core.console import console
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s deploy", description="the chart, by digest, into the protected namespace"
    ).parse_args(argv)
    kube, state = ready(ctx, rec)
    image = built_image(ctx, rec)
    repository, digest = image.repository, image.digest
    local = oci_registry.configured()
    if not repository.startswith(f"{local.address}/"):
        raise InputError(f"{repository}: deploy copies from the local registry {local.address} only")
    oci_registry.ensure_running(ctx, rec)
    local_engine = state.engine == "local"
    if not local_engine:  # kind's nodes pull from the registry container: the image, .sig and .att tags
        path = repository.split("/", 1)[1]
        runner.run(
            rec,
            ctx.tool("cosign"),
            [
                "copy",
                "--force",
                *signing.registry_flags(repository),
                f"{repository}@{digest}",
                f"{state.push_address}/{path}",
            ],
            timeout=600,
        )
    # no kubelet on the local engine: nothing ever becomes Ready, so what was admitted is checked
    wait = [] if local_engine else ["--wait", "--timeout", "5m"]
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
            f"image.repository={repository}",
            "--set-string",
            f"image.digest={digest}",
            *wait,
        ],
        check=False,
        timeout=600,
    )
    rec.details.update({"image": f"{repository}@{digest}", "namespace": admission.NAMESPACE})
    if done.returncode != 0:
        rec.reason = f"helm upgrade --install {admission.RELEASE} failed: {done.tail(2)}"
        console.print(f"[red]deploy: FAIL[/] — {escape(rec.reason)}")
        return "fail"
    if local_engine:
        pods = admitted_pods(kube)
        rec.details["pods"] = pods
        console.print(
            f"[green]deploy: PASS[/] — {admission.RELEASE} admitted: Deployment -> ReplicaSet -> {len(pods)} pod(s) "
            f"{', '.join(pods)} in {admission.NAMESPACE}, Pending (the local engine runs no kubelet)"
        )
        return "pass"
    console.print(
        f"[green]deploy: PASS[/] — {admission.RELEASE} runs {repository}@{digest} in namespace {admission.NAMESPACE}"
    )
    return "pass"
