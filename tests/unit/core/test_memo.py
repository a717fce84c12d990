"""tasks.core.memo: a record comes back only under the key it was stored with, and never from a broken file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.core import memo

if TYPE_CHECKING:
    from pathlib import Path


def test_recall_only_under_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "memo" / "q.json"
    assert memo.recall(path, "k1") is None
    memo.remember(path, "k1", {"answer": 42})
    assert memo.recall(path, "k1") == {"answer": 42, "key": "k1"}
    assert memo.recall(path, "k2") is None
    assert memo.recall(path, None) is None
    path.write_text("{not json")
    assert memo.recall(path, "k1") is None
    path.write_text("[1, 2]")
    assert memo.recall(path, "k1") is None
