"""Route 3: Debian packages (root): the package and its 'also' packages, at or above the pinned minimum.

Version policy (ADR 0021). A Debian stable archive keeps only the newest build of a package:
a security update removes the build before it, so an exact pin stops being installable the
day the archive moves. tools.lock's ``version`` for an apt tool is therefore the *minimum*
upstream version the pipeline accepts:

- an installed build at or above it is used as it is (a newer security build included);
- an older installed build goes through the apt route, whose ``apt-get install`` upgrades it
  to the archive's candidate;
- a build still below the minimum after that (an archive older than the pin, a held or
  downgraded package) is refused with one line that says how to fix it.

What it trades: two machines may run different Debian builds of the same tool. The evidence
records the exact build each run used (``apt (<debian version>)``) and the date of the Release
files apt read, so a run can always say what it ran; integrity stays apt's (signed InRelease).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

from tasks.core import atomic, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.toolchain.lock import Pin
from tasks.toolchain.store import RouteUnavailable

DPKG_FORMAT = "${db:Status-Abbrev}${Version}"
APT_LISTS = Path("/var/lib/apt/lists")


def _system_tool(name: str) -> Tool:
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name}: not on PATH; the apt route needs a Debian system (dpkg, apt)")
    return Tool(name, "system", Path(found), route="system")


def installed_deb(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    proc = runner.probe(_system_tool("dpkg-query"), ["-W", "-f", DPKG_FORMAT, package])
    status = proc.stdout
    return status[3:].strip() if proc.returncode == 0 and status.startswith("ii") else None


def upstream(deb_version: str) -> str:
    """1:4.13+dfsg1-1+deb12u2 -> 4.13; 1.28.2+ds1-3 -> 1.28.2."""
    version = deb_version.split(":", 1)[-1].rsplit("-", 1)[0]
    return version.split("+", 1)[0].split("~", 1)[0]


def at_least(deb_version: str, minimum: str) -> bool:
    """Is the Debian build's upstream version >= ``minimum``, in dpkg's own ordering?"""
    proc = runner.probe(_system_tool("dpkg"), ["--compare-versions", upstream(deb_version), "ge", minimum])
    if proc.returncode not in (0, 1):
        raise ToolError(f"dpkg --compare-versions {upstream(deb_version)} ge {minimum}: {proc.stderr.strip()}")
    return proc.returncode == 0


def archive_dates() -> dict[str, str]:
    """The Date: of each Release file apt last read (suite -> date), for the evidence."""
    dates: dict[str, str] = {}
    for release in sorted(APT_LISTS.glob("*_InRelease")) + sorted(APT_LISTS.glob("*_Release")):
        head = release.read_bytes()[:4096].decode("utf-8", "replace")
        suite = re.search(r"^(?:Suite|Codename): (\S+)", head, re.M)
        date = re.search(r"^Date: (.+)$", head, re.M)
        origin = re.search(r"^Origin: (.+)$", head, re.M)
        if suite and date:
            dates.setdefault(f"{origin.group(1).strip() if origin else '?'} {suite.group(1)}", date.group(1).strip())
    return dates


def _deb_tool(pin: Pin, deb_version: str, route: str) -> Tool:
    for directory in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        binary = Path(directory) / pin.binary
        if binary.is_file():
            packages = (pin.apt.package, *pin.apt.also) if pin.apt else ()
            return Tool(
                pin.name,
                upstream(deb_version),  # what runs: the minimum is pin.version, this is at or above it
                binary,
                route=f"{route} ({deb_version})",
                sha256=atomic.sha256_file(binary),
                packages=packages,
            )
    raise ToolError(f"{pin.name}: Debian package {pin.apt.package if pin.apt else '?'} has no {pin.binary}")


def _below(pin: Pin, deb: str) -> str:
    package = pin.apt.package if pin.apt else "?"
    return f"{pin.name}: Debian package {package} is {deb}, below the minimum {pin.version} tools.lock accepts"


def from_system_package(pin: Pin) -> Tool | None:
    """An apt tool installed at or above the pinned minimum counts as cached.

    Only with every ``also`` package installed too: a tool whose data package was removed
    (ssg-debian under oscap) goes back through the apt route, which installs it. An older build
    goes back through it too, which upgrades it.
    """
    if pin.apt is None:
        return None
    deb = installed_deb(pin.apt.package)
    if deb is None or any(installed_deb(extra) is None for extra in pin.apt.also):
        return None
    if not at_least(deb, pin.version):
        return None
    return _deb_tool(pin, deb, "apt")


_apt_updated = False
_apt_serial = threading.Lock()  # `nox -s tools --jobs N`: one apt-get at a time in a process


APT_WAIT = ("-o", "DPkg::Lock::Timeout=600")  # another apt-get (a second session, unattended-upgrades) waits, not fails


def _apt_install(pin: Pin, rec: StageRecord, apt: Tool, env: dict[str, str]) -> None:
    global _apt_updated
    if pin.apt is None:
        raise RouteUnavailable("no apt route pinned")
    try:
        if not _apt_updated:
            runner.run(rec, apt, [*APT_WAIT, "update", "-qq"], env=env, timeout=900)
            _apt_updated = True
        # `install` installs a missing package and upgrades a present one to the candidate
        runner.run(
            rec,
            apt,
            [*APT_WAIT, "install", "-y", "-qq", "--no-install-recommends", pin.apt.package, *pin.apt.also],
            env=env,
            timeout=1800,
        )
    except ToolError as exc:
        raise RouteUnavailable(str(exc)) from exc


def via_apt(pin: Pin, rec: StageRecord, scratch: Path) -> Tool:
    """Install the package (and its ``also`` packages), or upgrade an older build to the archive's
    candidate; refuse what is still below the minimum afterwards."""
    if pin.apt is None:
        raise RouteUnavailable("no apt route pinned")
    present = installed_deb(pin.apt.package)
    older = f" ({_below(pin, present)}; as root this route upgrades it)" if present else ""
    apt_get = shutil.which("apt-get")
    if apt_get is None or not Path("/etc/debian_version").exists():
        raise RouteUnavailable(f"not a Debian/Ubuntu system{older}")
    if os.geteuid() != 0:
        raise RouteUnavailable(f"apt-get needs root{older}")
    apt = Tool("apt-get", "system", Path(apt_get), route="system")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    with _apt_serial:
        _apt_install(pin, rec, apt, env)
    deb = installed_deb(pin.apt.package)
    if deb is None:
        raise RouteUnavailable(f"apt-get did not install {pin.apt.package}")
    if not at_least(deb, pin.version):
        raise ToolError(
            f"{_below(pin, deb)}, and the archive offers nothing newer: run `apt-get update` against a "
            "current Debian archive (the machine's sources may point at an old snapshot)"
        )
    tool = from_system_package(pin)
    if tool is None:
        raise RouteUnavailable(f"apt-get did not install every package of {pin.name}: {', '.join(pin.apt.also)}")
    return tool
