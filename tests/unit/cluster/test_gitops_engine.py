"""`nox -s gitops`'s own logic, without a cluster: the release edit of infra/gitops/server.yaml,
Argo CD's sync verdicts as read from an Application, and the Argo CD version/toolchain pins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.admission import manifests
from tasks.cluster import argocd, desired_state
from tasks.context import Context
from tasks.core.errors import InputError
from tasks.toolchain.go import module_toolchain
from tests.support.project import REPO

SERVER = (REPO / desired_state.SERVER_APP).read_text()
DIGEST = "sha256:" + "ab" * 32


def test_the_release_edit_names_the_image_and_keeps_the_rest() -> None:
    edited = desired_state.with_image(SERVER, "127.0.0.1:41234/secure-iot-server", DIGEST)
    doc, before = yaml.safe_load(edited), yaml.safe_load(SERVER)
    image = doc["spec"]["source"]["helm"]["valuesObject"]["image"]
    assert image == {"repository": "127.0.0.1:41234/secure-iot-server", "digest": DIGEST}
    doc["spec"]["source"]["helm"]["valuesObject"]["image"] = before["spec"]["source"]["helm"]["valuesObject"]["image"]
    assert doc == before  # nothing but the two values changed
    assert [line for line in edited.splitlines() if line.lstrip().startswith("#")] == [
        line for line in SERVER.splitlines() if line.lstrip().startswith("#")
    ]  # comments kept


@pytest.mark.parametrize(
    "text",
    [
        SERVER.replace("digest:", "sha:"),  # no digest line
        SERVER + "    repository: elsewhere\n",  # two repository lines
        SERVER.replace("valuesObject:", "parameters:"),  # the lines are not the Helm values' image
    ],
)
def test_a_server_app_the_edit_cannot_be_sure_of_is_refused(text: str) -> None:
    with pytest.raises(InputError, match=desired_state.SERVER_APP):
        desired_state.with_image(text, "r", DIGEST)


def app(sync: str, revision: str, phase: str = "", resources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"sync": {"status": sync, "revision": revision}}
    if phase:
        status["operationState"] = {"phase": phase, "syncResult": {"revision": revision, "resources": resources or []}}
    return {"status": status}


def test_in_sync_needs_the_revision_and_no_operation_running() -> None:
    rev = "f" * 40
    assert argocd.in_sync(app("Synced", rev), rev)
    assert argocd.in_sync(app("Synced", rev, "Failed"), rev)  # a refused attempt is history, not a state
    assert not argocd.in_sync(app("Synced", rev, "Running"), rev)  # still retrying
    assert not argocd.in_sync(app("OutOfSync", rev), rev)
    assert not argocd.in_sync(app("Synced", "e" * 40), rev)
    assert not argocd.in_sync({}, rev)


def test_refusals_are_the_failed_resources_of_that_revision() -> None:
    rev = "f" * 40
    failed = {"kind": "Deployment", "name": "server", "status": "SyncFailed", "message": "denied"}
    ok = {"kind": "Service", "name": "server", "status": "Synced", "message": "unchanged"}
    assert list(argocd.refusals(app("Synced", rev, "Running", [ok, failed]), rev)) == ["Deployment/server: denied"]
    assert list(argocd.refusals(app("Synced", rev, "Running", [ok, failed]), "e" * 40)) == []
    assert "last operation Running" in argocd.summary(app("Synced", rev, "Running"))


def test_the_wrapper_builds_with_its_toolchain_line(tmp_path: Path) -> None:
    assert module_toolchain(REPO / manifests.ENGINE_MODULE) == "go1.27.3"
    plain = tmp_path / "go.mod"
    plain.write_text("module x\n\ngo 1.26.0\n")
    assert module_toolchain(plain) == ""


def test_a_crd_pin_other_than_the_running_argo_cd_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tools" / "argocd").mkdir(parents=True)
    text = (REPO / manifests.ENGINE_MODULE).read_text()
    (project / manifests.ENGINE_MODULE).write_text(text)
    ctx = Context.create(project, tmp_path / "out")
    assert manifests.engine_toolchain(ctx, argocd.MODULE, "v3.6.1") == "go1.27.3"
    with pytest.raises(InputError, match=r"argo-cd/v3@v3.5.7, tools/argocd/go.mod builds v3.6.1"):
        manifests.engine_toolchain(ctx, argocd.MODULE, "v3.5.7")
    (project / manifests.ENGINE_MODULE).unlink()
    assert manifests.engine_toolchain(ctx, argocd.MODULE, "v3.5.7") == ""  # no wrapper: nothing to agree with


def test_the_policies_can_be_repinned_to_one_commit_only() -> None:
    text = (REPO / desired_state.POLICIES_APP).read_text()
    edited = desired_state.with_revision(text, "c" * 40)
    assert yaml.safe_load(edited)["spec"]["source"]["targetRevision"] == "c" * 40
    with pytest.raises(InputError, match="one targetRevision"):
        desired_state.with_revision(text.replace("targetRevision:", "targetRevision: main\n    # was"), "c" * 40)
