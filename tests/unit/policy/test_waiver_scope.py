"""A waiver's scope: path and package are fnmatch globs, so an image component named with its
registry's host:port (which varies by run) is matched by `*/name`, and nothing else is."""

from __future__ import annotations

import datetime as dt

from tasks.policy.findings import Finding, Severity
from tasks.policy.security_policy import Waiver


def _finding(package: str) -> Finding:
    return Finding(
        "sbomcheck",
        "bsi-tr-03183-2/creator",
        Severity.HIGH,
        f"image.spdx3.json:{package}",
        "no creator",
        path="image.spdx3.json",
        package=package,
    )


def test_package_glob_matches_any_registry_and_nothing_else() -> None:
    waiver = Waiver(
        "bsi-tr-03183-2/creator",
        "sbom",
        "why",
        "security-team",
        dt.date(2099, 1, 1),
        path="image.spdx3.json",
        package="*/secure-iot-server",
    )
    assert waiver.covers("sbom", _finding("127.0.0.1:5000/secure-iot-server"))
    assert waiver.covers("sbom", _finding("127.0.0.1:59625/secure-iot-server"))
    assert not waiver.covers("sbom", _finding("libc6"))
    assert not waiver.covers("sbom", _finding("127.0.0.1:5000/secure-iot-server-evil"))
    assert not waiver.covers("scan", _finding("127.0.0.1:5000/secure-iot-server"))
    exact = Waiver("bsi-tr-03183-2/creator", "sbom", "why", "security-team", dt.date(2099, 1, 1), package="libc6")
    assert exact.covers("sbom", _finding("libc6")) and not exact.covers("sbom", _finding("libc6-dev"))
