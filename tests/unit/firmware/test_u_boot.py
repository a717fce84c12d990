"""The U-Boot fragment's settings, Kconfig's silent drops, the cache key and the build date."""

from __future__ import annotations

from tasks.firmware import u_boot
from tests.support.project import REPO

FRAGMENT = (REPO / u_boot.FRAGMENT).read_text()


def test_the_fragment_asks_for_verified_and_measured_boot() -> None:
    settings = u_boot.fragment_settings(FRAGMENT)
    for name in ("CONFIG_FIT_SIGNATURE", "CONFIG_RSA", "CONFIG_TPM_V2", "CONFIG_CMD_HASH", "CONFIG_ENV_IS_NOWHERE"):
        assert settings[name] == "y", name
    assert settings["CONFIG_LEGACY_IMAGE_FORMAT"] == "n"  # unsigned legacy images never boot
    assert settings["CONFIG_BOOTDELAY"] == "-2"  # no escape to a prompt
    command = settings["CONFIG_BOOTCOMMAND"]
    assert "tpm2 pcr_extend 8" in command and "tpm2 pcr_extend 9" in command
    assert command.index("pcr_extend 9") < command.index("bootm")  # measured before it runs


def test_a_setting_kconfig_dropped_is_named() -> None:
    dotconfig = "CONFIG_FIT=y\nCONFIG_RSA=y\n# CONFIG_LEGACY_IMAGE_FORMAT is not set\n"
    fragment = "CONFIG_FIT=y\nCONFIG_RSA=y\nCONFIG_TPM_V2=y\n# CONFIG_LEGACY_IMAGE_FORMAT is not set\n"
    assert u_boot.dropped_settings(dotconfig, fragment) == ["CONFIG_TPM_V2=y (got n)"]
    assert u_boot.dropped_settings(dotconfig + "CONFIG_TPM_V2=y\n", fragment) == []


def test_the_cache_key_follows_everything_that_decides_the_binary() -> None:
    source = {"u-boot.dsc": "a" * 64}
    key = u_boot.cache_key(source, b"CONFIG_X=y\n", "gcc 12")
    assert key == u_boot.cache_key(dict(source), b"CONFIG_X=y\n", "gcc 12")
    assert key != u_boot.cache_key(source, b"CONFIG_X=n\n", "gcc 12")
    assert key != u_boot.cache_key(source, b"CONFIG_X=y\n", "gcc 13")
    assert key != u_boot.cache_key({"u-boot.dsc": "b" * 64}, b"CONFIG_X=y\n", "gcc 12")


def test_the_build_date_is_the_newest_changelog_entry() -> None:
    changelog = (
        "u-boot (2023.01+dfsg-2+deb12u3) bookworm; urgency=medium\n\n  * fix\n\n"
        " -- Maintainer <m@example.org>  Sat, 01 Jun 2024 10:00:00 +0000\n\n"
        "u-boot (2023.01+dfsg-1) unstable; urgency=medium\n\n"
        " -- Maintainer <m@example.org>  Mon, 09 Jan 2023 10:00:00 +0000\n"
    )
    assert u_boot.changelog_epoch(changelog) == 1717236000
