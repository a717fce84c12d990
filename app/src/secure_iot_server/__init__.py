"""secure-iot-server: a small device registry for IoT public keys."""

from __future__ import annotations

__version__ = "0.1.0"
