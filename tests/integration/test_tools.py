"""tools.lock resolution: checksums, route order, the cache, and PATH strays — for real.

A throwaway tool (`hello`, a shell script) is "released" as a file:// URL, so the download
route runs end to end without leaving loopback; the go route runs the real `go` with the
module proxy switched off, so it fails fast and offline.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tomllib
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.toolchain.lock import current_platform, load
from tests.support.project import REPO, run_tasks

HELLO = b"#!/bin/sh\necho 'hello 1.2.3'\n"


def write_lock(root: Path, url: str, sha256: str, *, member: str = "", go: bool = False) -> None:
    lines = [
        "schema = 1",
        "[tools.hello]",
        'version = "1.2.3"',
        'why = "a test tool"',
        'version_args = ["--version"]',
    ]
    if go:
        lines.append('go = { module = "example.com/hello", package = "example.com/hello/cmd/hello" }')
    lines += [
        f'[tools.hello.download."{current_platform()}"]',
        f'url = "{url}"',
        f'sha256 = "{sha256}"',
    ]
    if member:
        lines.append(f'member = "{member}"')
    (root / "tools.lock").write_text("\n".join(lines) + "\n")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An empty tools cache, and Go kept offline."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "GOPROXY": "off", "GOFLAGS": "-mod=mod"}


@pytest.fixture
def release(tmp_path: Path) -> Path:
    path = tmp_path / "release" / "hello"
    path.parent.mkdir()
    path.write_bytes(HELLO)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verified_then_cached_with_documented_json(project: Path, release: Path, env: dict[str, str]) -> None:
    write_lock(project, release.as_uri(), sha(HELLO))
    first = run_tasks("tools", "--json", "hello", root=project, env=env)
    assert first.returncode == 0, first.output
    shown = json.loads(first.stdout)
    assert set(shown) == {"hello"}
    assert set(shown["hello"]) == {"version", "path", "route", "sha256"}
    assert shown["hello"]["version"] == "1.2.3"
    assert shown["hello"]["route"] == "download"
    assert shown["hello"]["sha256"] == sha(HELLO)
    installed = Path(shown["hello"]["path"])
    assert installed.is_relative_to(Path(env["XDG_CACHE_HOME"]) / "secure-iot" / "tools" / "hello" / "1.2.3")
    second = json.loads(run_tasks("tools", "--json", "hello", root=project, env=env).stdout)
    assert second["hello"]["route"] == "cache (download)"
    evidence = json.loads((project / "out" / "evidence.json").read_text())
    assert evidence["stages"]["tools"]["tools"] == {"hello": "1.2.3"}


def test_checksum_mismatch_is_refused_and_deleted(project: Path, release: Path, env: dict[str, str]) -> None:
    wrong = sha(b"something else")
    write_lock(project, release.as_uri(), wrong)
    result = run_tasks("tools", "hello", root=project, env=env)
    assert result.returncode == 2
    assert "hello 1.2.3: checksum mismatch" in result.stderr
    assert f"expected sha256 {wrong}" in result.stderr
    assert f"got {sha(HELLO)}" in result.stderr
    assert not list((Path(env["XDG_CACHE_HOME"]) / "secure-iot" / "tools" / "hello").rglob("hello"))


def test_archive_member_is_extracted(project: Path, tmp_path: Path, env: dict[str, str]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = len(HELLO), 0o755
        archive.addfile(info, io.BytesIO(HELLO))
    asset = tmp_path / "hello.tar.gz"
    asset.write_bytes(buffer.getvalue())
    write_lock(project, asset.as_uri(), sha(buffer.getvalue()), member="bin/hello")
    result = run_tasks("tools", "--json", "hello", root=project, env=env)
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout)["hello"]["sha256"] == sha(HELLO)


def test_archive_member_must_be_the_pinned_regular_file(project: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """A link where the binary should be is refused, not followed (no extraction filter needed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("bin/hello")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    asset = tmp_path / "hello.tar.gz"
    asset.write_bytes(buffer.getvalue())
    write_lock(project, asset.as_uri(), sha(buffer.getvalue()), member="bin/hello")
    result = run_tasks("tools", "hello", root=project, env=env)
    assert result.returncode != 0
    assert "bin/hello in file://" in result.output and "is not a regular file" in result.output
    assert "Traceback" not in result.output


def test_routes_are_tried_in_order_and_listed(project: Path, tmp_path: Path, env: dict[str, str]) -> None:
    write_lock(project, (tmp_path / "missing").as_uri(), sha(HELLO), go=True)
    result = run_tasks("tools", "hello", root=project, env=env)
    assert result.returncode == 2
    line = next(x for x in result.stderr.splitlines() if "not installable" in x)
    assert re.search(r"download: unreachable .*; go: .*", line), line
    assert line.index("download:") < line.index("go:")
    assert "install by hand: go install example.com/hello/cmd/hello@v1.2.3" in line
    assert result.stderr.index("trying download") < result.stderr.index("trying go")


def test_unpinned_binary_on_path_is_reported_not_used(
    project: Path, release: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    stray_dir = tmp_path / "stray"
    stray_dir.mkdir()
    stray = stray_dir / "hello"
    stray.write_text("#!/bin/sh\necho 'hello 0.0.1'\n")
    stray.chmod(0o755)
    write_lock(project, release.as_uri(), sha(HELLO))
    result = run_tasks("tools", "--json", "hello", root=project, env={**env, "PATH": f"{stray_dir}:/usr/bin:/bin"})
    assert result.returncode == 0, result.output
    assert Path(json.loads(result.stdout)["hello"]["path"]) != stray
    assert f"{stray} (hello 0.0.1) is on PATH and is not used" in result.stderr


def test_tampered_cache_entry_fails_closed(project: Path, release: Path, env: dict[str, str]) -> None:
    write_lock(project, release.as_uri(), sha(HELLO))
    installed = Path(json.loads(run_tasks("tools", "--json", "hello", root=project, env=env).stdout)["hello"]["path"])
    installed.write_bytes(HELLO + b"echo pwned\n")
    result = run_tasks("tools", "hello", root=project, env=env)
    assert result.returncode == 2
    assert "its receipt says" in result.stderr and sha(HELLO) in result.stderr
    assert not installed.exists()


def test_lock_errors_name_the_field(tmp_path: Path) -> None:
    write_lock(tmp_path, "https://example.invalid/hello", "not-a-digest")
    with pytest.raises(InputError, match=r"tools\.hello\.download\.[a-z]+/[a-z0-9]+\.sha256"):
        load(tmp_path / "tools.lock")


def test_wheel_tool_pins_agree_with_their_hash_locks() -> None:
    pins = tomllib.loads((REPO / "tools.lock").read_text())["tools"]
    for name, pin in pins.items():
        if "pypi" not in pin:
            continue
        lock = (REPO / pin["pypi"]["lock"]).read_text()
        assert f"{pin['pypi']['package']}=={pin['version']} \\" in lock, name
        assert "--hash=sha256:" in lock


def test_every_pinned_download_has_a_checksum_source() -> None:
    for pin in load(REPO / "tools.lock").values():
        for plat, download in pin.downloads.items():
            assert download.url.startswith("https://"), (pin.name, plat)
            assert download.source, (pin.name, plat)


def test_a_changed_pin_reinstalls_instead_of_trusting_the_cache(
    project: Path, release: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    write_lock(project, release.as_uri(), sha(HELLO))
    assert run_tasks("tools", "hello", root=project, env=env).returncode == 0
    newer = tmp_path / "release-2" / "hello"
    newer.parent.mkdir()
    newer.write_bytes(HELLO.replace(b"1.2.3", b"1.2.3 (rebuilt)"))
    write_lock(project, newer.as_uri(), sha(newer.read_bytes()))
    shown = json.loads(run_tasks("tools", "--json", "hello", root=project, env=env).stdout)
    assert shown["hello"]["route"] == "download" and shown["hello"]["sha256"] == sha(newer.read_bytes())


def test_an_apt_minimum_must_be_an_upstream_version(tmp_path: Path) -> None:
    """dpkg --compare-versions reads a junk minimum as the lowest version: every build would pass."""
    (tmp_path / "tools.lock").write_text(
        'schema = 1\n[tools.x]\nversion = "<unknown>"\nwhy = "w"\napt = { package = "x" }\n'
    )
    with pytest.raises(InputError, match=r"tools\.x\.version: '<unknown>' is not an upstream version"):
        load(tmp_path / "tools.lock")


def test_a_route_that_is_not_a_table_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "tools.lock").write_text('schema = 1\n[tools.x]\nversion = "1"\nwhy = "w"\ngo = "not a table"\n')
    with pytest.raises(InputError, match=r"tools\.x\.go: expected a table"):
        load(tmp_path / "tools.lock")


def test_apt_tool_with_a_missing_also_package_goes_back_through_apt() -> None:
    """A data package removed by hand (ssg-debian under oscap) must not count as installed;
    nor does a build below the pinned minimum (the apt route upgrades it, ADR 0021)."""
    from tasks.toolchain.apt import from_system_package, installed_deb, upstream
    from tasks.toolchain.lock import AptRoute, Pin

    deb = installed_deb("dpkg")
    assert deb is not None
    at_pin = from_system_package(Pin("dpkg-query", upstream(deb), "t", (), "dpkg-query", apt=AptRoute("dpkg")))
    assert at_pin is not None and at_pin.version == upstream(deb) and at_pin.route == f"apt ({deb})"
    newer = from_system_package(Pin("dpkg-query", "1.0", "t", (), "dpkg-query", apt=AptRoute("dpkg")))
    assert newer is not None and newer.version == upstream(deb)  # a newer build than the minimum: accepted
    assert from_system_package(Pin("dpkg-query", "99", "t", (), "dpkg-query", apt=AptRoute("dpkg"))) is None
    incomplete = Pin("dpkg-query", "1.0", "t", (), "dpkg-query", apt=AptRoute("dpkg", ("no-such-package-secure-iot",)))
    assert from_system_package(incomplete) is None


def test_data_file_is_reached_only_through_the_tools_own_packages(tmp_path: Path) -> None:
    from tasks.core.errors import ToolError
    from tasks.core.runner import Tool
    from tasks.toolchain.resolve import resolve

    oscap = resolve("oscap-chroot", REPO, StageRecord(stage="tools", root=REPO))
    assert "ssg-debian" in oscap.packages
    policy = (REPO / "security-policy.yaml").read_text()
    named = re.search(r"datastream: (\S+)", policy)
    assert named is not None
    assert oscap.data_file(named.group(1)).is_file()
    with pytest.raises(ToolError, match=r"/etc/hostname is not provided by its pinned packages \(openscap-utils"):
        oscap.data_file("/etc/hostname")  # exists, but no pinned package ships it
    with pytest.raises(ToolError, match="not a Debian package"):
        Tool("cosign", "1", tmp_path / "cosign", route="go").data_file("/usr/share/x")


def wrapper_module(project: Path, banner: str) -> None:
    """A wrapper module the project keeps (tools/hello): no dependencies, so Go builds it offline."""
    module = project / "tools" / "hello"
    module.mkdir(parents=True, exist_ok=True)
    (module / "go.mod").write_text("module example.com/tools/hello\n\ngo 1.22\n")
    (module / "go.sum").write_text("")
    main = f'package main\n\nimport "os"\n\nfunc main() {{ _, _ = os.Stdout.WriteString("{banner}\\n") }}\n'
    (module / "main.go").write_text(main)
    (project / "tools.lock").write_text(
        'schema = 1\n[tools.hello]\nversion = "1.2.3"\nwhy = "a test tool"\nversion_args = []\n'
        'go = { module = "example.com/tools/hello", source = "tools/hello", package = "." }\n'
    )


@pytest.mark.slow
def test_a_wrapper_module_is_built_from_the_repository_and_rebuilt_when_edited(
    project: Path, env: dict[str, str]
) -> None:
    wrapper_module(project, "hello 1.2.3")
    first = run_tasks("tools", "--json", "hello", root=project, env=env)
    assert first.returncode == 0, first.output
    built = json.loads(first.stdout)["hello"]
    assert built["route"] == "go" and built["sha256"] == sha(Path(built["path"]).read_bytes())
    again = json.loads(run_tasks("tools", "--json", "hello", root=project, env=env).stdout)["hello"]
    assert again["route"] == "cache (go)" and again["sha256"] == built["sha256"]
    wrapper_module(project, "hello 1.2.3 (edited)")  # same pin, other sources: never the cached binary
    edited = json.loads(run_tasks("tools", "--json", "hello", root=project, env=env).stdout)["hello"]
    assert edited["route"] == "go" and edited["sha256"] != built["sha256"]


def test_a_wrapper_module_source_must_stay_inside_the_repository(tmp_path: Path) -> None:
    (tmp_path / "tools.lock").write_text(
        'schema = 1\n[tools.x]\nversion = "1"\nwhy = "w"\n'
        'go = { module = "m", package = ".", source = "../elsewhere" }\n'
    )
    with pytest.raises(InputError, match=r"tools\.x\.go\.source: expected a directory of the repository"):
        load(tmp_path / "tools.lock")


def test_a_uv_config_in_the_tree_does_not_redirect_a_wheel_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv reads uv.toml and [tool.uv] from where it runs (the tree under test): --no-config ignores them."""
    from tasks.toolchain.pypi import via_pypi

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "uv.toml").write_text('index-url = "http://127.0.0.1:9/simple"\nno-binary = true\n')
    (tree / "pyproject.toml").write_text('[tool.uv]\nindex-url = "http://127.0.0.1:9/simple"\n')
    monkeypatch.chdir(tree)
    pin = load(REPO / "tools.lock")["bandit"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    tool = via_pypi(pin, StageRecord(stage="tools", root=REPO), scratch, REPO)
    assert tool.route == "pypi" and tool.path.is_file()
