"""The local control plane's secrets are never at their path with a wider mode than 0600 (issue #30, K1).

An inotify watcher on the PKI directory while the real code makes the CA, a leaf, the
service-account key and the kubeconfig (which carries the client key): every mode seen at a
secret's own name is 0600, and no secret's mode changes once it is there (a chmod after the
rename would show as an attribute event on that name: the file was readable at its path first).
"""

from __future__ import annotations

import stat
from pathlib import Path

from tasks.cluster import control_plane, pki
from tests.support.inotify import watching

SECRETS = ("ca.key", "admin.key", "sa.key", "kubeconfig")


def test_no_secret_of_the_control_plane_is_ever_wider_than_0600(tmp_path: Path) -> None:
    with watching(tmp_path) as seen:
        ca = pki.certificate_authority(tmp_path)
        admin = pki.issue(ca, tmp_path, "admin", "admin", organization="system:masters", client=True)
        pki.service_account_key(tmp_path)
        control_plane.kubeconfig(tmp_path / "kubeconfig", ca, admin, "admin")
    for name in SECRETS:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        assert seen.modes(name) <= {0o600}, f"{name} was seen at its path as {sorted(map(oct, seen.modes(name)))}"
        assert not seen.changed_after_it_appeared(name), f"{name} was chmod-ed after it appeared at its path"
    assert {n for _, n, _ in seen.events} >= set(SECRETS), "the watcher saw every secret arrive"


def test_the_test_fleets_keys_are_owner_only_too(tmp_path: Path) -> None:
    """The helpers that make a test fleet write its CA and leaf keys through the same writer (a key left
    0644 by a test is still a key another user of the CI machine can read while the test runs)."""
    from tests.support import fleet, network_pki

    (tmp_path / "server").mkdir()
    fleet.fleet_ca(tmp_path / "server")
    network_pki.make_fleet(tmp_path / "network")
    keys = sorted(tmp_path.rglob("*.key"))
    assert keys, "the helpers made keys"
    wider = {str(k.relative_to(tmp_path)): oct(stat.S_IMODE(k.stat().st_mode)) for k in keys}
    assert {k: m for k, m in wider.items() if m != oct(0o600)} == {}
