"""Route 3: Debian packages (root): the package and its 'also' packages at the pinned upstream version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tasks.core import atomic, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.toolchain.lock import Pin
from tasks.toolchain.store import RouteUnavailable

DPKG_FORMAT = "${db:Status-Abbrev}${Version}"


def installed_deb(package: str) -> str | None:
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return None
    proc = runner.probe(Tool("dpkg-query", "system", Path(dpkg), route="system"), ["-W", "-f", DPKG_FORMAT, package])
    status = proc.stdout
    return status[3:].strip() if proc.returncode == 0 and status.startswith("ii") else None


def upstream(deb_version: str) -> str:
    """1:4.13+dfsg1-1+deb12u2 -> 4.13; 1.28.2+ds1-3 -> 1.28.2."""
    version = deb_version.split(":", 1)[-1].rsplit("-", 1)[0]
    return version.split("+", 1)[0].split("~", 1)[0]


def _deb_tool(pin: Pin, deb_version: str, route: str) -> Tool:
    for directory in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        binary = Path(directory) / pin.binary
        if binary.is_file():
            packages = (pin.apt.package, *pin.apt.also) if pin.apt else ()
            return Tool(
                pin.name,
                pin.version,
                binary,
                route=f"{route} ({deb_version})",
                sha256=atomic.sha256_file(binary),
                packages=packages,
            )
    raise ToolError(f"{pin.name}: Debian package {pin.apt.package if pin.apt else '?'} has no {pin.binary}")


def from_system_package(pin: Pin) -> Tool | None:
    """An apt tool already installed at the pinned upstream version counts as cached.

    Only with every ``also`` package installed too: a tool whose data package was removed
    (ssg-debian under oscap) goes back through the apt route, which installs it.
    """
    if pin.apt is None:
        return None
    deb = installed_deb(pin.apt.package)
    if deb is None or any(installed_deb(extra) is None for extra in pin.apt.also):
        return None
    if upstream(deb) != pin.version:
        raise ToolError(
            f"{pin.name}: Debian package {pin.apt.package} is {deb}, tools.lock pins {pin.version}; "
            "update tools.lock (and its test) or install the pinned version"
        )
    return _deb_tool(pin, deb, "apt")


_apt_updated = False


APT_WAIT = ("-o", "DPkg::Lock::Timeout=600")  # another apt-get (a second session, unattended-upgrades) waits, not fails


def via_apt(pin: Pin, rec: StageRecord, scratch: Path) -> Tool:
    global _apt_updated
    if pin.apt is None:
        raise RouteUnavailable("no apt route pinned")
    apt_get = shutil.which("apt-get")
    if apt_get is None or not Path("/etc/debian_version").exists():
        raise RouteUnavailable("not a Debian/Ubuntu system")
    if os.geteuid() != 0:
        raise RouteUnavailable("apt-get needs root")
    apt = Tool("apt-get", "system", Path(apt_get), route="system")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not _apt_updated:
            runner.run(rec, apt, [*APT_WAIT, "update", "-qq"], env=env, timeout=900)
            _apt_updated = True
        runner.run(
            rec,
            apt,
            [*APT_WAIT, "install", "-y", "-qq", "--no-install-recommends", pin.apt.package, *pin.apt.also],
            env=env,
            timeout=1800,
        )
    except ToolError as exc:
        raise RouteUnavailable(str(exc)) from exc
    tool = from_system_package(pin)
    if tool is None:
        raise RouteUnavailable(f"apt-get did not install {pin.apt.package}")
    return tool
