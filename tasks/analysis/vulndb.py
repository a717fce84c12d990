"""grype's vulnerability database: an input like any other (docs/adr/0003).

SECURE_IOT_VULNDB selects where it comes from, and that is recorded with the DB's build date:
  demo    (default) a real schema-v6 DB built on the spot from the GitHub advisories
          committed in tests/fixtures/grype/workspace by tools/grype-db-builder (grype's own
          build code). It knows only those advisories: it proves the gate, not the image.
  online  `grype db update` (CI, connected laptops).
  <path>  `grype db import <path>`: a DB archive carried into an air-gapped factory.
No usable DB is a failure; callers decide whether an explicit opt-out applies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import runner
from tasks.core.cache import cache_root
from tasks.core.console import console
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.policy import Policy
from tasks.toolchain.go import go_env
from tasks.toolchain.host import host_tool

SOURCE_ENV = "SECURE_IOT_VULNDB"
BUILDER_DIR = "tools/grype-db-builder"
DEMO_WORKSPACE = "tests/fixtures/grype/workspace"


@dataclass(frozen=True)
class DbStatus:
    source: str
    valid: bool
    built: str
    schema: str
    path: str
    error: str = ""

    def age_hours(self, now: dt.datetime | None = None) -> float | None:
        if not self.built:
            return None
        built = dt.datetime.fromisoformat(self.built.replace("Z", "+00:00"))
        return ((now or dt.datetime.now(dt.UTC)) - built).total_seconds() / 3600

    def as_json(self) -> dict[str, Any]:
        age = self.age_hours()
        return {
            "source": self.source,
            "valid": self.valid,
            "built": self.built,
            "schema": self.schema,
            "path": self.path,
            "error": self.error,
            "age_hours": round(age, 2) if age is not None else None,
        }


def source() -> str:
    return os.environ.get(SOURCE_ENV, "demo").strip() or "demo"


def cache_dir(src: str) -> Path:
    """One grype DB cache per source, so a demo DB never masks a real one."""
    key = src if src in ("demo", "online") else "import-" + hashlib.sha256(src.encode()).hexdigest()[:12]
    return Path(os.environ.get("SECURE_IOT_GRYPE_DB_ROOT", cache_root() / "grype-db")) / key


def grype_env(src: str, max_age_hours: int) -> dict[str, str]:
    return {
        "GRYPE_DB_CACHE_DIR": str(cache_dir(src)),
        "GRYPE_DB_AUTO_UPDATE": "false",
        "GRYPE_CHECK_FOR_APP_UPDATE": "false",
        "GRYPE_DB_VALIDATE_AGE": "true",
        "GRYPE_DB_MAX_ALLOWED_BUILT_AGE": f"{max_age_hours}h",
    }


def status(rec: StageRecord, grype: Tool, src: str, max_age_hours: int) -> DbStatus:
    done = runner.run(rec, grype, ["db", "status", "-o", "json"], env=grype_env(src, max_age_hours), check=False)
    try:
        data = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"grype db status printed no JSON: {done.tail()}") from exc
    return DbStatus(
        source=src,
        valid=bool(data.get("valid")) and done.returncode == 0,
        built=str(data.get("built", "")),
        schema=str(data.get("schemaVersion", "")),
        path=str(data.get("path", "")),
        error=str(data.get("error", "")),
    )


def builder(ctx: Context, rec: StageRecord) -> Tool:
    """tools/grype-db-builder, built with Go and cached by the hash of its sources."""
    src = ctx.inside(BUILDER_DIR)
    files = sorted(p for p in src.iterdir() if p.name in ("go.mod", "go.sum", "main.go"))
    key = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()[:16]
    binary = cache_root() / "tools" / "grype-db-builder" / key / "grype-db-builder"
    if not binary.is_file():
        binary.parent.mkdir(parents=True, exist_ok=True)
        runner.run(rec, host_tool("go"), ["build", "-o", binary, "."], env=go_env(), cwd=src, timeout=3600)
    return Tool("grype-db-builder", key, binary, route="source")


def build_demo(ctx: Context, rec: StageRecord) -> Path:
    out = cache_dir("demo") / "build"
    runner.run(rec, builder(ctx, rec), ["-workspace", ctx.inside(DEMO_WORKSPACE), "-out", out], timeout=600)
    return out / "vulnerability-db.tar.gz"


def max_age_hours(policy: Policy) -> int:
    """How old the DB may be before a scan refuses it (gates.dependencies.max_db_age_hours)."""
    return int(policy.gate("dependencies").settings.get("max_db_age_hours", 120))


def outdated(policy: Policy, record: Mapping[str, Any]) -> str | None:
    """Why a scan's earlier run no longer holds though nothing it read changed: the DB it used
    has grown older than the policy allows since (None without a recorded DB build date)."""
    db = record.get("details", {}).get("db")
    if isinstance(db, dict) and db.get("built"):
        built = dt.datetime.fromisoformat(str(db["built"]).replace("Z", "+00:00"))
        if (dt.datetime.now(dt.UTC) - built).total_seconds() / 3600 > max_age_hours(policy):
            return "the vulnerability DB it used is older than the policy allows"
    return None


def prepare(ctx: Context, rec: StageRecord, grype: Tool, max_age_hours: int) -> DbStatus:
    """Make the configured DB current and return its status (valid or not: callers gate)."""
    src = source()
    env = grype_env(src, max_age_hours)
    if src == "demo":
        current = status(rec, grype, src, max_age_hours)
        if not current.valid or (current.age_hours() or 0) > 1:  # rebuild hourly: cheap (~0.1 s)
            runner.run(rec, grype, ["db", "import", build_demo(ctx, rec)], env=env, timeout=600)
    elif src == "online":
        runner.run(rec, grype, ["db", "update"], env=env, check=False, timeout=1800)
    else:
        path = Path(src).expanduser()
        if not path.is_file():
            raise InputError(f"{SOURCE_ENV}={src}: no such database archive or .db file")
        runner.run(rec, grype, ["db", "import", path], env=env, timeout=1800)
    return status(rec, grype, src, max_age_hours)


def report_status(rec: StageRecord, grype: Tool, max_age_hours: int = 120) -> dict[str, Any]:
    """For `nox -s tools`: the configured DB's state, without changing it."""
    current = status(rec, grype, source(), max_age_hours)
    if current.valid:
        console.print(f"  grype db ({current.source}): built {current.built}, schema {current.schema}")
    else:
        console.print(
            f"  [yellow]grype db ({current.source}): not usable ({current.error or 'invalid'}); "
            f"`nox -s scan` prepares it ({SOURCE_ENV}=demo|online|<archive>)[/]"
        )
    return current.as_json()
