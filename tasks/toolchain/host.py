"""Host prerequisites, not pinned: the machine's own git (and Go, for the go route).

Their versions are recorded in the evidence like any tool's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.runner import Tool

# Host prerequisites, not pinned: the machine's own git (and Go, for the go route). Their
# version is recorded in the evidence like any tool's.
HOST_TOOLS = {"git": ["--version"], "go": ["version"]}


def host_tool(name: str) -> Tool:
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name}: not found on PATH; install it with your system's package manager")
    version = "unknown"
    if HOST_TOOLS[name]:
        words = runner.probe(Tool(name, "unknown", Path(found), route="host"), HOST_TOOLS[name]).stdout.split()
        version = next((w.removeprefix("go") for w in words if w[:1].isdigit() or w.startswith("go1")), "unknown")
    return Tool(name, version, Path(found), route="host")
