"""A stage's input fingerprint: what it ran on, with what, under which rules, by which code.

sha256 over a canonical JSON of: the stage's arguments, the digests of its recorded inputs
(files re-hashed now), the tools.lock pins of the tools it recorded, the policy file's digest,
and the digest of its own code (its stage module and every tasks module it imports,
transitively, found by reading the imports, not by running them).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.core import atomic

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds tasks/


def module_file(module: str, root: Path = PACKAGE_ROOT) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imports(path: Path) -> frozenset[str]:
    """The tasks modules ``path`` imports (parsed once a process: stages share most of their code)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from tasks import report`
    return frozenset(name for name in found if name == "tasks" or name.startswith("tasks."))


@functools.cache
def code_files(module: str, root: Path = PACKAGE_ROOT) -> tuple[Path, ...]:
    """``module``'s file and those of every tasks module it imports, transitively (parents included)."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a package's __init__ runs when a submodule is imported
            prefix = ".".join(parts[:i])
            path = module_file(prefix, root)
            if prefix in seen or path is None:
                continue
            seen[prefix] = path
            todo += sorted(_imports(path))
    return tuple(sorted(seen.values()))


def code_digest(module: str, root: Path = PACKAGE_ROOT) -> str:
    digest = hashlib.sha256()
    for path in code_files(module, root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(atomic.sha256_file(path).encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def file_digest(path: Path) -> str:
    return "sha256:" + atomic.sha256_file(path) if path.is_file() else "missing"


def compute(
    *,
    argv: Sequence[str],
    inputs: Iterable[Mapping[str, Any]],
    tool_pins: Mapping[str, Any],
    policy_digest: str,
    code: str,
    extra: Mapping[str, Any] | None = None,
) -> str:
    document = {
        "argv": list(argv),
        "inputs": sorted(f"{i.get('kind', 'file')}:{i.get('name')}:{i.get('digest')}" for i in inputs),
        "tools": tool_pins,
        "policy": policy_digest,
        "code": code,
        "extra": dict(extra or {}),
    }
    return "sha256:" + hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()
