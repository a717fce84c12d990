"""U-Boot: Debian bookworm's source, qemu_arm64_defconfig + firmware/u-boot/secure-iot.config, cross-built.

The fragment carries the boot policy (verify, measure, refuse; see its comments). Kconfig drops a
fragment line it cannot satisfy without a word, so the build checks every line survived. The
result is cached under the sha256 of everything that decides it (source pins, fragment,
defconfig, compiler, recipe) and is reproducible: dates come from the source package's
changelog and build paths are mapped away, so a rebuild elsewhere gives the same u-boot.bin.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import BuildError
from tasks.core.evidence import StageRecord
from tasks.firmware import sources

DEFCONFIG = "qemu_arm64_defconfig"
FRAGMENT = "firmware/u-boot/secure-iot.config"
RECIPE = "u-boot-recipe-2"  # change when the commands below change what they produce


@dataclass(frozen=True)
class UBoot:
    binary: Path  # in the cache
    sha256: str
    cache_key: str
    cached: bool
    build_seconds: float


def fragment_settings(text: str) -> dict[str, str]:
    """``CONFIG_X`` -> value (``n`` for ``# CONFIG_X is not set``) for each setting line of a config."""
    settings: dict[str, str] = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"(CONFIG_\w+)=(.*)", line.strip()):
            settings[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"# (CONFIG_\w+) is not set", line.strip()):
            settings[m.group(1)] = "n"
    return settings


def dropped_settings(dotconfig: str, fragment: str) -> list[str]:
    """Each fragment setting the final .config does not hold, as ``X=wanted (got Y)``."""
    have = fragment_settings(dotconfig)
    wanted = fragment_settings(fragment)
    return [f"{k}={v} (got {have.get(k, 'n')})" for k, v in wanted.items() if have.get(k, "n") != v]


def changelog_epoch(changelog: str) -> int:
    """The date of the newest debian/changelog entry: what Debian builds the package with."""
    for line in changelog.splitlines():
        if line.startswith(" -- ") and ">" in line:
            return int(email.utils.parsedate_to_datetime(line.split(">", 1)[1].strip()).timestamp())
    raise BuildError("debian/changelog has no trailer line ( -- name <mail>  date)")


def cache_key(source: Mapping[str, str], fragment: bytes, compiler: str) -> str:
    """sha256 over the source pins, the fragment, the defconfig, the compiler and the recipe."""
    lines = [f"{name}={digest}" for name, digest in sorted(source.items())]
    lines += [f"fragment={hashlib.sha256(fragment).hexdigest()}", f"defconfig={DEFCONFIG}"]
    lines += [f"compiler={compiler}", f"recipe={RECIPE}"]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def compiler_identity(ctx: Context, rec: StageRecord) -> str:
    """The cross compiler as it reports itself (Debian revision included) and its binary's sha256."""
    gcc = ctx.tool("aarch64-linux-gnu-gcc")
    first = runner.run(rec, gcc, ["--version"]).stdout.splitlines()[0].strip()
    return f"{first} sha256:{gcc.sha256}"


def cross_prefix(ctx: Context) -> str:
    """CROSS_COMPILE for make: the pinned compiler's own directory and triplet."""
    gcc = ctx.tool("aarch64-linux-gnu-gcc").path
    return str(gcc).removesuffix("gcc")


def jobs() -> str:
    return f"-j{len(os.sched_getaffinity(0))}"


def compile_u_boot(ctx: Context, rec: StageRecord, tree: Path, fragment: str, build: Path) -> Path:
    """One build from scratch in ``build``: defconfig, fragment, olddefconfig, check, u-boot.bin."""
    epoch = changelog_epoch((tree / "debian" / "changelog").read_text())
    env = {"SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C", "TZ": "UTC"}
    make = ctx.tool("make")
    base: list[str | Path] = ["-C", tree, f"O={build}", f"CROSS_COMPILE={cross_prefix(ctx)}"]
    runner.run(rec, make, [*base, DEFCONFIG], env=env, timeout=600)
    dotconfig = build / ".config"
    # Later lines win in Kconfig: the fragment appended is what merge_config.sh would produce.
    atomic.write_text(dotconfig, dotconfig.read_text() + "\n# secure-iot fragment\n" + fragment)
    runner.run(rec, make, [*base, "olddefconfig"], env=env, timeout=600)
    dropped = dropped_settings(dotconfig.read_text(), fragment)
    if dropped:
        raise BuildError(f"U-Boot's .config does not hold {FRAGMENT}: {'; '.join(dropped)}")
    kcflags = f"-ffile-prefix-map={tree}=. -ffile-prefix-map={build}=."
    runner.run(rec, make, [*base, jobs(), f"KCFLAGS={kcflags}", "u-boot.bin"], env=env, timeout=3600)
    binary = build / "u-boot.bin"
    if not binary.is_file():
        raise BuildError(f"the U-Boot build left no {binary}")
    return binary


def build(ctx: Context, rec: StageRecord, *, rebuild: bool = False) -> UBoot:
    """u-boot.bin from the cache when nothing that decides it changed; else built, checked, cached."""
    files = ctx.pinned_input(sources.U_BOOT_SOURCE)
    fragment_path = ctx.inside(FRAGMENT)
    rec.add_input(fragment_path, "text/plain")
    fragment = fragment_path.read_text()
    key = cache_key({n: f.sha256 for n, f in files.items()}, fragment.encode(), compiler_identity(ctx, rec))
    with sources.cache_entry(sources.firmware_cache("u-boot", key[:32])) as entry:
        manifest = entry / "manifest.json"
        if manifest.is_file() and not rebuild:
            meta = json.loads(manifest.read_text())
            digest = atomic.sha256_file(entry / "u-boot.bin")
            if digest != meta.get("sha256"):
                raise BuildError(f"cached U-Boot {entry / 'u-boot.bin'} does not match its manifest; delete {entry}")
            return UBoot(entry / "u-boot.bin", digest, key, True, float(meta.get("build_seconds", 0.0)))
        tree = sources.u_boot_tree(ctx, rec, files)
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(dir=entry, prefix=".build-") as tmp:
            built = compile_u_boot(ctx, rec, tree, fragment, Path(tmp) / "build")
            seconds = round(time.monotonic() - t0, 1)
            digest = atomic.sha256_file(built)
            if rebuild and manifest.is_file() and json.loads(manifest.read_text()).get("sha256") != digest:
                raise BuildError(f"U-Boot rebuilt from scratch is not the cached one: sha256 {digest} differs")
            atomic.write_bytes(entry / "u-boot.bin", built.read_bytes())
            atomic.write_bytes(entry / "config", (built.parent / ".config").read_bytes())
        atomic.write_json(manifest, {"sha256": digest, "cache_key": key, "build_seconds": seconds})
    return UBoot(entry / "u-boot.bin", digest, key, False, seconds)
