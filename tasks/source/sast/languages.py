"""Which language a repository file is written in: by name, by extension, then by shebang.

A *code* language is one a SAST scanner could read; the stage shows every code language the
repository holds and whether a scanner covers it. Documents and data (Markdown, JSON, TOML,
lock files) are counted but are not code: SAST does not apply to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Kind:
    name: str
    code: bool


# Code, by file extension. Languages without a scanner are listed too, so that a file of
# theirs shows up as "not covered" instead of vanishing.
CODE_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".go": "go",
    ".sh": "shell",
    ".bash": "shell",
    ".ksh": "shell",
    ".rego": "rego",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".containerfile": "dockerfile",
    ".dockerfile": "dockerfile",
    ".tpl": "go-template",
    ".zsh": "zsh",
    ".fish": "fish",
    ".ps1": "powershell",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".c": "c",
    ".h": "c",
    ".cc": "c++",
    ".cpp": "c++",
    ".hpp": "c++",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".pl": "perl",
    ".php": "php",
    ".lua": "lua",
    ".tf": "terraform",
    ".hcl": "hcl",
    ".its": "device-tree",
    ".dts": "device-tree",
    ".dtsi": "device-tree",
    ".bb": "bitbake",
    ".bbappend": "bitbake",
    ".mk": "make",
    ".cmake": "cmake",
    ".nix": "nix",
}

DATA_EXTENSIONS: dict[str, str] = {
    ".md": "markdown",
    ".rst": "restructuredtext",
    ".txt": "text",
    ".in": "requirements",
    ".json": "json",
    ".toml": "toml",
    ".lock": "lock",
    ".sum": "go-module",
    ".mod": "go-module",
    ".xxh64": "checksum",
    ".csv": "csv",
    ".cfg": "config",
    ".ini": "config",
    ".conf": "config",
    ".config": "config",
    ".pem": "key-material",
    ".pub": "key-material",
    ".png": "image",
    ".svg": "image",
}

FILENAMES: dict[str, Kind] = {
    "Containerfile": Kind("dockerfile", True),
    "Dockerfile": Kind("dockerfile", True),
    "Makefile": Kind("make", True),
    "CODEOWNERS": Kind("config", False),
    "allowed_signers": Kind("key-material", False),
    ".gitignore": Kind("config", False),
    ".helmignore": Kind("config", False),
    ".dockerignore": Kind("config", False),
}

# `#!/usr/bin/env bash`, `#!/bin/sh -e`: the interpreter's name decides.
INTERPRETERS: dict[str, str] = {
    "sh": "shell",
    "bash": "shell",
    "dash": "shell",
    "ksh": "shell",
    "python": "python",
    "python3": "python",
    "zsh": "zsh",
    "fish": "fish",
    "node": "javascript",
    "perl": "perl",
    "ruby": "ruby",
    "pwsh": "powershell",
}
SHEBANG = re.compile(rb"^#!\s*(\S+)(?:\s+(\S+))?")
UNRECOGNISED = Kind("unrecognised", False)


def _interpreter(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            first = handle.readline(256)
    except OSError:
        return None
    match = SHEBANG.match(first)
    if match is None:
        return None
    program = PurePosixPath(match.group(1).decode(errors="replace")).name
    if program == "env" and match.group(2):
        program = match.group(2).decode(errors="replace")
    return re.sub(r"[\d.]+$", "", program) or program


def classify(root: Path, rel: str) -> Kind:
    """The kind of the repository file ``rel`` (repo-relative, POSIX separators)."""
    name = PurePosixPath(rel).name
    if name in FILENAMES:
        return FILENAMES[name]
    if name.startswith(("Containerfile.", "Dockerfile.")):
        return Kind("dockerfile", True)
    suffix = PurePosixPath(name).suffix
    if suffix in CODE_EXTENSIONS:
        return Kind(CODE_EXTENSIONS[suffix], True)
    if suffix in DATA_EXTENSIONS:
        return Kind(DATA_EXTENSIONS[suffix], False)
    interpreter = _interpreter(root / rel)
    if interpreter is not None:
        return Kind(INTERPRETERS.get(interpreter, interpreter), True)
    return UNRECOGNISED
