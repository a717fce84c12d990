"""The secure-iot Helm chart: lint, refuse a tag, render by digest."""

from __future__ import annotations

from pathlib import Path

import yaml

from tasks.admission.subject import CHART, NAMESPACE, RELEASE, STAGE, Image, expect
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.checks import Check
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool


def helm_env(ctx: Context) -> dict[str, str]:
    """Helm sees no user configuration, repositories or plugins: only the chart on disk."""
    home = ctx.stage_dir(STAGE) / "helm-home"
    return {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def image_values(image: Image) -> list[str]:
    return ["--set-string", f"image.repository={image.repository}", "--set-string", f"image.digest={image.digest}"]


def lint_chart(ctx: Context, rec: StageRecord, helm: Tool, image: Image) -> Check:
    done = runner.run(
        rec, helm, ["lint", "--strict", CHART, *image_values(image)], env=helm_env(ctx), cwd=ctx.root, check=False
    )
    findings = [
        line for line in (done.stdout + done.stderr).splitlines() if line.strip().startswith(("[ERROR]", "[WARNING]"))
    ]
    passed = done.returncode == 0 and not findings
    outcome = "clean" if passed else "; ".join(findings[:3]) or done.tail()
    return expect("helm lint --strict", "no lint findings", outcome, passed)


def tag_refused(ctx: Context, rec: StageRecord, helm: Tool) -> Check:
    """A tag-only image must not render: the chart deploys by digest or not at all."""
    done = runner.run(
        rec,
        helm,
        ["template", RELEASE, CHART, "--namespace", NAMESPACE, "--set-string", "image.tag=latest"],
        env=helm_env(ctx),
        cwd=ctx.root,
        check=False,
    )
    message = next((line for line in done.stderr.splitlines() if "image.tag" in line), done.tail())
    refused = done.returncode != 0 and "is not allowed" in message
    outcome = f"refused: {message.split('): ', 1)[-1]}" if refused else f"NOT refused (exit {done.returncode})"
    return expect("chart refuses a tag", "helm template fails: image.tag is not allowed", outcome, refused)


def render_chart(ctx: Context, rec: StageRecord, helm: Tool, image: Image) -> tuple[Path | None, Check]:
    """`helm template` with the image by digest; the Deployment must run exactly that ref."""
    chart = ctx.inside(CHART)
    for name in ("Chart.yaml", "values.yaml"):
        rec.add_input(chart / name, "application/yaml")
    done = runner.run(
        rec,
        helm,
        ["template", RELEASE, CHART, "--namespace", NAMESPACE, *image_values(image)],
        env=helm_env(ctx),
        cwd=ctx.root,
        check=False,
    )
    expected = f"Deployment runs {image.ref}"
    if done.returncode != 0:
        return None, expect("chart renders by digest", expected, f"helm template failed: {done.tail()}", False)
    rendered = ctx.stage_dir(STAGE) / "rendered" / f"{RELEASE}.yaml"
    atomic.write_text(rendered, done.stdout)
    rec.add_output(rendered, "application/yaml")
    images = sorted(
        {
            c.get("image", "")
            for doc in yaml.safe_load_all(done.stdout)
            if isinstance(doc, dict) and doc.get("kind") == "Deployment"
            for c in doc["spec"]["template"]["spec"].get("containers", [])
        }
    )
    passed = images == [image.ref]
    outcome = f"{len(images)} image(s): {', '.join(images) or 'no Deployment rendered'}"
    return rendered, expect("chart renders by digest", expected, outcome, passed)
