"""Role inference: what a device is, from what it says and how it talks, with the reasons.

The evidence -> role knowledge is data: the fingerprints in src/plantguard/data/fingerprints/*.yaml
(and a user's own, PLANTGUARD_FINGERPRINTS). `infer_role` gathers one device's evidence, lets
inventory.fingerprints score it (the role whose fingerprints combine to the highest confidence),
adds the identity facts the sure fingerprints conclude (never overwriting what the device said)
and returns the role with the reasons: which fingerprints fired, on what evidence. Only the site
file outranks the fingerprints: a declared role is taken as declared."""
from __future__ import annotations

from collections import Counter

from plantguard.inventory.asset import Asset
from plantguard.inventory.fingerprints import Evidence, score
from plantguard.protocols.registry import names_with_trait, server_roles

# Which protocols make a host industrial, and what their servers are, is declared by each protocol
# (ProtocolSpec.traits / server_role) and read from the registry.
INDUSTRIAL_APPS = names_with_trait("industrial")
CONTROLLER_SERVER_APPS = server_roles()


def infer_role(asset: Asset, client_ops: Counter, server_ops: Counter, client_apps: set[str],
               server_apps: set[str], role_hints: list[tuple[str, str]],
               n_controller_peers: int, *, client_ports: set[tuple[str, int]] | None = None
               ) -> tuple[str, list[str]]:
    """(role, reasons). client_ops/server_ops: operation categories sent/received (industrial
    protocols); role_hints: (role, reason) pairs from protocol observations and the address
    binder; client_ports: the (l4, port) pairs the device connected to, when the caller knows them
    (lets the port fingerprints of clients fire, e.g. MQTT over TLS to 8883)."""
    if asset.declared and asset.declared.get("role"):
        return asset.declared["role"], ["declared in the site file"]
    evidence = Evidence(asset, Counter(client_ops), Counter(server_ops), set(client_apps), set(server_apps),
                        list(role_hints), n_controller_peers, client_ports)
    verdict = score(evidence)
    _add_identity(asset, verdict.identity)
    return verdict.role, verdict.reasons


def _add_identity(asset: Asset, facts: dict[str, tuple[str, str]]) -> None:
    """Identity facts concluded by fingerprints fill only what the device did not state; which
    fingerprint gave each is kept under identity['fingerprints']."""
    if not facts:
        return
    ident = asset.identity
    given = {}
    for key, (value, fp_id) in facts.items():
        if ident.get(key) in (None, "", [], {}):
            ident[key] = value
            given[key] = fp_id
    if given:
        ident.setdefault("fingerprints", {}).update(given)
