"""This source repository's identity (owner/name), from the environment: GitHub Actions or the user's setting."""

from __future__ import annotations

import os
from pathlib import Path


def source_repository() -> str:
    """owner/name of this repository: GITHUB_REPOSITORY in Actions, SECURE_IOT_SOURCE_REPOSITORY elsewhere."""
    return os.environ.get("GITHUB_REPOSITORY") or os.environ.get("SECURE_IOT_SOURCE_REPOSITORY", "")


# The checkout this package runs from (tasks/core/repository.py -> the repository root).
CHECKOUT = Path(__file__).resolve().parents[2]
