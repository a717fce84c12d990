"""infra/network/topology.toml as typed data: zones, hosts, declared exposure, the allow-list."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import InputError

TOPOLOGY = Path("infra/network/topology.toml")
PROTOCOLS = ("tcp", "udp")
VIAS = ("ipsec",)


@dataclass(frozen=True)
class Zone:
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    first_device: int = 0


@dataclass(frozen=True)
class Host:
    name: str
    zone: str
    address: ipaddress.IPv4Address


@dataclass(frozen=True)
class Exposure:
    host: str
    proto: str
    port: int
    service: str
    clients: tuple[str, ...] = ()  # hosts the service itself admits (the fleet database's pg_hba); () = no such list


@dataclass(frozen=True)
class Allow:
    source: str  # a zone
    target: str  # a zone or a host
    proto: str
    port: int | None  # None: any port
    why: str
    via: str | None = None  # "ipsec": only inside the tunnel


@dataclass(frozen=True)
class Plan:
    zones: dict[str, Zone]
    hosts: dict[str, Host]
    exposure: tuple[Exposure, ...]
    allow: tuple[Allow, ...]

    def network_of(self, name: str) -> ipaddress.IPv4Network:
        """A zone's subnet, or a host's /32."""
        if name in self.zones:
            return self.zones[name].subnet
        return ipaddress.IPv4Network(f"{self.hosts[name].address}/32")

    def zone_of(self, address: ipaddress.IPv4Address) -> str | None:
        return next((z.name for z in self.zones.values() if address in z.subnet), None)

    def device_address(self, index: int) -> ipaddress.IPv4Address:
        devices = self.zones["devices"]
        address = devices.subnet.network_address + devices.first_device + index
        if address not in devices.subnet or address == devices.subnet.broadcast_address:
            raise InputError(f"device #{index}: the devices subnet {devices.subnet} is full")
        return address

    @property
    def needs_ipsec(self) -> bool:
        return any(rule.via == "ipsec" for rule in self.allow)

    def edge_addresses(self) -> set[ipaddress.IPv4Address]:
        return {zone.gateway for zone in self.zones.values()}

    def explains(
        self,
        source: ipaddress.IPv4Address,
        target: ipaddress.IPv4Address,
        proto: str,
        port: int,
        *,
        plaintext: bool = True,
    ) -> Allow | None:
        """The allow rule that permits this flow, if any (None: the flow is unexplained).

        A flow seen in plaintext is never explained by a rule that allows it only via IPsec.
        """
        for rule in self.allow:
            if plaintext and rule.via is not None:
                continue
            if (
                source in self.zones[rule.source].subnet
                and target in self.network_of(rule.target)
                and rule.proto == proto
                and rule.port in (None, port)
            ):
                return rule
        return None


def _text(body: dict[str, Any], key: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}.{key}: expected a non-empty string")
    return value


def _port(body: dict[str, Any], where: str, *, required: bool) -> int | None:
    value = body.get("port")
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise InputError(f"{where}.port: expected a port number 1-65535")
    return value


def _proto(body: dict[str, Any], where: str) -> str:
    proto = _text(body, "proto", where)
    if proto not in PROTOCOLS:
        raise InputError(f"{where}.proto: {proto!r} is not one of {', '.join(PROTOCOLS)}")
    return proto


def _clients(body: dict[str, Any], hosts: dict[str, Host], where: str) -> tuple[str, ...]:
    """An exposure's ``clients``: hosts of the topology (the service admits their addresses only)."""
    clients = body.get("clients", [])
    if not isinstance(clients, list) or not all(isinstance(c, str) and c in hosts for c in clients):
        raise InputError(f"{where}.clients: expected a list of the topology's hosts")
    return tuple(clients)


def parse(data: dict[str, Any], where: str = str(TOPOLOGY)) -> Plan:
    zones: dict[str, Zone] = {}
    for name, body in data.get("zones", {}).items():
        try:
            subnet = ipaddress.IPv4Network(_text(body, "subnet", f"{where} zones.{name}"))
            gateway = ipaddress.IPv4Address(_text(body, "gateway", f"{where} zones.{name}"))
        except ValueError as exc:
            raise InputError(f"{where} zones.{name}: {exc}") from exc
        if gateway not in subnet:
            raise InputError(f"{where} zones.{name}: gateway {gateway} is outside {subnet}")
        zones[name] = Zone(name, subnet, gateway, int(body.get("first_device", 0)))
    missing = {"devices", "fleet", "ops"} - zones.keys()
    if missing:
        raise InputError(f"{where}: zones {', '.join(sorted(missing))} are required")
    hosts: dict[str, Host] = {}
    for name, body in data.get("hosts", {}).items():
        zone = _text(body, "zone", f"{where} hosts.{name}")
        if zone not in zones:
            raise InputError(f"{where} hosts.{name}: unknown zone {zone!r}")
        try:
            address = ipaddress.IPv4Address(_text(body, "address", f"{where} hosts.{name}"))
        except ValueError as exc:
            raise InputError(f"{where} hosts.{name}: {exc}") from exc
        if address not in zones[zone].subnet:
            raise InputError(f"{where} hosts.{name}: {address} is outside zone {zone} ({zones[zone].subnet})")
        hosts[name] = Host(name, zone, address)
    exposure = []
    for i, body in enumerate(data.get("exposure", [])):
        at = f"{where} exposure[{i}]"
        host = _text(body, "host", at)
        if host not in hosts:
            raise InputError(f"{at}: unknown host {host!r}")
        port = _port(body, at, required=True)
        assert port is not None  # nosec B101 - required=True never returns None
        exposure.append(Exposure(host, _proto(body, at), port, _text(body, "service", at), _clients(body, hosts, at)))
    allow = []
    for i, body in enumerate(data.get("allow", [])):
        at = f"{where} allow[{i}]"
        source, target = _text(body, "from", at), _text(body, "to", at)
        if source not in zones:
            raise InputError(f"{at}.from: {source!r} is not a zone")
        if target not in zones and target not in hosts:
            raise InputError(f"{at}.to: {target!r} is neither a zone nor a host")
        via = body.get("via")
        if via is not None and via not in VIAS:
            raise InputError(f"{at}.via: {via!r} is not one of {', '.join(VIAS)}")
        port = _port(body, at, required=False)
        allow.append(Allow(source, target, _proto(body, at), port, _text(body, "why", at), via))
    return Plan(zones, hosts, tuple(exposure), tuple(allow))


def load(root: Path) -> Plan:
    path = root / TOPOLOGY
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{TOPOLOGY}: missing; the network layer is declared there") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{TOPOLOGY}: {exc}") from exc
    return parse(data)
