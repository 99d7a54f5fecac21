"""Role inference: what a device is, from what it says and how it talks, with the reasons."""
from __future__ import annotations

import re
from collections import Counter

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


def infer_role(asset: Asset, client_ops: Counter, server_ops: Counter, client_apps: set[str],
               server_apps: set[str], role_hints: list[tuple[str, str]],
               n_controller_peers: int) -> tuple[str, list[str]]:
    """(role, reasons). client_ops/server_ops: operation categories sent/received;
    role_hints: (role, reason) pairs from protocol observations."""
    reasons: list[str] = []
    ident = asset.identity
    text = " ".join(str(ident.get(k, "")) for k in ("product", "model", "device_type", "module",
                                                    "description", "order_number"))
    if asset.declared and asset.declared.get("role"):
        return asset.declared["role"], ["declared in the site file"]
    hints = {r for r, _ in role_hints}
    hint_reason = {r: why for r, why in role_hints}

    # Controllers and field devices: what they serve and what they say they are.
    if ident.get("device_type") and re.search(r"programmable logic controller", str(ident["device_type"]), re.I):
        return "plc", [f"identifies as {ident['device_type']}"]
    if "dnp3-outstation" in hints or "iec104" in server_apps:
        return "rtu", [hint_reason.get("dnp3-outstation") or "serves IEC 60870-5-104"]
    if "io-device" in hints:
        return "io-device", [hint_reason["io-device"]]
    if _SWITCH_WORDS.search(text) or "switch" in hints:
        return "switch", [hint_reason.get("switch") or f"identifies as {text.strip()[:60]}"]
    if "router" in hints or asset.is_router:
        return "router", [hint_reason.get("router") or "one MAC address fronts many IP addresses"]
    if _PLC_WORDS.search(text):
        return "plc", [f"identifies as {text.strip()[:60]}"]
    if _ADAPTER_WORDS.search(text) and server_apps & INDUSTRIAL_APPS:
        return "plc", [f"controller communications module ({text.strip()[:60]})"]
    if "broker" in hints or "mqtt" in server_apps:
        return "broker", [hint_reason.get("broker") or "serves MQTT"]
    if "io-controller" in hints:
        return "plc", [hint_reason["io-controller"]]
    ctl_served = [a for a in server_apps if CONTROLLER_SERVER_APPS.get(a) in CONTROLLER_ROLES]
    if ctl_served:
        role = CONTROLLER_SERVER_APPS[sorted(ctl_served)[0]]
        return role, [f"serves {', '.join(sorted(ctl_served))}"]
    if "opcua" in server_apps:
        return "gateway", ["serves OPC UA"]
    if _HMI_WORDS.search(text):
        return "hmi", [f"identifies as {text.strip()[:60]}"]

    # Clients of industrial protocols: who changes controllers vs who watches them.
    ind_client = client_apps & INDUSTRIAL_APPS
    if ind_client and asset.public:
        return "internet-host", [f"public address that sends {', '.join(sorted(ind_client))} to the plant"]
    if ind_client:
        changes = sum(client_ops[c] for c in ("program", "firmware", "control", "config"))
        if changes:
            return "engineering-workstation", [f"sends {changes} program/control/config operations "
                                               f"({', '.join(sorted(ind_client))})"]
        if "dnp3-master" in hints:
            return "hmi", [hint_reason["dnp3-master"]]
        reasons.append(f"polls {n_controller_peers} controller(s) over {', '.join(sorted(ind_client))}")
        return "hmi", reasons
    if "mqtt" in client_apps or "mqtt-client" in hints:
        return "sensor", [hint_reason.get("mqtt-client") or "publishes over MQTT"]
    if asset.public:
        return "internet-host", ["public IP address"]
    if client_apps or server_apps:
        apps = sorted(client_apps | server_apps)
        return "it-host", [f"speaks only IT protocols ({', '.join(apps[:5])})"]
    return "unknown", ["not enough traffic to tell"]
