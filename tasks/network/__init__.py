"""The device network (talk 04/09): zones in network namespaces, 802.1X admission, flows, scans."""

from tasks.network import crl, exposure, flows, ipsec, quarantine, state
from tasks.network.device_calls import Call, check_in
from tasks.network.fleet_server import FleetServer
from tasks.network.plan import Plan, load
from tasks.network.port_access import Credentials, attach
from tasks.network.ruleset import generate
from tasks.network.state import State
from tasks.network.topology import Identity, down, status, up

__all__ = [
    "Call",
    "Credentials",
    "FleetServer",
    "Identity",
    "Plan",
    "State",
    "attach",
    "check_in",
    "crl",
    "down",
    "exposure",
    "flows",
    "generate",
    "ipsec",
    "load",
    "quarantine",
    "state",
    "status",
    "up",
]
