"""infra/gitops/ against the pinned Argo CD CRDs with the real kubeconform (issue #15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.admission import manifests
from tasks.context import Context
from tasks.core.evidence import StageRecord
from tests.support.project import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    rec = StageRecord(stage="policy", root=REPO)
    return Context.create(REPO, tmp_path_factory.mktemp("gitops") / "out").bind(rec)


def check(ctx: Context, files: list[Path]) -> tuple[bool, str]:
    rec = StageRecord(stage="policy", root=REPO)
    ctx.bind(rec)
    got = manifests.kubeconform_check(ctx, rec, files)
    return got.passed, got.detail


def test_the_committed_manifests_are_valid(ctx: Context) -> None:
    passed, detail = check(ctx, sorted((REPO / manifests.GITOPS).glob("*.yaml")))
    assert passed, detail
    assert detail == "4 resources valid in 4 files"


def test_a_misspelt_field_and_a_kind_without_a_schema_fail(ctx: Context, tmp_path: Path) -> None:
    typo = tmp_path / "server.yaml"
    typo.write_text((REPO / manifests.GITOPS / "server.yaml").read_text().replace("targetRevision:", "targetRevison:"))
    passed, detail = check(ctx, [typo])
    assert not passed and "targetRevison" in detail, detail
    unknown = tmp_path / "helmrelease.yaml"
    unknown.write_text("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: x}\nspec: {}\n")
    passed, detail = check(ctx, [unknown])
    assert not passed and "HelmRelease" in detail, detail


def test_edited_pins_are_refused(ctx: Context, tmp_path: Path) -> None:
    shutil.copytree(REPO / manifests.GITOPS, tmp_path / "gitops")
    crds = tmp_path / "gitops" / "crds.toml"
    assert 'version = "v3.6.1"' in crds.read_text()
    # a CRD file whose pinned sha256 is wrong: refused before any schema is generated
    text = crds.read_text().replace('= "9fd0da3e', '= "0fd0da3e')
    project = tmp_path / "project"
    (project / manifests.GITOPS).mkdir(parents=True)
    (project / manifests.CRDS).write_text(text)
    shutil.copy(REPO / "tools.lock", project / "tools.lock")
    (project / "tools" / "argocd").mkdir(parents=True)
    shutil.copy(REPO / manifests.ENGINE_MODULE, project / manifests.ENGINE_MODULE)
    other = Context.create(project, tmp_path / "out")
    rec = StageRecord(stage="policy", root=project)
    other.bind(rec)
    with pytest.raises(Exception, match=r"application-crd\.yaml: sha256 9fd0da3e.*pins 0fd0da3e"):
        manifests.pinned_crds(other, rec)
