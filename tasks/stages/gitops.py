"""nox -s gitops

Talk 03, GitOps for applications and infrastructure, applied: Argo CD (tools.lock) reads
infra/gitops from a copy of this repository and syncs it into the local engine's cluster, where
the same admission webhooks as `deploy` judge what it applies.

1. The release: a commit naming the image this pipeline built and signed, by digest; Argo CD syncs
   the app of apps, then the admission policies and the chart at their pinned commits; the
   ReplicaSet's pods are admitted.
2. The attack: a commit naming an image that was never signed. Argo CD applies it; policy-controller
   refuses the Deployment, so the sync fails and the signed release keeps running.
3. The rollback: ``git revert`` of that commit; Argo CD syncs again.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Sequence
from typing import Any

from tasks import admission
from tasks.admission import manifests
from tasks.cluster import (
    Kube,
    admitted_pods,
    argocd,
    built_image,
    cluster_tools,
    desired_state,
    engines,
    exists,
    poll,
    unsigned_image,
)
from tasks.cluster.errors import ClusterError
from tasks.cluster.netns import apply
from tasks.cluster.state import recorded_state
from tasks.cluster.webhooks import documents, write_manifests
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.image_ref import ImageRef

ROOT, POLICIES, SERVER = manifests.ROOT_APP, "admission-policies", "secure-iot"
SYNC_S = 180.0
DENIED = 'admission webhook "policy.sigstore.dev" denied the request'
REFUSAL = re.compile(r"no signatures found|no matching signatures|no matching attestations")
TOOLS = ("ip", "kubectl", "helm", "git", "argocd", "redis-server")


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s gitops", description="Argo CD syncs infra/gitops into the local cluster; admission still decides"
    ).parse_args(argv)
    state = recorded_state(ctx)
    if not engines.recorded(state).hosts_processes:
        raise ClusterError(
            "gitops runs Argo CD's controller and repo server as processes beside the local engine's API server: "
            "`nox -s teardown`, then `nox -s cluster -- --engine local`"
        )
    image = built_image(ctx, rec)
    repository, digest = image.repository, image.digest
    unsigned = unsigned_image(ctx, f"{repository}@{digest}")
    tools = cluster_tools(ctx, TOOLS)
    kube = Kube(ctx, rec, None, tools, state.cluster, netns=state.netns)
    root = ctx.stage_dir("gitops")
    crds = manifests.pinned_crds(ctx, rec)
    rec.details["stopped_earlier_run"] = argocd.stop_recorded(ctx)
    mirror = desired_state.create(ctx, rec, tools["git"], root)
    registry = desired_state.registry_change(mirror, rec, repository.split("/", 1)[0])
    release = desired_state.commit_release(
        mirror, rec, repository, digest, f"release: {repository}@{digest}", policies=registry
    )
    pinned = {a["metadata"]["name"]: a["spec"]["source"]["targetRevision"] for a in applications(mirror)}
    rec.details["registry_commit"] = registry  # None: the pinned policies allow this run's registry

    crd_docs = [d for p in crds for d in documents(p)]
    earlier = all(exists(kube, f"crd/{d['metadata']['name']}") for d in crd_docs)
    docs = [*argocd.settings(), *crd_docs]  # read by both components at start
    apply(rec, tools["ip"], state.netns, tools["kubectl"], kube.env(), write_manifests(root / "argocd.yaml", docs))
    for doc in crd_docs:  # polled: `kubectl wait` errors out while a new CRD has no conditions yet
        crd = f"crd/{doc['metadata']['name']}"
        poll(f"{crd} to be established", 60, functools.partial(established, kube, crd))
    if earlier:  # every run bootstraps from nothing: an earlier run's Applications go (not what they deployed)
        kube.kubectl("delete", "applications,appprojects", "--all", "-n", argocd.NAMESPACE, "--wait=true")
    rec.details["pids"] = argocd.start(ctx, rec, tools, state, root, mirror.base)
    for name in ("project.yaml", "root.yaml"):  # the bootstrap: everything else comes from Git
        kube.kubectl("apply", "-f", mirror.work / manifests.GITOPS / name)

    checks = [release_synced(kube, release, pinned, repository, digest)]
    if checks[0].passed:
        refused = unsigned_refused(kube, mirror, rec, unsigned, f"{repository}@{digest}")
        checks.append(refused)
        if refused.passed:
            checks.append(rolled_back(kube, mirror, rec, rec.details["unsigned_commit"], f"{repository}@{digest}"))
    rec.details.update(
        {
            "argocd": tools["argocd"].version,
            "release_commit": release,
            "image": f"{repository}@{digest}",
            "pinned": pinned,
            "netns": state.netns,
        }
    )
    return conclude(
        rec,
        "Argo CD applies infra/gitops; admission decides",
        checks,
        report=root / "report.json",
        document={"release_commit": release, "registry_commit": registry, "pinned": pinned},
    )


def applications(mirror: desired_state.Mirror) -> list[dict[str, Any]]:
    docs = manifests.load(mirror.work / manifests.GITOPS)
    return [d for d in docs if d.get("kind") == "Application" and d["metadata"]["name"] != ROOT]


def established(kube: Kube, crd: str) -> bool:
    jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
    done = kube.kubectl("get", crd, "-o", f"jsonpath={jsonpath}", check=False, record=False)
    return done.returncode == 0 and done.stdout.strip() == "True"


def deployed_image(kube: Kube) -> str:
    done = kube.kubectl(
        "get",
        "deployment",
        "-n",
        admission.NAMESPACE,
        "-l",
        f"app.kubernetes.io/instance={admission.RELEASE}",
        "-o",
        "jsonpath={.items[0].spec.template.spec.containers[0].image}",
        check=False,
    )
    return done.stdout.strip()


def all_synced(kube: Kube, revisions: dict[str, str]) -> bool:
    return all(argocd.in_sync(argocd.application(kube, name), rev) for name, rev in revisions.items())


def release_synced(kube: Kube, release: str, pinned: dict[str, str], repository: str, digest: str) -> Check:
    revisions = {ROOT: release, **pinned}
    what = f"{ROOT} at {release[:12]}, " + ", ".join(f"{n} at {r[:12]}" for n, r in pinned.items())
    expected = "every Application Synced at its commit; the pods admitted; the signed image deployed"
    try:
        argocd.wait_for(kube, what, SYNC_S, functools.partial(all_synced, kube, revisions))
        pods = admitted_pods(kube)
    except ClusterError as exc:
        return Check("release synced by Argo CD", False, str(exc), expected)
    image = deployed_image(kube)
    return Check(
        "release synced by Argo CD",
        image == f"{repository}@{digest}",
        f"{what}; {len(pods)} pod(s) admitted; Deployment runs {image}",
        expected,
    )


def unsigned_refused(kube: Kube, mirror: desired_state.Mirror, rec: StageRecord, unsigned: str, signed: str) -> Check:
    """A commit naming an image that was never signed: synced by Argo CD, refused by policy-controller."""
    name = "a commit naming an unsigned image: refused at admission"
    expected = f"the {SERVER} sync fails with {DENIED!r}; the signed release keeps running"
    never_signed = ImageRef.maybe(unsigned)
    if never_signed is None:
        return Check(name, False, f"{unsigned}: not an image by digest", expected)
    repository, digest = never_signed.repository, never_signed.digest
    bad = desired_state.commit_release(mirror, rec, repository, digest, f"release: {unsigned} (never signed)")
    rec.details["unsigned_commit"] = bad
    argocd.refresh(kube, ROOT)

    def refused() -> list[str]:
        server = argocd.application(kube, SERVER)
        return [m for m in argocd.refusals(server, argocd.sync_revision(server)) if DENIED in m]

    try:
        root_at(kube, bad, f"{ROOT} at {bad[:12]}")
        argocd.refresh(kube, SERVER)
        messages = argocd.wait_for(kube, f"policy-controller to refuse {SERVER}'s Deployment", SYNC_S, refused)
    except ClusterError as exc:
        return Check(name, False, str(exc), expected)
    image = deployed_image(kube)
    found = sorted(set(REFUSAL.findall(messages[0]))) or [" ".join(messages[0].split())[:160]]
    shown = (
        f"commit {bad[:12]} synced; the Deployment refused by policy-controller ({', '.join(found)}); "
        "the signed release still runs"
    )
    return Check(name, image == signed, shown if image == signed else f"Deployment now runs {image}", expected)


def root_at(kube: Kube, revision: str, what: str) -> None:
    """Wait until the app of apps is in sync at ``revision`` (its children's specs then follow Git)."""
    argocd.wait_for(kube, what, SYNC_S, lambda: argocd.in_sync(argocd.application(kube, ROOT), revision))


def rolled_back(kube: Kube, mirror: desired_state.Mirror, rec: StageRecord, bad: str, signed: str) -> Check:
    """The revert: Git names the signed release again, which is what still runs; Argo CD reports
    the application in sync and no operation left running (the refused one ends Failed: history)."""
    name = "git revert of it: desired state and cluster agree again"
    expected = f"{ROOT} Synced at the revert; {SERVER} Synced, no operation running, the signed image deployed"
    revert = desired_state.revert(mirror, rec, bad)
    rec.details["revert_commit"] = revert
    argocd.refresh(kube, ROOT)

    def settled() -> bool:
        server = argocd.application(kube, SERVER)
        return argocd.in_sync(server, argocd.sync_revision(server))

    try:
        root_at(kube, revert, f"{ROOT} at the revert {revert[:12]}")
        argocd.refresh(kube, SERVER)
        argocd.wait_for(kube, f"{SERVER} in sync with no operation running", SYNC_S, settled)
    except ClusterError as exc:
        return Check(name, False, str(exc), expected)
    image = deployed_image(kube)
    return Check(
        name,
        image == signed,
        f"revert {revert[:12]}; {SERVER}: {argocd.summary(argocd.application(kube, SERVER))}; Deployment runs {image}",
        expected,
    )
