"""Role inference: what a device is, from what it says and how it talks, with the reasons.

`infer_role` asks an ordered list of rules (`RULES`); the first that recognises the device names
its role. Each rule reads the device's `_Evidence` and returns (role, reasons) or None, so the
order of the list is the order of precedence."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from plantguard.inventory.asset import CONTROLLER_ROLES, Asset
from plantguard.protocols.registry import names_with_trait, server_roles

# Which protocols make a host industrial, and what their servers are, is declared by each protocol
# (ProtocolSpec.traits / server_role) and read from the registry.
INDUSTRIAL_APPS = names_with_trait("industrial")
CONTROLLER_SERVER_APPS = server_roles()

_PLC_WORDS = re.compile(r"\b(cpu|plc|logix|controller|m340|m580|s7-\d+|simatic|compactlogix|"
                        r"controllogix|micro8\d\d|modicon|1756-l)", re.I)
_ADAPTER_WORDS = re.compile(r"(1756-en|1734-a|communication|adapter|gateway|bridge|ethernet module)", re.I)
_SWITCH_WORDS = re.compile(r"(switch|scalance x|hirschmann|catalyst|ws-c|bridge)", re.I)
_HMI_WORDS = re.compile(r"(hmi|panel|wincc|factorytalk view|comfort panel)", re.I)

_IDENTITY_TEXT_KEYS = ("product", "model", "device_type", "module", "description", "order_number")
_CHANGE_OPS = ("program", "firmware", "control", "config")

Verdict = tuple[str, list[str]] | None


@dataclass
class _Evidence:
    """What one device says and how it talks: the input of every rule."""
    asset: Asset
    client_ops: Counter
    server_ops: Counter
    client_apps: set[str]
    server_apps: set[str]
    role_hints: list[tuple[str, str]]
    n_controller_peers: int

    @cached_property
    def ident(self) -> dict:
        return self.asset.identity

    @cached_property
    def text(self) -> str:
        """The device's own description of itself, for the word patterns."""
        return " ".join(str(self.ident.get(k, "")) for k in _IDENTITY_TEXT_KEYS)

    @cached_property
    def says(self) -> str:
        return f"identifies as {self.text.strip()[:60]}"

    @cached_property
    def hints(self) -> set[str]:
        return {r for r, _ in self.role_hints}

    @cached_property
    def hint_reason(self) -> dict[str, str]:
        return {r: why for r, why in self.role_hints}

    @cached_property
    def industrial_client(self) -> set[str]:
        return self.client_apps & INDUSTRIAL_APPS

    @cached_property
    def industrial_client_list(self) -> str:
        return ", ".join(sorted(self.industrial_client))


# -- the site file -----------------------------------------------------------------------------
def _declared(e: _Evidence) -> Verdict:
    if e.asset.declared and e.asset.declared.get("role"):
        return e.asset.declared["role"], ["declared in the site file"]
    return None


# -- controllers and field devices: what they serve and what they say they are ------------------
def _plc_by_device_type(e: _Evidence) -> Verdict:
    dtype = e.ident.get("device_type")
    if dtype and re.search(r"programmable logic controller", str(dtype), re.I):
        return "plc", [f"identifies as {dtype}"]
    return None


def _rtu(e: _Evidence) -> Verdict:
    if "dnp3-outstation" in e.hints or "iec104" in e.server_apps:
        return "rtu", [e.hint_reason.get("dnp3-outstation") or "serves IEC 60870-5-104"]
    return None


def _io_device(e: _Evidence) -> Verdict:
    if "io-device" in e.hints:
        return "io-device", [e.hint_reason["io-device"]]
    return None


def _switch(e: _Evidence) -> Verdict:
    if _SWITCH_WORDS.search(e.text) or "switch" in e.hints:
        return "switch", [e.hint_reason.get("switch") or e.says]
    return None


def _router(e: _Evidence) -> Verdict:
    if "router" in e.hints or e.asset.is_router:
        return "router", [e.hint_reason.get("router") or "one MAC address fronts many IP addresses"]
    return None


def _plc_by_name(e: _Evidence) -> Verdict:
    if _PLC_WORDS.search(e.text):
        return "plc", [e.says]
    return None


def _controller_comms_module(e: _Evidence) -> Verdict:
    if _ADAPTER_WORDS.search(e.text) and e.server_apps & INDUSTRIAL_APPS:
        return "plc", [f"controller communications module ({e.text.strip()[:60]})"]
    return None


def _broker(e: _Evidence) -> Verdict:
    if "broker" in e.hints or "mqtt" in e.server_apps:
        return "broker", [e.hint_reason.get("broker") or "serves MQTT"]
    return None


def _io_controller(e: _Evidence) -> Verdict:
    if "io-controller" in e.hints:
        return "plc", [e.hint_reason["io-controller"]]
    return None


def _controller_server(e: _Evidence) -> Verdict:
    served = sorted(a for a in e.server_apps if CONTROLLER_SERVER_APPS.get(a) in CONTROLLER_ROLES)
    if served:
        return CONTROLLER_SERVER_APPS[served[0]], [f"serves {', '.join(served)}"]
    return None


def _opcua_gateway(e: _Evidence) -> Verdict:
    if "opcua" in e.server_apps:
        return "gateway", ["serves OPC UA"]
    return None


def _hmi_by_name(e: _Evidence) -> Verdict:
    if _HMI_WORDS.search(e.text):
        return "hmi", [e.says]
    return None


# -- clients of industrial protocols: who changes controllers vs who watches them --------------
def _public_industrial_client(e: _Evidence) -> Verdict:
    if e.industrial_client and e.asset.public:
        return "internet-host", [f"public address that sends {e.industrial_client_list} to the plant"]
    return None


def _changes_controllers(e: _Evidence) -> Verdict:
    if not e.industrial_client:
        return None
    changes = sum(e.client_ops[c] for c in _CHANGE_OPS)
    if changes:
        return "engineering-workstation", [(f"sends {changes} program/control/config operations "
                                            f"({e.industrial_client_list})")]
    return None


def _dnp3_master(e: _Evidence) -> Verdict:
    if e.industrial_client and "dnp3-master" in e.hints:
        return "hmi", [e.hint_reason["dnp3-master"]]
    return None


def _polls_controllers(e: _Evidence) -> Verdict:
    if e.industrial_client:
        return "hmi", [f"polls {e.n_controller_peers} controller(s) over {e.industrial_client_list}"]
    return None


# -- everything else ---------------------------------------------------------------------------
def _mqtt_sensor(e: _Evidence) -> Verdict:
    if "mqtt" in e.client_apps or "mqtt-client" in e.hints:
        return "sensor", [e.hint_reason.get("mqtt-client") or "publishes over MQTT"]
    return None


def _public_host(e: _Evidence) -> Verdict:
    if e.asset.public:
        return "internet-host", ["public IP address"]
    return None


def _it_host(e: _Evidence) -> Verdict:
    if e.client_apps or e.server_apps:
        apps = sorted(e.client_apps | e.server_apps)
        return "it-host", [f"speaks only IT protocols ({', '.join(apps[:5])})"]
    return None


RULES: tuple[Callable[[_Evidence], Verdict], ...] = (
    _declared,
    _plc_by_device_type, _rtu, _io_device, _switch, _router, _plc_by_name,
    _controller_comms_module, _broker, _io_controller, _controller_server, _opcua_gateway,
    _hmi_by_name,
    _public_industrial_client, _changes_controllers, _dnp3_master, _polls_controllers,
    _mqtt_sensor, _public_host, _it_host,
)


def infer_role(asset: Asset, client_ops: Counter, server_ops: Counter, client_apps: set[str],
               server_apps: set[str], role_hints: list[tuple[str, str]],
               n_controller_peers: int) -> tuple[str, list[str]]:
    """(role, reasons). client_ops/server_ops: operation categories sent/received;
    role_hints: (role, reason) pairs from protocol observations."""
    evidence = _Evidence(asset, client_ops, server_ops, client_apps, server_apps, role_hints,
                         n_controller_peers)
    for rule in RULES:
        verdict = rule(evidence)
        if verdict is not None:
            return verdict
    return "unknown", ["not enough traffic to tell"]
