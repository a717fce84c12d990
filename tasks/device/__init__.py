"""Talk 05/08 - the device side (issue #14): factory enrolment and the device agent's TPM work.

A device boots firmware: this package stands above tasks/firmware, whose swtpm module runs its TPM.
"""

from tasks.device.agent import Agent, resumed
from tasks.device.factory import Batch, Manufactured, manufacture, manufacturer_for
from tasks.device.manufacturer import Manufacturer
from tasks.firmware.swtpm import Tpm, running

__all__ = [
    "Agent",
    "Batch",
    "Manufactured",
    "Manufacturer",
    "Tpm",
    "manufacture",
    "manufacturer_for",
    "resumed",
    "running",
]
