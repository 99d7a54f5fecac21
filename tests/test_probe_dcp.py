"""PROFINET DCP Identify, unicast, against a DCP responder (tests/support/dcp_responder.py) in
the device namespace of a veth pair: the identity the probe reports is the responder's, read the
same from a tcpdump capture of the link by the passive decoders, and the probe's DCP frames are
Identify requests to the device's MAC only (no Set, Get, Hello, nothing multicast)."""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from support.packets import read_pcap
from support.probe import (
    DEVICE_IP,
    DEVICE_MAC,
    PROBE_MAC,
    namespace_pair,
    passive_identity,
    probe_json,
    site_file,
    stop,
)

RESPONDER = Path(__file__).parent / "support" / "dcp_responder.py"
STATION = {"name": "plc-line-3", "vendor": "Test PLC 1516", "vendor_id": 0x002A, "device_id": 0x0131,
           "role": 0x01, "ip": f"{DEVICE_IP}/255.255.255.0/10.77.0.254"}


def responder_argv(iface: str) -> list[str]:
    return [sys.executable, str(RESPONDER), iface, "--name", STATION["name"], "--vendor", STATION["vendor"],
            "--vendor-id", str(STATION["vendor_id"]), "--device-id", str(STATION["device_id"]),
            "--role", str(STATION["role"]), "--ip", STATION["ip"]]


def dcp_frames(pcap: Path) -> list[bytes]:
    return [f for _, f in read_pcap(pcap) if len(f) >= 26 and struct.unpack_from(">H", f, 12)[0] == 0x8892]


@pytest.fixture(scope="module")
def identified(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dcp")
    with namespace_pair() as pair:
        dev = pair.start(pair.device, responder_argv(pair.device_if), ready=1.0)
        try:
            with pair.capture(tmp / "link.pcap"):
                before = pair.tx_packets()
                res = pair.plantguard("probe", "--site", str(site_file(tmp, ["dcp"])), "--targets", DEVICE_IP,
                                      "--protocols", "dcp", "--send", "--evidence", str(tmp / "ev"),
                                      "--db", str(tmp / "pg.db"), "-f", "json")
                sent = pair.tx_packets() - before
        finally:
            stop(dev)
        log = dev.stdout.read().decode()
    return probe_json(res), tmp / "link.pcap", sent, log


def test_identity_is_the_responders(identified):
    result, _, _, _ = identified
    (rec,) = result["targets"]
    assert rec["mac"] == DEVICE_MAC           # from the neighbour table: the store knew nothing
    assert [q["status"] for q in rec["queries"]] == ["answered"]
    ident = rec["identity"]
    assert ident["name"] == STATION["name"]
    assert ident["product"] == STATION["vendor"]
    assert ident["vendor_id"] == STATION["vendor_id"] and ident["device_id"] == STATION["device_id"]
    assert (ident["ip"], ident["netmask"], ident["gateway"]) == tuple(STATION["ip"].split("/"))
    assert rec["sources"]["name"]["proto"] == "profinet"


def test_identity_equals_the_passive_reading_of_the_link(identified):
    result, pcap, _, _ = identified
    assert result["targets"][0]["identity"] == passive_identity(pcap, DEVICE_IP)


def test_only_identify_leaves_the_probe(identified):
    result, pcap, sent, log = identified
    ours = [f for f in dcp_frames(pcap) if f[6:12].hex(":") == PROBE_MAC]
    assert len(ours) == 1 and result["sent"] == 1 and sent == 1     # one frame on the wire, nothing else
    for f in ours:
        frame_id, service, stype = struct.unpack_from(">HBB", f, 14)
        assert (frame_id, service, stype) == (0xFEFE, 5, 0)          # Identify request: no Set, Get, Hello
        assert f[0:6].hex(":") == DEVICE_MAC                         # unicast, never the DCP multicast
        assert f[26:30] == bytes.fromhex("ffff0000")                 # one block: All/All
    theirs = [f for f in dcp_frames(pcap) if f[6:12].hex(":") == DEVICE_MAC]
    assert len(theirs) == 1 and struct.unpack_from(">H", theirs[0], 14)[0] == 0xFEFF
    assert theirs[0][18:22] == ours[0][18:22]                         # the same xid
    assert '"service": 5' in log and '"service": 4' not in log and '"service": 6' not in log


def test_unknown_mac_is_skipped_without_sending(tmp_path):
    """No neighbour entry and no inventory MAC: the query is skipped, nothing is sent (no ARP)."""
    with namespace_pair() as pair:
        from support.probe import _run
        _run("ip", "-n", pair.probe, "neigh", "del", DEVICE_IP, "dev", pair.probe_if)
        before = pair.tx_packets()
        res = pair.plantguard("probe", "--site", str(site_file(tmp_path, ["dcp"])), "--targets", DEVICE_IP,
                              "--protocols", "dcp", "--send", "--evidence", str(tmp_path / "ev"),
                              "--db", str(tmp_path / "pg.db"), "-f", "json")
        assert pair.tx_packets() == before
    (rec,) = probe_json(res)["targets"]
    assert rec["queries"][0]["status"] == "skipped" and "no mac" in rec["queries"][0]["reason"]


def test_a_target_behind_a_router_is_not_sent_dcp(tmp_path):
    """A MAC known for an address the kernel routes through a gateway: DCP frames would not reach
    it (they do not cross routers), so the probe sends nothing and says why."""
    from support.probe import _run
    remote = "10.88.0.5"
    with namespace_pair() as pair:
        _run("ip", "-n", pair.probe, "route", "add", "10.88.0.0/24", "via", DEVICE_IP)
        _run("ip", "-n", pair.probe, "neigh", "replace", remote, "lladdr", DEVICE_MAC, "dev", pair.probe_if,
             "nud", "permanent")
        before = pair.tx_packets()
        res = pair.plantguard("probe", "--site", str(site_file(tmp_path, ["dcp"], network="10.88.0.0/24")),
                              "--targets", remote, "--protocols", "dcp", "--send", "--evidence",
                              str(tmp_path / "ev"), "--db", str(tmp_path / "pg.db"), "-f", "json")
        assert pair.tx_packets() == before
    (q,) = probe_json(res)["targets"][0]["queries"]
    assert q["status"] == "error" and "behind a router" in q["reason"] and q["frames_sent"] == 0


def test_dcp_and_modbus_of_one_device_read_as_one(tmp_path):
    """DCP (real MACs in the evidence) and Modbus (placeholder MACs) to one device: the evidence
    still reads as one device, with the same identity as the link capture."""
    import json
    from support.probe import DEVICE_IP as ip
    servers = Path(__file__).parent / "support" / "probe_servers.py"
    modbus_id = {"VendorName": "Acme Controls", "ProductCode": "AC-300", "MajorMinorRevision": "2.4.1"}
    with namespace_pair() as pair:
        procs = [pair.start(pair.device, [sys.executable, str(servers), "modbus", f"{ip}:502", json.dumps(modbus_id)]),
                 pair.start(pair.device, responder_argv(pair.device_if), ready=1.0)]
        try:
            with pair.capture(tmp_path / "link.pcap"):
                res = pair.plantguard("probe", "--site", str(site_file(tmp_path, ["modbus", "dcp"])), "--targets", ip,
                                      "--protocols", "modbus,dcp", "--send", "--evidence", str(tmp_path / "ev"),
                                      "--db", str(tmp_path / "pg.db"), "-f", "json")
        finally:
            for p in procs:
                stop(p)
    (rec,) = probe_json(res)["targets"]
    assert [q["status"] for q in rec["queries"]] == ["answered", "answered"]
    assert rec["identity"]["name"] == STATION["name"] and rec["identity"]["vendor"] == modbus_id["VendorName"]
    assert rec["identity"] == passive_identity(tmp_path / "link.pcap", ip)
