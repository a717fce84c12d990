"""Benchmark the image build: cold and warm wall time, image size, reproducibility.

    python bench/build.py            (from a nox session or the dev venv; the registry starts itself)

Cold = a fresh base root filesystem (mmdebstrap) and empty buildah storage; warm = both
cached. Sizes are read from the pushed image: compressed = the manifest's layer sizes,
uncompressed = the layers' decompressed bytes. Reproducible = the two cold builds gave the
same digest. Prints a table and writes out/bench/build.json. Not a test: figures go to notes.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks import toolchain  # noqa: E402
from tasks.core.evidence import StageRecord  # noqa: E402


def build(env: dict[str, str], *args: str) -> tuple[float, dict[str, object]]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tasks", "build", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"build failed: {proc.stderr[-2000:]}")
    out = Path(env.get("SECURE_IOT_OUT", ROOT / "out"))
    return elapsed, json.loads((out / "evidence.json").read_text())["stages"]["build"]["details"]


def sizes(image: str, workdir: Path) -> tuple[int, int]:
    skopeo = toolchain.resolve("skopeo", ROOT, StageRecord(stage="tools", root=ROOT)).path
    layout = workdir / "layout"
    subprocess.run(
        [skopeo, "copy", "--quiet", "--src-tls-verify=false", f"docker://{image}", f"dir:{layout}"], check=True
    )
    manifest = json.loads((layout / "manifest.json").read_text())
    compressed = sum(int(layer["size"]) for layer in manifest["layers"])
    uncompressed = 0
    for layer in manifest["layers"]:
        with gzip.open(layout / layer["digest"].split(":")[1]) as handle:
            while chunk := handle.read(1 << 20):
                uncompressed += len(chunk)
    return compressed, uncompressed


def main() -> None:
    epoch = subprocess.run(
        ["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    os.environ["SOURCE_DATE_EPOCH"] = os.environ.get("SOURCE_DATE_EPOCH", epoch)  # one commit time for all runs
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = {}
        for name in ("cold-1", "cold-2"):
            env = {"SECURE_IOT_CONTAINERS_DIR": str(work / name / "containers"), "SECURE_IOT_OUT": str(work / name)}
            runs[name] = build(env, "--rebuild-base")
        env = {"SECURE_IOT_CONTAINERS_DIR": str(work / "cold-2" / "containers"), "SECURE_IOT_OUT": str(work / "warm")}
        runs["warm"] = build(env)
        image = str(runs["warm"][1]["image"])
        compressed, uncompressed = sizes(image, work)
    result = {
        "image": image,
        "cold_build_s": [round(runs["cold-1"][0], 1), round(runs["cold-2"][0], 1)],
        "warm_build_s": round(runs["warm"][0], 1),
        "compressed_mb": round(compressed / 1e6, 1),
        "uncompressed_mb": round(uncompressed / 1e6, 1),
        "reproducible": runs["cold-1"][1]["digest"] == runs["cold-2"][1]["digest"] == runs["warm"][1]["digest"],
        "digests": sorted({str(r[1]["digest"]) for r in runs.values()}),
    }
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
