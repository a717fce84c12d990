"""A signed, attested image on a registry of its own: shared by the integration tests.

build → sbom → scan → compliance → provenance → keys → sign, once per test session, on a free loopback
port, with a test-only key pair. Tests that change things make their own small images
(``variant``) instead of touching this one, except where they restore it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.admission import cluster_image_policy
from tasks.container.build import buildah_args
from tasks.core.processes import free_port
from tasks.policy import security_policy as policy_mod
from tasks.policy.security_policy import Policy
from tests.support.project import REPO, pinned, run_tasks

PASSWORD = secrets.token_urlsafe(24)  # the test-only key pair is generated per run, and so is its password


@dataclass
class Chain:
    env: dict[str, str]
    out: Path
    keys: Path
    ref: str
    repository: str
    tag: str
    workdir: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        result = run_tasks(*args, root=REPO, env={**self.env, **(env or {})})
        return result.returncode, result.output

    def verify(self, ref: str | None = None) -> tuple[int, dict[str, Any], str]:
        code, output = self.run("verify", *(["--image", ref] if ref else []))
        report = self.out / "verify" / "report.json"
        return code, json.loads(report.read_text()) if report.exists() else {}, output


def sh(*argv: object, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    return proc.stdout


def signed_chain(work: Path) -> Iterator[Chain]:
    """Build and sign the chain under ``work``; stop its registry afterwards."""
    port = free_port()
    env = {
        "SECURE_IOT_OUT": str(work / "out"),
        "SECURE_IOT_KEY_DIR": str(work / "keys"),
        "SECURE_IOT_REGISTRY_PORT": str(port),
        "SECURE_IOT_REGISTRY_DIR": str(work / "registry"),
        "COSIGN_PASSWORD": PASSWORD,
        "SECURE_IOT_SIGNING": "key",
    }
    chain = Chain(env, work / "out", work / "keys", "", f"127.0.0.1:{port}/secure-iot-server", "", work)
    try:
        for stage in ("build", "sbom", "scan", "compliance", "provenance", "keys", "sign"):
            code, output = chain.run(stage)
            assert code == 0, f"{stage}: {output[-3000:]}"
        build = json.loads((chain.out / "evidence.json").read_text())["stages"]["build"]["details"]
        chain.ref, chain.tag = build["image"], build["tag"]
        yield chain
    finally:
        chain.run("registry", "stop")


def copy_image(src: str, dst: str) -> None:
    """skopeo copy between references in loopback registries."""
    sh(
        pinned("skopeo"),
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{src}",
        f"docker://{dst}",
    )


def variant(chain: Chain, name: str) -> str:
    """A distinct small image pushed to the chain's registry; returns repo@digest."""
    payload = chain.workdir / f"{name}.txt"
    payload.write_text(f"variant {name}\n")
    buildah = [pinned("buildah"), *buildah_args()]
    container = sh(*buildah, "from", "scratch").strip()
    try:
        sh(*buildah, "copy", container, payload, "/variant.txt")
        sh(*buildah, "commit", "--quiet", container, f"localhost/variant-{name}")
    finally:
        sh(*buildah, "rm", container)
    digest_file = chain.workdir / f"{name}.digest"
    sh(
        *buildah,
        "push",
        "--quiet",
        "--tls-verify=false",
        "--digestfile",
        digest_file,
        f"localhost/variant-{name}",
        f"docker://{chain.repository}:variant-{name}",
    )
    return f"{chain.repository}@{digest_file.read_text().strip()}"


# --- policy-tester over the chain's registry -----------------------------------------------


def admit(cip: Path, image: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [str(pinned("policy-tester")), "--policy", str(cip), "--image", image, "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, json.loads(lines[-1]) if lines else {}


def rendered(chain: Chain, tmp_path: Path, policy: Policy | None = None, **kwargs: Any) -> Path:
    doc = cluster_image_policy.render(
        REPO,
        policy or policy_mod.load(REPO / "security-policy.yaml"),
        "key",
        image_glob=chain.repository.split("/")[0] + "/**",
        public_key=kwargs.pop("public_key", chain.keys / "cosign.pub"),
        **kwargs,
    )
    path = tmp_path / "cip.yaml"
    cluster_image_policy.write(path, doc, cluster_image_policy.TEMPLATES["key"])
    return path
