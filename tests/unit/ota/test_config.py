"""The OTA config files load as documented and refuse what they must (no tool runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.ota import fleet
from tasks.ota.repository import load_config, role_name, target_path
from tests.support.project import REPO


def test_the_committed_config_and_desired_state_load() -> None:
    config = load_config(REPO / "infra" / "ota" / "repository.toml")
    assert config.default_model in config.models
    assert config.expiry_days["timestamp"] < config.expiry_days["snapshot"] < config.expiry_days["targets"]
    desired = fleet.load(REPO / "fleet" / "desired.toml")
    assert desired.model in config.models
    assert [(g.name, g.wave) for g in desired.groups] == [("canary", 1), ("fleet", 2)]


def test_paths_a_model_role_covers() -> None:
    assert role_name("m") == "model-m"
    assert target_path("m") == "m/firmware.raucb"
    assert target_path("m", "canary") == "m/groups/canary/firmware.raucb"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('model = "m"\n[[group]]\nname = "a"\nwave = 1\nrelease = "sha256:abc"\n', "not a sha256"),
        ('model = "m"\n[[group]]\nname = "a"\nwave = 1\n[[group]]\nname = "a"\nwave = 2\n', "unique"),
        ('model = "m"\n', "not a valid fleet desired state"),
    ],
)
def test_a_bad_desired_state_is_one_actionable_error(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "desired.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=error):
        fleet.load(path)


def test_a_default_model_outside_the_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "repository.toml"
    text = (
        (REPO / "infra" / "ota" / "repository.toml")
        .read_text()
        .replace('default_model = "qemu-virt-a57"', 'default_model = "x"')
    )
    path.write_text(text)
    with pytest.raises(InputError, match="default_model one of them"):
        load_config(path)
