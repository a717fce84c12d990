"""Provenance statements against the shipped in-toto v1 and SLSA Provenance v1 schemas."""

from __future__ import annotations

import copy

import pytest

from tasks.core.errors import InputError
from tasks.statements.provenance import Provenance, ResourceDescriptor, validate
from tests.support.project import REPO

GOOD = Provenance(
    subject_name="127.0.0.1:5000/secure-iot-server",
    subject_digest="ab" * 32,
    external_parameters={"repository": "urn:secure-iot:local", "ref": "refs/heads/main", "commit": "c" * 40},
    internal_parameters={"sourceDateEpoch": 1764000000},
    resolved_dependencies=[ResourceDescriptor("file:tools.lock", {"sha256": "d" * 64}, "tools.lock")],
    builder_id="urn:secure-iot:builder:local-nox",
    builder_version={"secure-iot-pipeline": "0.1.0"},
    invocation_id="urn:uuid:00000000-0000-4000-8000-000000000000",
    started_on="2026-11-25T10:00:00Z",
    finished_on="2026-11-25T10:01:00Z",
)


def test_a_complete_statement_validates() -> None:
    validate(GOOD.statement(), REPO)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s["predicate"].pop("buildDefinition"), "buildDefinition"),
        (lambda s: s["predicate"]["runDetails"]["builder"].pop("id"), "id"),
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "_type"),
        (lambda s: s["subject"][0]["digest"].update(sha256="not-hex"), "sha256"),
        (lambda s: s["predicate"]["runDetails"].update(extra=1), "extra"),
    ],
)
def test_a_broken_statement_names_the_field(change: object, where: str) -> None:
    statement = copy.deepcopy(GOOD.statement())
    change(statement)  # type: ignore[operator]
    with pytest.raises(InputError, match=where):
        validate(statement, REPO)
