"""out/report.html in a real browser (Debian's chromium, driven by Playwright), network refused.

It renders, asks for nothing outside the file, runs no script planted in the evidence, and the
numbers on the page are the evidence's. A screenshot is saved under out/ for the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks import report, toolchain
from tasks.context import Context
from tasks.core import atomic
from tasks.core.evidence import EvidenceStore, StageRecord
from tests.support.report_fixture import evidence

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


def test_report_renders_offline_with_the_evidence_numbers(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = toolchain.resolve("chromium", REPO, StageRecord("test", REPO))
    ctx = Context(tmp_path, tmp_path / "out", tmp_path / "p.yaml", EvidenceStore(tmp_path / "out" / "evidence.json"))
    data = evidence(tmp_path)
    page_file = tmp_path / "out" / "report.html"
    atomic.write_text(page_file, report.page.render(report.build(ctx, data, list(data["stages"]), [])))
    requested: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium.path), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, java_script_enabled=True)
            page = context.new_page()

            def refuse(route: object) -> None:
                url = route.request.url  # type: ignore[attr-defined]
                if not url.startswith("file://"):
                    requested.append(url)
                    route.abort()  # type: ignore[attr-defined]
                else:
                    route.continue_()  # type: ignore[attr-defined]

            page.route("**/*", refuse)
            page.on("request", lambda r: None if r.url.startswith("file://") else requested.append(r.url))
            page.goto(page_file.as_uri())
            assert page.title() == "secure-iot evidence report"
            assert page.locator("#stage-count").inner_text() == str(len(data["stages"]))
            assert page.locator("#sast-blocking").inner_text() == str(data["stages"]["sast"]["details"]["blocking"])
            assert page.locator("#overall").inner_text() == "fail"  # sast failed in the evidence
            assert page.locator("#commit").inner_text() == data["stages"]["build"]["details"]["revision"]
            assert page.locator('[data-duration="build"]').inner_text() == "20.0s"
            assert page.locator("svg.custody g.node").count() == 4  # commit, build, sbom, verify
            assert page.locator('[data-checks="verify"]').inner_text() == "1/2"
            assert page.evaluate("() => window.pwned") is None  # the planted <script> stayed text
            shot = REPO / "out" / "report-test.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    assert requested == []
