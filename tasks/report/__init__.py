"""The evidence report: out/report.html (self-contained) and its markdown twin, from the evidence only."""

from __future__ import annotations

from tasks.report import history, markdown, model, page, svg
from tasks.report.model import Report, build

__all__ = ["Report", "build", "history", "markdown", "model", "page", "svg"]
