"""What the GitOps schemas cannot say (tasks/admission/manifests.py): repository, commit pin, image digest."""

from __future__ import annotations

import copy
from typing import Any

from tasks.admission import manifests
from tests.support.project import REPO

DOCS = manifests.load(REPO / manifests.GITOPS)


def apps() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in copy.deepcopy(DOCS) if d["kind"] == "Application"}


def problems(docs: list[dict[str, Any]], exists: Any = lambda commit, path: True) -> list[str]:
    return manifests.source_problems(docs, exists)


def test_the_committed_manifests_pin_every_application() -> None:
    assert sorted(apps()) == ["admission-policies", "secure-iot", "secure-iot-root"]
    assert problems(DOCS) == []


def test_a_branch_is_not_a_pin_except_for_the_root_app_of_apps() -> None:
    docs = copy.deepcopy(DOCS)
    server = next(d for d in docs if d["kind"] == "Application" and d["metadata"]["name"] == "secure-iot")
    server["spec"]["source"]["targetRevision"] = "main"
    assert problems(docs) == ["secure-iot: targetRevision 'main' is not a commit (40 hex digits): not by digest"]


def test_a_foreign_repository_a_missing_path_and_a_tag_are_refused() -> None:
    docs = copy.deepcopy(DOCS)
    by_name = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Application"}
    by_name["admission-policies"]["spec"]["source"]["repoURL"] = "https://attacker.invalid/policies.git"
    by_name["secure-iot"]["spec"]["source"]["helm"]["valuesObject"]["image"]["digest"] = "latest"
    found = problems(docs, exists=lambda commit, path: path != "infra/charts/secure-iot")
    assert found == [
        "admission-policies: repoURL https://attacker.invalid/policies.git is not in project secure-iot's sourceRepos",
        "secure-iot: infra/charts/secure-iot does not exist at commit f26d3551c660 of this repository",
        "secure-iot: image.digest 'latest' is not sha256:<64 hex>",
    ]


def test_closed_schemas_refuse_unknown_fields_but_keep_preserved_objects_open() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"b": {"type": "string"}},
            }
        },
    }
    out = manifests.closed(schema)
    assert out["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]["a"]
    assert "additionalProperties" not in schema  # the input is not changed
