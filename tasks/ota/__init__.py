"""Talk 03/04 - over-the-air updates (issue #15): TUF repository, RAUC bundles, the device update client.

The stages use what is re-exported here; the modules below are one concern each.
"""

from __future__ import annotations

from tasks.ota import bundle, offline, taken
from tasks.ota.client import BootSlots, Device, Outcome, Source, UpdateRefused, update
from tasks.ota.keys import KEY_DIR, RaucPki, TufKeys, rauc_pki
from tasks.ota.mtls import DeviceTls, serves
from tasks.ota.repository import CONFIG, Config, Repository, load_config, role_name, target_path
from tasks.ota.serve import ServerTls, serve

__all__ = [
    "CONFIG",
    "KEY_DIR",
    "BootSlots",
    "Config",
    "Device",
    "DeviceTls",
    "Outcome",
    "RaucPki",
    "Repository",
    "ServerTls",
    "Source",
    "TufKeys",
    "UpdateRefused",
    "bundle",
    "load_config",
    "offline",
    "rauc_pki",
    "role_name",
    "serve",
    "serves",
    "taken",
    "target_path",
    "update",
]
