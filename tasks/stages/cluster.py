"""nox -s cluster"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

from tasks import admission
from tasks.cluster import (
    GATEKEEPER,
    Kube,
    State,
    cluster_policy,
    enforced,
    engines,
    gatekeeper_policies,
    poll,
    save,
)
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import STATE_MEDIA_TYPE


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(
        prog="nox -s cluster", description="a cluster with Gatekeeper, policy-controller and the policies"
    )
    parser.add_argument(
        "--engine",
        choices=("kind", "local"),
        help="kind (containers; Docker or Podman) or local (the API server and webhooks as processes); "
        "default: SECURE_IOT_CLUSTER_ENGINE, else kind where a container engine runs, else local",
    )
    args = parser.parse_args(argv)
    engine = engines.chosen(rec, args.engine)
    rec.details["engine_choice"] = engine.name
    kube, state, where = engine.up(ctx, rec)
    return policies(ctx, rec, kube, state, where)


def policies(ctx: Context, rec: StageRecord, kube: Kube, state: State, where: str) -> Verdict:
    """The same on both engines: templates and constraints, the protected namespace, the
    ClusterImagePolicy rendered from the shared Rego; done when Gatekeeper enforces them all."""
    constraints = gatekeeper_policies(kube)
    kube.kubectl("apply", "-f", admission.PROTECTED_NAMESPACE)
    state.policy = admission.rel(ctx, cluster_policy(kube, state))
    for kind_, constraint in constraints:
        poll(f"Gatekeeper to enforce {kind_} {constraint}", 180, functools.partial(enforced, kube, kind_, constraint))
    rec.add_output(save(ctx, state), STATE_MEDIA_TYPE)
    rec.details.update(
        {
            "cluster": state.cluster,
            "engine": state.engine,
            "netns": state.netns,
            "pids": state.pids,
            "charts": state.charts,
            "constraints": [c for _, c in constraints],
        }
    )
    console.print(
        f"[green]cluster: PASS[/] — {where}; Gatekeeper {GATEKEEPER.version} enforcing {len(constraints)} constraints; "
        f"policy-controller with {state.policy}; "
        f"namespace {admission.NAMESPACE} protected"
    )
    return "pass"
