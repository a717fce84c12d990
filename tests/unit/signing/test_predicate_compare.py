"""A predicate read back from cosign compares equal to the file it was attested from."""

from __future__ import annotations

from tasks.signing.attach import _folded


def test_go_time_and_go_json_tags_do_not_make_an_identical_predicate_differ() -> None:
    attested = {"metadata": {"scanStartedOn": "2026-11-30T16:43:50.196540Z", "invocationId": "urn:uuid:1"}}
    read_back = {"metadata": {"scanStartedOn": "2026-11-30T16:43:50.19654Z", "invocationID": "urn:uuid:1"}}
    assert _folded(attested) == _folded(read_back)
    assert _folded("2026-11-30T16:43:50.000000Z") == "2026-11-30T16:43:50Z"


def test_a_different_instant_or_value_still_differs() -> None:
    assert _folded({"t": "2026-11-30T16:43:50.1Z"}) != _folded({"t": "2026-11-30T16:43:50.2Z"})
    assert _folded({"t": "2026-11-30T16:43:50Z"}) != _folded({"t": "2026-11-30T16:43:51Z"})
    assert _folded({"v": "1.10"}) != _folded({"v": "1.1"})
