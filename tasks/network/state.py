"""What a running topology consists of: every namespace, link, rule set and process (by PID).

Written after every change (atomically) so that ``down`` removes exactly what ``up`` and
``attach`` made, and verifies that nothing of it is left.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks.core import atomic
from tasks.core.errors import InputError

NAME_PREFIX = "sin"  # secure-iot network; + a short run id keeps parallel runs apart
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Process:
    role: str  # hostapd:dp0, softflowd, ...
    namespace: str
    pid: int
    binary: str
    log: str
    stop_signal: str = "SIGTERM"  # its polite end (postgres: SIGINT, its fast shutdown)
    stop_grace: float = 3.0  # seconds before SIGKILL


@dataclass(frozen=True)
class Device:
    name: str
    namespace: str
    port: str  # the edge's end of its veth
    address: str
    admitted: bool
    reason: str
    tunnel: bool = False
    tunnel_reason: str = ""
    tunnel_s: float = 0.0  # IKE_SA + CHILD_SA set-up (swanctl --initiate), 0 without a tunnel


@dataclass
class State:
    run_id: str
    directory: str
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    rulesets: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    listeners: list[str] = field(default_factory=list)  # host:proto/port started by the project
    identity: dict[str, str] = field(default_factory=dict)  # the edge's EAP-TLS inputs: ca, crl, cert, key

    @property
    def prefix(self) -> str:
        return f"{NAME_PREFIX}{self.run_id}"

    def namespace(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def path(self) -> Path:
        return Path(self.directory) / STATE_FILE

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)

    def save(self) -> None:
        atomic.write_json(self.path, asdict(self))


def new(directory: Path) -> State:
    return State(run_id=secrets.token_hex(3), directory=str(directory))


def load(directory: Path) -> State | None:
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return State(
            run_id=raw["run_id"],
            directory=raw["directory"],
            namespaces=list(raw["namespaces"]),
            links=list(raw["links"]),
            rulesets=list(raw["rulesets"]),
            processes=[Process(**p) for p in raw["processes"]],
            devices=[Device(**d) for d in raw["devices"]],
            listeners=list(raw.get("listeners", [])),
            identity=dict(raw.get("identity", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a network state file ({exc}); remove it after checking `ip netns`") from exc
