"""The local OCI registry: CNCF distribution (Debian's docker-registry) on 127.0.0.1.

A managed background process: config, storage, log and PID file live outside the checkout
(${XDG_CACHE_HOME:-~/.cache}/secure-iot/registry/<port>/). Sessions that need it call
``ensure_running``; `nox -s registry -- stop` stops it by its PID.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic, processes, runner
from tasks.core.cache import cache_root
from tasks.core.console import console
from tasks.core.errors import RegistryError
from tasks.core.evidence import StageRecord

DEFAULT_PORT = 5000
HOST = "127.0.0.1"
READY_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0
BINARY = "docker-registry"  # its name in tools.lock and its executable's (argv[0] ends with it)

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {host}:{port}
  headers:
    X-Content-Type-Options: [nosniff]
"""


@dataclass(frozen=True)
class Registry:
    port: int
    state: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state / "registry.pid"

    @property
    def log(self) -> Path:
        return self.state / "registry.log"

    @property
    def config(self) -> Path:
        return self.state / "config.yml"

    def repository(self, name: str) -> str:
        return f"{self.address}/{name}"


def configured() -> Registry:
    raw = os.environ.get("SECURE_IOT_REGISTRY_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise RegistryError(f"SECURE_IOT_REGISTRY_PORT={raw!r}: expected a TCP port number")
    state = Path(os.environ.get("SECURE_IOT_REGISTRY_DIR", cache_root() / "registry" / raw))
    return Registry(int(raw), state)


def ready(reg: Registry) -> bool:
    """The distribution API answers on /v2/ (200 with no auth configured)."""
    opener = urllib.request.OpenerDirector()
    opener.add_handler(urllib.request.HTTPHandler())
    try:
        with opener.open(f"http://{reg.address}/v2/", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def running_pid(reg: Registry) -> int | None:
    """The PID in the PID file, if that process is alive and is our registry."""
    try:
        pid = int(reg.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if processes.alive(pid, BINARY) and str(reg.config).encode() in cmdline else None


def ensure_running(ctx: Context, rec: StageRecord) -> Registry:
    """Start the registry unless ours is already up; fail with the log's tail otherwise."""
    reg = configured()
    if running_pid(reg) is not None and ready(reg):
        return reg
    if processes.accepts(reg.port, HOST):
        raise RegistryError(
            f"{reg.address} is in use by another process; stop it (Debian's own docker-registry service: "
            "`systemctl disable --now docker-registry`) or set SECURE_IOT_REGISTRY_PORT"
        )
    (reg.state / "storage").mkdir(parents=True, exist_ok=True)
    atomic.write_text(reg.config, CONFIG.format(storage=reg.state / "storage", host=HOST, port=reg.port))
    proc = runner.start(rec, ctx.tool(BINARY), ["serve", reg.config], log=reg.log)
    atomic.write_text(reg.pid_file, f"{proc.pid}\n")

    def failed(why: str) -> Exception:
        if why == "exited":
            reg.pid_file.unlink(missing_ok=True)
            return RegistryError(f"docker-registry exited {proc.returncode} at start: {processes.tail(reg.log)}")
        stop(reg)
        return RegistryError(
            f"docker-registry on {reg.address} not ready after {READY_TIMEOUT_S:.0f}s: {processes.tail(reg.log)}"
        )

    processes.wait_until(
        lambda: ready(reg), lambda: proc.poll() is None, timeout=READY_TIMEOUT_S, failed=failed, poll=0.1
    )
    console.print(f"  registry: up on {reg.address} (pid {proc.pid}, storage {reg.state / 'storage'})")
    return reg


def stop(reg: Registry) -> bool:
    """Stop our registry by its PID; True if one was running."""
    pid = running_pid(reg)
    if pid is None:
        reg.pid_file.unlink(missing_ok=True)
        return False
    processes.stop_pid(pid, BINARY, grace=STOP_GRACE_S)  # never a recycled PID running something else
    reg.pid_file.unlink(missing_ok=True)
    return True


def is_local(ref: str) -> bool:
    """The host of ``ref`` is exactly the loopback registry's (localhost.evil.example is not)."""
    host = ref.split("/", 1)[0].rsplit(":", 1)[0] if "/" in ref else ""
    return host in (HOST, "localhost")


def tls_flags(ref: str) -> list[str]:
    """Plain HTTP for the loopback registry only (buildah, skopeo)."""
    return ["--tls-verify=false"] if is_local(ref) else []


def destination(ctx: Context, rec: StageRecord) -> str:
    """Where images are pushed: SECURE_IOT_REGISTRY (e.g. ghcr.io/owner/repo in a release) or
    the local registry, started if needed."""
    remote = os.environ.get("SECURE_IOT_REGISTRY", "").strip().rstrip("/")
    if remote:
        return remote
    return ensure_running(ctx, rec).address


def ensure_for(ctx: Context, rec: StageRecord, ref: str) -> None:
    """Start the local registry when ``ref`` lives in it; a remote one is the user's."""
    if is_local(ref):
        ensure_running(ctx, rec)


def serves(ref: str, digest: str, tag: str = "") -> bool:
    """The loopback registry still serves ``digest`` for ``ref`` (and under ``tag``, when given):
    one HEAD request each, no tool. A remote registry is not asked here (False: check by running)."""
    if not is_local(ref) or "/" not in ref:
        return False
    address, repository = ref.split("@", 1)[0].split("/", 1)
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    host, _, port = address.partition(":")
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
    for reference in [digest, *([tag] if tag else [])]:
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=2)
        try:
            connection.request("HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": accept})
            response = connection.getresponse()
            if response.status != 200 or response.getheader("Docker-Content-Digest") != digest:
                return False
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            connection.close()
    return True


def unserved(record: Mapping[str, Any]) -> str | None:
    """Why a stage's earlier run no longer holds because of the registry: the first image it
    pushed (an OCI output) that is not served any more by digest and by the tag it recorded."""
    tag = str(record.get("details", {}).get("tag", ""))
    for out in record.get("outputs", []):
        if out.get("kind") == "oci" and not serves(str(out["name"]), str(out["digest"]), tag):
            return f"the registry does not serve {out['name']} (and tag {tag or '-'}) any more"
    return None


MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def manifest_digest(repository: str, reference: str) -> str | None:
    """The sha256 of the manifest the loopback registry serves for ``repository`` (host:port/name)
    under ``reference`` (a tag or digest), hashed here from the bytes it sent (one GET, no tool;
    what `skopeo inspect --raw` would be hashed to). None when it serves none, or is not local."""
    if not is_local(repository) or "/" not in repository:
        return None
    address, name = repository.split("/", 1)
    host, _, port = address.partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=5)
    try:
        connection.request("GET", f"/v2/{name}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT})
        response = connection.getresponse()
        body = response.read(4 * 1024 * 1024)  # a manifest, not a layer: 4 MiB is the distribution limit
        return "sha256:" + hashlib.sha256(body).hexdigest() if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()
