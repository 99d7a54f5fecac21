"""The address-change alert (monitor/alerts.py, alert.address-change): an address whose chosen MAC
switches to one its flows were already seen with raises nothing; a MAC never seen with it does.
cip_only.pcap's 192.168.0.30 sends from one MAC and is reached through another (a routed leg),
so which one the inventory gives it depends on the flows a checkpoint holds."""
from __future__ import annotations

import dataclasses

import pytest

from conftest import SHARED_DATA
from plantguard.capture.engine import analyze
from plantguard.monitor.alerts import Alerter, at_checkpoint
from plantguard.monitor.baseline import Baseline

CAPTURE = SHARED_DATA / "pcaps" / "ICS-Security-Tools" / "CIP" / "cip_only.pcap"
HOST = "192.168.0.30"


def _contract(mac: str) -> dict:
    return {"assets": [{"ip": HOST, "mac": mac, "macs": [mac], "role": "plc", "protocols": ["enip"],
                        "first_seen": "2026-01-01T00:00:00Z"}], "findings": []}


@pytest.mark.skipif(not CAPTURE.exists(), reason=f"shared capture not found: {CAPTURE}")
def test_a_flip_between_the_macs_an_address_was_seen_with_is_not_a_move():
    result = analyze([CAPTURE])
    macs = {m for f in result.flows for ip, m in ((f.client, f.client_mac), (f.server, f.server_mac)) if ip == HOST}
    assert macs == {"00:1d:9c:a1:89:a4", "74:86:7a:07:28:94"}, macs
    own, other = "00:1d:9c:a1:89:a4", "74:86:7a:07:28:94"
    base = Baseline()
    alerter = Alerter(lambda e: None)

    def moves(mac, res=result):
        return [e.message for e in at_checkpoint(alerter, _contract(mac), res, base, None)
                if e.rule and e.rule.id == "alert.address-change"]
    assert moves(own) == []                       # first sighting: a new asset, not a move
    assert moves(other) == []                     # its flows showed that MAC too
    assert moves(own) == []
    # a MAC the address was never seen with (a replaced device, or ARP spoofing) is a move
    stranger = "02:00:00:00:00:99"
    nothing = dataclasses.replace(result, flows=[])
    assert moves(stranger, nothing) == [f"{HOST} moved from MAC {own} to {stranger}"]
