"""out/evidence.json: what ran, with which tool version, inputs and outputs by sha256.

Stages meet only through this file, by digest. Each stage's record is written with a
file lock and an atomic replace, so concurrent or interrupted runs never leave a
corrupt manifest: a reader sees the previous complete file or the new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tasks.core import atomic
from tasks.core.errors import EvidenceError, InputError, PipelineError

SCHEMA = "urn:secure-iot:evidence:v1"

Verdict = Literal["pass", "fail", "error", "skipped"]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Artifact:
    """A file or an OCI object, always named together with its digest."""

    name: str
    digest: str
    media_type: str = "application/octet-stream"
    kind: Literal["file", "oci"] = "file"

    @property
    def sha256(self) -> str:
        return self.digest.removeprefix("sha256:")


@dataclass(frozen=True)
class CommandRecord:
    argv: list[str]
    tool: str
    version: str
    exit_code: int
    duration_s: float


@dataclass
class StageRecord:
    """The evidence of one stage run; filled in while the stage runs."""

    stage: str
    root: Path
    started: str = field(default_factory=now)
    finished: str = ""
    duration_s: float = 0.0
    verdict: Verdict = "error"
    reason: str = ""
    tools: dict[str, str] = field(default_factory=dict)
    commands: list[CommandRecord] = field(default_factory=list)
    inputs: list[Artifact] = field(default_factory=list)
    outputs: list[Artifact] = field(default_factory=list)
    opt_outs: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def add_file(self, path: Path, *, media_type: str, output: bool) -> Artifact:
        if not path.is_file():
            raise InputError(f"{self._rel(path)}: expected file does not exist")
        art = Artifact(self._rel(path), "sha256:" + atomic.sha256_file(path), media_type)
        (self.outputs if output else self.inputs).append(art)
        return art

    def add_input(self, path: Path, media_type: str = "application/octet-stream") -> Artifact:
        return self.add_file(path, media_type=media_type, output=False)

    def add_output(self, path: Path, media_type: str = "application/octet-stream") -> Artifact:
        return self.add_file(path, media_type=media_type, output=True)

    def add_oci(self, ref: str, digest: str, media_type: str, *, output: bool = True) -> Artifact:
        art = Artifact(ref, digest, media_type, kind="oci")
        (self.outputs if output else self.inputs).append(art)
        return art

    def opt_out(self, flag: str, why: str) -> None:
        """Record an explicit opt-out; it is shown in the summary and the evidence."""
        self.opt_outs.append(f"{flag}: {why}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("root")
        data.pop("_t0")
        return data


def command_for(record: str) -> str:
    """The nox command that writes record ``record``: ``sign:firmware`` is `nox -s sign -- --subject firmware`
    (tasks.pipeline.record_name, read backwards)."""
    stage, _, subject = record.partition(":")
    return f"nox -s {stage}" + (f" -- --subject {subject}" if subject else "")


def not_covered_notes(rec: Mapping[str, Any]) -> list[str]:
    """What a recorded stage could not check (details.not_covered: a language no SAST scanner reads)."""
    gaps = (rec.get("details") or {}).get("not_covered") or []
    return [f"not covered: {', '.join(map(str, gaps))}"] if gaps else []


def output_of(record: Mapping[str, Any], stage: str, media_type: str, where: Path) -> Artifact:
    """The first output with ``media_type`` in ``record`` (stage ``stage``'s, read from ``where``)."""
    try:
        for out in record["outputs"]:
            if out["media_type"] == media_type:
                return Artifact(out["name"], out["digest"], out["media_type"], out["kind"])
    except (KeyError, TypeError) as exc:
        raise EvidenceError(f"{where}: stage '{stage}' has a malformed outputs list ({exc})") from exc
    raise EvidenceError(f"stage '{stage}' recorded no output of type {media_type}")


class EvidenceStore:
    """Reads and updates out/evidence.json, one stage record at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(".evidence.lock")

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"schema": SCHEMA, "stages": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvidenceError(
                f"{self.path}: unreadable evidence manifest ({exc}); delete it to start afresh"
            ) from exc
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("stages"), dict):
            raise EvidenceError(f"{self.path}: not a secure-iot evidence manifest ({SCHEMA})")
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, rec: StageRecord) -> None:
        with self._locked():
            data = self.load()
            data["stages"][rec.stage] = rec.to_json()
            data["updated"] = now()
            atomic.write_json(self.path, data)

    def mark_up_to_date(self, name: str, check: Mapping[str, Any]) -> None:
        """Keep stage ``name``'s record (its outputs are still current) and note the check that said so."""
        with self._locked():
            data = self.load()
            rec = data["stages"].get(name)
            if rec is None:
                raise EvidenceError(f"no evidence of stage '{name}' to mark up to date")
            rec.setdefault("details", {})["up_to_date"] = dict(check)
            data["updated"] = now()
            atomic.write_json(self.path, data)

    def stage(self, name: str) -> dict[str, Any]:
        """The last record of stage ``name``; fails closed when it never passed."""
        rec = self.load()["stages"].get(name)
        if rec is None:
            raise EvidenceError(f"no evidence of stage '{name}' in {self.path}: run `{command_for(name)}` first")
        if rec.get("verdict") != "pass":
            raise EvidenceError(f"stage '{name}' did not pass (verdict {rec.get('verdict')}): fix it before this stage")
        return dict(rec)

    def output(self, stage: str, media_type: str) -> Artifact:
        """The first output of ``stage`` with ``media_type``, as an Artifact."""
        return output_of(self.stage(stage), stage, media_type, self.path)

    @contextlib.contextmanager
    def open_stage(self, name: str, root: Path) -> Iterator[StageRecord]:
        """Run a stage body; its record is written once, at the end, whatever happens."""
        rec = StageRecord(stage=name, root=root)
        try:
            yield rec
        except PipelineError as exc:
            rec.verdict, rec.reason = "error", str(exc)
            raise
        except BaseException as exc:  # KeyboardInterrupt included: record, then re-raise
            rec.verdict, rec.reason = "error", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            rec.finished = now()
            rec.duration_s = round(time.monotonic() - rec._t0, 3)
            self.record(rec)
