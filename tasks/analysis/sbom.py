"""Talk 02 — describe what is inside: syft SBOMs (SPDX 2.3 and CycloneDX 1.6 JSON).

For the pushed image, by digest (never a tag), and for the source tree. Each document is
checked for its format version and recorded with its sha256.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE, SYFT_JSON_MEDIA_TYPE

# syft's native JSON keeps the source (image digest) grype needs to match VEX products.
# The text of Python distributions' METADATA rides along in syft-json: sbom_complete reads a
# package's Maintainer from it where syft's own metadata has no Author.
SYFT_ENV = {
    "SYFT_CHECK_FOR_APP_UPDATE": "false",
    "SYFT_REGISTRY_INSECURE_USE_HTTP": "true",
    "SYFT_FILE_CONTENT_GLOBS": "**/*.dist-info/METADATA,/usr/share/doc/*/copyright",
}
# Paths the source SBOM leaves out: outputs, caches and VCS metadata, not source.
SOURCE_EXCLUDES = ("./out", "./.git", "./.nox", "./.venv", "./**/__pycache__", "./.mypy_cache", "./.ruff_cache")


def check_document(path: Path, kind: str) -> int:
    """Fail closed on a document that is not the format version we promise; return package count."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(f"syft wrote an unreadable {kind} SBOM {path}: {exc}") from exc
    if kind == "spdx":
        if doc.get("spdxVersion") != "SPDX-2.3":
            raise ToolError(f"{path}: spdxVersion {doc.get('spdxVersion')!r}, expected SPDX-2.3")
        return len(doc.get("packages", []))
    if doc.get("bomFormat") != "CycloneDX" or doc.get("specVersion") != "1.6":
        raise ToolError(f"{path}: CycloneDX {doc.get('specVersion')!r}, expected 1.6")
    return len(doc.get("components", []))


@dataclass(frozen=True)
class Documents:
    """The three SBOMs syft writes for one subject: SPDX 2.3, CycloneDX 1.6 and its native JSON."""

    spdx: Path
    cyclonedx: Path
    native: Path

    def record(self, rec: StageRecord) -> dict[str, int]:
        """Check the (completed) documents' format versions; record them as outputs; package counts."""
        counts = {"spdx": check_document(self.spdx, "spdx"), "cyclonedx": check_document(self.cyclonedx, "cyclonedx")}
        rec.add_output(self.spdx, SPDX_MEDIA_TYPE)
        rec.add_output(self.cyclonedx, CYCLONEDX_MEDIA_TYPE)
        rec.add_output(self.native, SYFT_JSON_MEDIA_TYPE)
        return counts


def generate(ctx: Context, rec: StageRecord, source: str, stem: str, extra: Sequence[str] = ()) -> Documents:
    """syft over ``source``; the documents are recorded once they are complete (Documents.record)."""
    out = ctx.stage_dir("sbom")
    docs = Documents(out / f"{stem}.spdx.json", out / f"{stem}.cdx.json", out / f"{stem}.syft.json")
    for path in (docs.spdx, docs.cyclonedx, docs.native):
        path.unlink(missing_ok=True)
    runner.run(
        rec,
        ctx.tool("syft"),
        [
            "scan",
            source,
            *extra,
            "--quiet",
            "-o",
            f"spdx-json@2.3={docs.spdx}",
            "-o",
            f"cyclonedx-json@1.6={docs.cyclonedx}",
            "-o",
            f"syft-json={docs.native}",
        ],
        env=SYFT_ENV,
        cwd=ctx.root,
        timeout=1800,
    )
    check_document(docs.spdx, "spdx")
    check_document(docs.cyclonedx, "cyclonedx")
    return docs
