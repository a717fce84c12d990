"""Talk 02 — "where and how you build matters": a hermetic, reproducible, daemonless build.

1. base: mmdebstrap makes a Debian root filesystem (no registry pull), buildah turns it
   into an OCI image, pushed to the local registry and used by digest;
2. wheelhouse: app/requirements.lock installed on the host into site-packages/
   (--require-hashes, wheels only, no byte-code) — the build itself has no network;
3. image: `buildah bud --isolation oci --network none --timestamp SOURCE_DATE_EPOCH`, pushed
   to the local registry; from then on it is `repo@sha256:...` only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from tasks.container import deployables, oci_registry
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.cache import cache_root
from tasks.core.console import console
from tasks.core.errors import BuildError, InputError
from tasks.core.evidence import StageRecord
from tasks.toolchain.archive import apt_sources

IMAGE_NAME = "secure-iot-server"
BASE_NAME = "secure-iot-base"
# What the base needs for the app, and nothing else. The `custom` variant installs exactly
# these and their dependencies: 69 MB uncompressed, where `minbase` (apt, perl-base and the
# rest of Essential) gave 165 MB for the same Python (measured, bench/image_size.py). dpkg
# and the few tools its maintainer scripts call stay, so the image keeps a dpkg database
# that syft and grype read.
BASE_VARIANT = "custom"
BASE_PACKAGES = (
    "base-files",
    "base-passwd",
    "dash",
    "libc-bin",
    "dpkg",
    "coreutils",
    "diffutils",
    "findutils",
    "sed",
    "grep",
    "tar",
    "python3-minimal",
    "libpython3.11-stdlib",
)
BASE_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
# ... but each package's copyright file stays (dpkg applies the include after the exclude):
# it is the package's declared licence and copyright, which syft and the SBOM read (issue #21).
BASE_INCLUDES = ("/usr/share/doc/*/copyright",)
DEBIAN_SUITE = "bookworm"


@dataclass(frozen=True)
class Built:
    ref: str  # repo@sha256:...
    digest: str
    tag: str
    installed: tuple[deployables.Deployable, ...] = ()  # the files installed into it, by SHA-512


def source_url() -> str:
    server, repo = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    return f"{server}/{repo}" if server and repo else os.environ.get("SECURE_IOT_SOURCE_URL", "urn:secure-iot:local")


def buildah_args() -> list[str]:
    """Our own storage (vfs: works as root anywhere, no kernel overlay needed)."""
    store = Path(os.environ.get("SECURE_IOT_CONTAINERS_DIR", cache_root() / "containers"))
    return ["--root", str(store / "storage"), "--runroot", str(store / "run"), "--storage-driver", "vfs"]


def base_rootfs(ctx: Context, rec: StageRecord, epoch: int, *, rebuild: bool) -> Path:
    """mmdebstrap rootfs.tar, cached by everything that determines it, with the .deb files it
    was made from beside it (``debs/``: their SHA-512 is build evidence, deployables)."""
    sources = apt_sources()
    texts = [p.read_text(encoding="utf-8") for p in sources]
    recipe = "\n".join(
        [DEBIAN_SUITE, BASE_VARIANT, *BASE_PACKAGES, *BASE_EXCLUDES, *BASE_INCLUDES, "debs", str(epoch), *texts]
    )
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    cached = cache_root() / "base" / key / "rootfs.tar"
    debs = cached.with_name("debs")
    if cached.is_file() and any(debs.glob("*.deb")) and not rebuild:
        console.print(f"  base rootfs: cached {cached}")
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    shutil.rmtree(debs, ignore_errors=True)
    excludes = [f"--dpkgopt=path-exclude={p}" for p in BASE_EXCLUDES]
    excludes += [f"--dpkgopt=path-include={p}" for p in BASE_INCLUDES]
    runner.run(
        rec,
        ctx.tool("mmdebstrap"),
        [
            "--quiet",
            f"--variant={BASE_VARIANT}",
            f"--include={','.join(BASE_PACKAGES)}",
            *excludes,
            # the downloaded archives stay until the customize phase; copy them out, not into the tar
            "--skip=essential/unlink",
            f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
            "--format=tar",
            DEBIAN_SUITE,
            partial,
            *sources,
        ],
        env={"SOURCE_DATE_EPOCH": str(epoch)},
        timeout=1800,
        capture=True,
    )
    os.replace(partial, cached)
    return cached


def wheelhouse(ctx: Context, rec: StageRecord, into: Path, wheels: Path) -> None:
    """site-packages/ for the image from the hash lock: wheels only, for the image's CPython.

    The wheels are downloaded into ``wheels`` first (hash-checked against the lock) and
    installed from there with no index, so the files whose SHA-512 the build records are the
    files that were installed.
    """
    lock = ctx.inside("app/requirements.lock")
    if not lock.is_file():
        raise InputError(f"{lock}: missing; run `nox -s lock`")
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine().lower()]
    platforms = [
        f"--platform={tag}_{arch}" for tag in ("manylinux_2_36", "manylinux_2_28", "manylinux_2_17", "manylinux2014")
    ]
    target = ["--only-binary=:all:", "--implementation=cp", "--python-version=3.11", "--abi=cp311", *platforms]
    quiet = ["--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes"]
    shutil.rmtree(wheels, ignore_errors=True)
    runner.run(rec, ctx.tool("pip"), ["download", *quiet, *target, "--dest", wheels, "-r", lock], timeout=1800)
    offline: list[str | Path] = ["--no-compile", "--no-index", "--find-links", wheels]  # just those files
    runner.run(rec, ctx.tool("pip"), ["install", *quiet, *offline, *target, "--target", into, "-r", lock], timeout=1800)
    for junk in into.glob("*.dist-info/direct_url.json"):
        junk.unlink()
    rec.add_input(lock, "text/plain")


def bud(
    ctx: Context,
    rec: StageRecord,
    containerfile: Path,
    context_dir: Path,
    tag: str,
    epoch: int,
    build_args: dict[str, str],
) -> None:
    args = [a for k, v in build_args.items() for a in ("--build-arg", f"{k}={v}")]
    runner.run(
        rec,
        ctx.tool("buildah"),
        [
            *buildah_args(),
            "bud",
            "--runtime",
            ctx.tool("runc").path,
            "--isolation",
            "oci",
            "--network",
            "none",
            "--timestamp",
            str(epoch),
            "--identity-label=false",
            "--pull=never" if not build_args.get("BASE") else "--pull=always",
            *oci_registry.tls_flags(build_args.get("BASE", "")),
            "--format",
            "oci",
            "--layers=false",
            *args,
            "-f",
            containerfile,
            "-t",
            tag,
            context_dir,
        ],
        timeout=1800,
        capture=True,
    )


def push(ctx: Context, rec: StageRecord, local: str, repository: str, tag: str, workdir: Path) -> Built:
    digest_file = workdir / f"{tag}.digest"
    digest_file.unlink(missing_ok=True)
    runner.run(
        rec,
        ctx.tool("buildah"),
        [
            *buildah_args(),
            "push",
            *oci_registry.tls_flags(repository),
            "--format",
            "oci",
            "--digestfile",
            digest_file,
            local,
            f"docker://{repository}:{tag}",
        ],
        timeout=900,
    )
    digest = digest_file.read_text().strip()
    if not digest.startswith("sha256:"):
        raise BuildError(f"buildah push {repository}:{tag} gave no digest")
    return Built(f"{repository}@{digest}", digest, tag)


def build_base(ctx: Context, rec: StageRecord, dest: str, epoch: int, *, rebuild: bool) -> Built:
    work = ctx.stage_dir("build") / "base-context"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rootfs = base_rootfs(ctx, rec, epoch, rebuild=rebuild)
    shutil.copyfile(rootfs, work / "rootfs.tar")
    debs = deployables.scan(rootfs.with_name("debs"), "*.deb")
    containerfile = ctx.inside("app/base/Containerfile")
    rec.add_input(containerfile, "text/plain")
    rec.details["base_rootfs_sha256"] = "sha256:" + atomic.sha256_file(rootfs)
    local = f"localhost/{BASE_NAME}:{epoch}"
    bud(ctx, rec, containerfile, work, local, epoch, {})
    built = push(ctx, rec, local, f"{dest}/{BASE_NAME}", str(epoch), ctx.stage_dir("build"))
    return replace(built, installed=tuple(debs))


def build_app(ctx: Context, rec: StageRecord, dest: str, base_ref: str, epoch: int, revision: str) -> Built:
    work = ctx.stage_dir("build") / "context"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wheels = ctx.stage_dir("build") / "wheels"
    wheelhouse(ctx, rec, work / "site-packages", wheels)
    installed = deployables.scan(wheels, "*.whl")
    shutil.copytree(ctx.inside("app/src"), work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    containerfile = ctx.inside("app/Containerfile")
    rec.add_input(containerfile, "text/plain")
    created = dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tag = revision[:12] if revision != "unknown" else str(epoch)
    local = f"localhost/{IMAGE_NAME}:{tag}"
    bud(
        ctx,
        rec,
        containerfile,
        work,
        local,
        epoch,
        {"BASE": base_ref, "SOURCE_URL": source_url(), "REVISION": revision, "CREATED": created},
    )
    built = push(ctx, rec, local, f"{dest}/{IMAGE_NAME}", tag, ctx.stage_dir("build"))
    return replace(built, installed=tuple(installed))
