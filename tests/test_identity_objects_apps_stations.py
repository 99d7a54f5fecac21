"""Device identities tshark decodes that plantguard's assets must carry (the "inventory truth"
issue): the named BACnet objects a device serves, field by field against tshark; devices behind
a BACnet router kept apart from the router; every OPC UA application sharing an address; and
PROFINET stations named by their own DCP Identify or by a DCP Set, while a name only searched
for names nobody."""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path
from support.packets import eth, pcap_bytes

from plantguard.capture.engine import analyze
from plantguard.contract import Asset as ContractAsset
from plantguard.inventory.asset import BACNET_OBJECTS_CAP, SEEN_CAP
from plantguard.inventory.build import build_assets
from plantguard.protocols.bacnet import name_of

BACNET = ["pcaps/icsnpp-bacnet/bacnet_example.pcap", "pcaps/icsnpp-bacnet/bacnet_services.pcap",
          "pcaps/icsnpp-bacnet/bacnet_error_reject_abort.pcap", "pcaps/icsnpp-bacnet/bacnet_segmented_data.pcap"]


def assets_of(path) -> list[dict]:
    return [a.as_dict() for a in build_assets(analyze([str(path)]))]


def by_ip(assets: list[dict]) -> dict[str, dict]:
    return {a["ip"]: a for a in assets if a["ip"]}


def _route(snet: str, mstp: str, eth_: str) -> str | None:
    if not snet:
        return None
    mac = f"{int(mstp):02x}" if mstp else eth_.replace(":", "")
    return f"network {int(snet)} mac {mac}"


def tshark_object_names(path) -> set[tuple]:
    """(ip, route, object type, instance, name) of every ReadProperty-ACK of object-name (77) on a
    non-device object."""
    cmd = ["tshark", "-n", "-r", str(path), "-Y",
           "bacapp.type == 3 && bacapp.confirmed_service == 12 && bacapp.property_identifier == 77",
           "-T", "fields", "-E", "separator=\t", "-e", "ip.src", "-e", "bacnet.snet", "-e", "bacnet.sadr_mstp",
           "-e", "bacnet.sadr_eth", "-e", "bacapp.objectType", "-e", "bacapp.instance_number",
           "-e", "bacapp.object_name"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = set()
    for line in out.splitlines():
        ip, snet, mstp, eth_, otype, inst, name = (line.split("\t") + [""] * 7)[:7]
        if not ip or not otype or int(otype) == 8 or not name.strip():
            continue
        rows.add((ip, _route(snet, mstp, eth_), name_of("object_type", int(otype)), int(inst), name.strip()))
    return rows


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("rel", BACNET)
def test_bacnet_object_names_match_tshark_field_by_field(rel):
    path = shared_path(rel)
    want = tshark_object_names(path)
    got = set()
    for a in assets_of(path):
        for o in a["bacnet_objects"]:
            got.add((a["ip"], o["route"], o["type"], o["instance"], o["name"]))
        assert len(a["bacnet_objects"]) <= BACNET_OBJECTS_CAP
    assert want <= got, sorted(want - got)[:10]


def test_bacnet_points_of_each_controller():
    a = by_ip(assets_of(shared_path("pcaps/icsnpp-bacnet/bacnet_example.pcap")))["172.20.32.50"]
    assert {(o["type"], o["instance"], o["name"]) for o in a["bacnet_objects"]} >= {
        ("analog-input", 1, "Sensor_45312")}
    assert a["distinct_values"]["bacnet_objects"] == len(a["bacnet_objects"])
    ContractAsset.model_validate(a)                 # the new lists are declared in the contract


def test_bacnet_i_have_names_an_object_and_a_who_has_search_does_not():
    assets = by_ip(assets_of(shared_path("pcaps/icsnpp-bacnet/bacnet_error_reject_abort.pcap")))
    objs = assets["10.10.10.10"]["bacnet_objects"]     # I-Have: device 61 holds device 61 "SYNERGY"
    assert [(o["type"], o["instance"], o["name"], o["device_instance"]) for o in objs] == \
        [("device", 61, "SYNERGY", 61)]
    assert not assets["192.168.3.100"]["bacnet_objects"]


def test_rpm_ack_object_names():
    """A ReadPropertyMultiple-ACK of schedule 88 (object-name among 15 properties) from 192.168.1.99."""
    a = by_ip(assets_of(shared_path("pcaps/ICS-pcap/BACNET/BACnetL_SchedRPM/BACnetL_SchedRPM.pcapng")))
    objs = a["192.168.1.99"]["bacnet_objects"]
    assert [(o["type"], o["instance"], o["name"], o["frame"]) for o in objs] == [("schedule", 88, "123", 2)]
    assert "sources" not in a["192.168.1.99"]["identity"]     # object names alone are no device identity


def test_devices_behind_a_bacnet_router_are_not_the_router():
    """192.168.0.24 forwards I-Am and ACKs of the MS/TP devices of network 3 (NPDU SNET 3, SADR):
    those are the remote devices' identities; its own I-Am (no SNET) says vendor 24."""
    router = by_ip(assets_of(shared_path("pcaps/icsnpp-bacnet/bacnet_services.pcap")))["192.168.0.24"]
    ident = router["identity"]
    assert ident["vendor_id"] == 24 and ident["vendor"] == "Automated Logic Corporation"
    assert ident["device_instance"] == 4194303
    assert "name" not in ident and "model" not in ident      # those are device 29's, on network 3
    remote = {d["bacnet_route"]: d for d in ident["remote_devices"]}
    assert remote["network 3 mac 6c"]["device_instance"] == 108 and remote["network 3 mac 6c"]["vendor_id"] == 42
    assert remote["network 3 mac 1d"]["name"] == "112E1" and remote["network 3 mac 1d"]["model"] == "SYSC MLX"
    points = [o for o in router["bacnet_objects"] if o["route"] == "network 3 mac 1d"]
    assert ("analog-output", 101, "DIMMER 101") in {(o["type"], o["instance"], o["name"]) for o in points}


def test_every_opcua_application_on_a_shared_address_is_kept():
    a = by_ip(assets_of(shared_path("pcaps/icsnpp-opcua-binary/open62541_client-server_mainloop.pcap")))["::1"]
    apps = {(x["application_uri"], x["role"], x["port"]) for x in a["opcua_applications"]}
    assert apps == {("urn:open62541.server.application", "server", 4840),
                    ("urn:unconfigured:application", "client", None)}
    assert a["identity"]["application_uri"] == "urn:open62541.server.application"   # first value still wins
    assert len(a["opcua_applications"]) <= SEEN_CAP
    ContractAsset.model_validate(a)


def test_two_opcua_servers_and_their_clients():
    assets = assets_of(shared_path("pcaps/icsnpp-opcua-binary/opcua_with-gap_with-handshake.pcap"))
    apps = {(x["application_uri"], x["product_uri"], x["role"]) for a in assets for x in a["opcua_applications"]}
    assert {("urn:open62541.server.application", "http://open62541.org", "server"),
            ("urn:00:06:71:33:05:02", "urn:Softing:SoftingOPCUAGateway", "server"),
            ("urn:MES::FraunhoferIOSB:SiLab UA-Client", "urn:FraunhoferIOSB:SiLabUAServer:Client", "client"),
            ("urn:unconfigured:application", None, "client")} <= apps


def test_profinet_stations_named_by_their_own_identify():
    """Each SCALANCE asks every 60 s, from its own MAC, for its own NameOfStation (its name
    uniqueness check; in mb2.pcap the LLDP sysName of 00:1b:1b:02:e6:1f, port 1 of the switch
    whose interface MAC 00:1b:1b:02:e6:1e asks for "switch1", is Switch1)."""
    assets = {a["mac"]: a for a in assets_of(shared_path("pcaps/ICS-Security-Tools/profinet/PROFINET-RT-DCP/PROFINET-RT.pcap"))}
    assert assets["00:1b:1b:02:9a:c3"]["identity"]["name"] == "switch3"
    assert assets["00:1b:1b:35:84:10"]["identity"]["name"] == "pn-io"
    src = assets["00:1b:1b:02:9a:c3"]["identity_sources"]["name"]
    assert src["via"] == "inferred" and src["frame"] == 1 and "own-name" in src["reason"]
    ContractAsset.model_validate(assets["00:1b:1b:02:9a:c3"])


def test_a_searching_controller_is_named_by_none_of_its_searches():
    assets = assets_of(shared_path("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap"))
    names = {a["identity"].get("name") for a in assets}
    assert "turck" not in names and "flm-pn-bk-2tx4" not in names
    ctl = next(a for a in assets if a["mac"] == "00:a0:45:6d:d3:43")
    assert ctl["identity"]["name"] == "pc-worx-rt-basic-6d-d3-43"
    switch = next(a for a in assets if a["mac"] == "00:0e:8c:ef:75:c5")    # the X208 asks for its own name
    assert switch["identity"]["name"] == "siemens-x208-switch"


def _dcp(service: int, stype: int, xid: int, blocks) -> bytes:
    body = b""
    for opt, sub, data in blocks:
        body += struct.pack(">BBH", opt, sub, len(data)) + data + (b"\0" if len(data) & 1 else b"")
    return struct.pack(">HBBIHH", 0xFEFD, service, stype, xid, 0, len(body)) + body


@pytest.mark.parametrize("error, named", [(0, True), (3, False)])
def test_a_dcp_set_names_the_station_unless_refused(tmp_path: Path, error, named):
    ctl, dev = "00:0c:29:00:00:01", "00:0e:8c:00:00:02"
    frames = [(1.0, eth(ctl, dev, 0x8892, _dcp(4, 0, 7, [(2, 2, b"\x00\x01press-7")]))),
              (1.1, eth(dev, ctl, 0x8892, _dcp(4, 1, 7, [(5, 4, bytes([2, 2, error]))])))]
    path = tmp_path / "dcp_set.pcap"
    path.write_bytes(pcap_bytes(frames))
    assets = {a["mac"]: a for a in assets_of(path)}
    assert assets[dev]["identity"].get("name") == ("press-7" if named else None)
    assert not assets[ctl]["identity"].get("name")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
