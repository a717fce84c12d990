"""Route 1: a release binary, refused unless its sha256 matches the pin."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.toolchain.lock import Download, Pin, current_platform
from tasks.toolchain.store import RouteUnavailable, store


def _opener() -> urllib.request.OpenerDirector:
    """Only https, file (tests, mirrors on disk) and plain http to loopback are allowed."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPSHandler(), urllib.request.FileHandler(), urllib.request.HTTPHandler()):
        opener.add_handler(handler)
    opener.add_handler(urllib.request.HTTPRedirectHandler())
    opener.add_handler(urllib.request.HTTPErrorProcessor())
    return opener


def _allowed(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme in ("https", "file") or (parsed.scheme == "http" and parsed.hostname == "127.0.0.1")


def fetch_verified(pin: Pin, download: Download, into: Path) -> Path:
    """Download to ``into``, check sha256; on mismatch delete it and fail hard."""
    if not _allowed(download.url):
        raise ToolError(f"{pin.name}: download URL {download.url} is not https (or file://, or http to 127.0.0.1)")
    target = into / ("download.tar.gz" if download.member else pin.binary)
    digest = hashlib.sha256()
    try:
        with _opener().open(download.url, timeout=60) as response, target.open("wb") as handle:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                handle.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        raise RouteUnavailable(f"unreachable ({exc})") from exc
    if digest.hexdigest() != download.sha256:
        target.unlink()
        raise ToolError(
            f"{pin.name} {pin.version}: checksum mismatch for {download.url}: expected sha256 "
            f"{download.sha256}, got {digest.hexdigest()}; the download was deleted"
        )
    if not download.member:
        return target
    binary = into / Path(download.member).name
    with tarfile.open(target, "r:gz") as archive:
        # Only the one pinned member, only a regular file, written by us: no path in the archive
        # decides where anything lands (and no tarfile extraction filter is needed, which
        # Debian bookworm's Python 3.11.2 does not have).
        try:
            member = archive.getmember(download.member)
        except KeyError:
            raise ToolError(f"{pin.name}: {download.url} has no member {download.member}") from None
        source = archive.extractfile(member) if member.isfile() else None
        if source is None:
            raise ToolError(f"{pin.name}: {download.member} in {download.url} is not a regular file")
        with source, binary.open("wb") as handle:
            shutil.copyfileobj(source, handle)
    target.unlink()
    return binary


def via_download(pin: Pin, rec: StageRecord, scratch: Path) -> Tool:
    download = pin.downloads.get(current_platform())
    if download is None:
        raise RouteUnavailable(f"no pinned checksum for {current_platform()}")
    return store(pin, fetch_verified(pin, download, scratch), "download", download.url)
