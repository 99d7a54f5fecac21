"""PROFINET decoder: IO-CM against the icsnpp-profinet-io-cm baselines (every DCE/RPC packet:
type, operation, UUIDs, sequence and fragment numbers), DCP against tshark (station names,
DeviceVendorValue, vendor/device ids, IP parameters) on every capture that carries DCP."""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from uuid import UUID

import pytest

from conftest import analyze_shared, shared_path
from support.baselines import oracle_map, ratio, zeek_log
from support.decode import deep_observations, frames

from plantguard.protocols import profinet, registry

BASE = "baselines/icsnpp-profinet-io-cm"
IOCM_TESTS = {"tests.profinet_io_cm": "profinet_io_cm.pcap",
              "tests.profinet_io_cm_connect": "profinet_io_cm_connect.pcapng",
              "tests.profinet_io_cm_connect_minimal": "profinet_io_cm_connect_minimal.pcapng",
              "tests.profinet_io_cm_control": "profinet_io_cm_control.pcapng",
              "tests.profinet_io_cm_device": "profinet_io_cm_device.pcapng",
              "tests.profinet_io_cm_mixed_1": "profinet_io_cm_mixed_1.pcap",
              "tests.profinet_io_cm_mixed_2": "profinet_io_cm_mixed_2.pcapng",
              "tests.profinet_io_cm_read": "profinet_io_cm_read.pcapng",
              "tests.profinet_io_cm_release": "profinet_io_cm_release.pcapng",
              "tests.profinet_io_cm_write": "profinet_io_cm_write.pcapng"}
DCP_CAPTURES = ["pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
                "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_2.pcapng",
                "pcaps/ICS-Security-Tools/profinet/PROFINET-RT-DCP/ChangeIPUsingDCP.pcap",
                "pcaps/ICS-Security-Tools/profinet/PROFINET-RT-DCP/PROFINET-RT.pcap",
                "pcaps/ICS-Security-Tools/profinet/profinet-wireshark-bug.pcap",
                "pcaps/ICS-Security-Tools/ModbusTCP/mb2.pcap"]


def _columns() -> list[str]:
    for r in oracle_map():
        if r["test"] == "tests.profinet_io_cm_read":
            note = r["notes"].split("profinet_io_cm.log: headerless; columns = [")[1]
            return note.split("]")[0].split()
    raise AssertionError("column list not found")


def _peer_uuid(text: str, little: bool) -> UUID:
    """The peer prints the 16 UUID bytes as they are on the wire; for little-endian packets the
    first three fields are therefore byte-swapped compared with the UUID's real value."""
    u = UUID(text)
    return UUID(bytes_le=u.bytes) if little else u


def _peer_rows(test: str) -> list[tuple]:
    rows = []
    for r in zeek_log(shared_path(f"{BASE}/{test}/profinet_io_cm.log"), _columns()):
        little = r["integer_encoding"] == "Little Endian"
        rows.append((r["source_h"], int(r["source_p"]), r["destination_h"], int(r["destination_p"]),
                     r["packet_type"], r["operation_num"], _peer_uuid(r["object_uuid"], little),
                     _peer_uuid(r["interface_uuid"], little), _peer_uuid(r["activity_uuid"], little),
                     int(r["sequence_num"]), int(r["fragment_num"]), int(r["len_of_body"]),
                     r["fragment"] == "T", r["last_fragment"] == "T", little))
    return rows


def _our_rows(pcap: str) -> list[tuple]:
    rows = []
    for _f, _ts, lay in frames(shared_path(f"pcaps/icsnpp-profinet-io-cm/{pcap}")):
        if lay.l4 != "udp":
            continue
        pdu = profinet.parse_rpc(lay.payload)
        if pdu is None or pdu.interface is None:
            continue
        rows.append((lay.src, lay.sport, lay.dst, lay.dport, pdu.packet_type, pdu.operation, pdu.object_uuid,
                     pdu.interface_uuid, pdu.activity_uuid, pdu.sequence, pdu.fragment, pdu.body_length,
                     bool(pdu.flags1 & 0x04), bool(pdu.flags1 & 0x02), pdu.little_endian))
    return rows


@pytest.mark.parametrize("test", sorted(IOCM_TESTS))
def test_every_rpc_packet_matches_profinet_io_cm_log(test):
    want, got = Counter(_peer_rows(test)), Counter(_our_rows(IOCM_TESTS[test]))
    total = sum(want.values())
    assert total > 0 and sum(got.values()) == total
    assert ratio(sum((want & got).values()), total) >= 0.99, (list(want - got)[:3], list(got - want)[:3])


def test_operations_through_the_pipeline():
    """One operation per call (first fragment of each request), categorised as specified."""
    want = Counter()
    got = Counter()
    for test, pcap in IOCM_TESTS.items():
        for r in _peer_rows(test):
            if r[4] == "Request" and r[10] == 0:
                want[(r[0], r[2], r[5])] += 1
        for o in deep_observations(shared_path(f"pcaps/icsnpp-profinet-io-cm/{pcap}")):
            if o.kind == "operation" and o.l4 == "udp" and o.proto == "profinet":   # not NBNS
                got[(o.src, o.dst, o.data["name"])] += 1
                assert f"seq=" in o.data["detail"] and "object=" in o.data["detail"]
    assert ratio(sum((want & got).values()), sum(want.values())) >= 0.99
    assert sum(got.values()) == sum(want.values())
    cats = {}
    for o in deep_observations(shared_path("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_2.pcapng")):
        if o.kind == "operation" and o.l4 == "udp" and o.proto == "profinet":
            cats[(o.data["name"], "interface=controller" in o.data["detail"])] = o.data["category"]
    assert cats == {("Connect", False): "other", ("Write", False): "write", ("Control", False): "control",
                    ("Read", False): "read", ("Release", False): "other", ("Control", True): "other"}


def test_roles_and_object_uuid_identities():
    res = analyze_shared("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_2.pcapng")
    roles = {(o.subject_ip, o.data["role"]) for o in res.observations if o.kind == "role" and o.subject_ip}
    assert {("192.168.1.3", "io-controller"), ("192.168.1.2", "io-device")} <= roles
    ids = {(o.subject_ip, o.data.get("vendor_id"), o.data.get("device_id"), o.data.get("name"))
           for o in res.observations if o.kind == "identity" and o.subject_ip}
    # the device (GE VersaMax PNS, vendor 0x015a) from the object UUID, the controller from its AR block
    assert ("192.168.1.2", 0x015A, 0x0003, None) in ids
    assert ("192.168.1.3", 0x00B0, 0x003C, "pc-worx-rt-basic-6d-d3-43") in ids


def _tshark_dcp(path) -> dict[int, dict]:
    fields = ["frame.number", "pn_dcp.suboption_device_nameofstation", "pn_dcp.suboption_device_devicevendorvalue",
              "pn_dcp.suboption_vendor_id", "pn_dcp.suboption_device_id", "pn_dcp.suboption_ip_ip",
              "pn_dcp.service_id", "pn_dcp.service_type"]
    cmd = ["tshark", "-r", str(path), "--disable-protocol", "ALL", "--enable-protocol", "eth,vlan,pn_rt,pn_dcp",
           "-Y", "pn_dcp", "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    res = {}
    for line in out.splitlines():
        fr, name, vendor, vid, did, ip, sid, stype = line.split("|")
        res[int(fr)] = {"name": name.strip() or None, "vendor_value": vendor.strip() or None,
                        "vendor_id": int(vid, 0) if vid else None, "device_id": int(did, 0) if did else None,
                        "ip": ip or None, "service": int(sid), "type": int(stype)}
    return res


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_dcp_fields_match_tshark():
    total = matched = 0
    for rel in DCP_CAPTURES:
        path = shared_path(rel)
        want = _tshark_dcp(path)
        got = {}
        for frame, _ts, lay in frames(path):
            if lay.ethertype == 0x8892 and not lay.l4:
                msg = profinet.parse_dcp(bytes(lay.l3))
                if msg is not None:
                    f = msg.fields()
                    got[frame] = {"name": f.get("name") or None, "vendor_value": f.get("vendor_value") or None,
                                  "vendor_id": f.get("vendor_id"), "device_id": f.get("device_id"),
                                  "ip": f.get("ip"), "service": {"Get": 3, "Set": 4, "Identify": 5, "Hello": 6}.get(msg.service),
                                  "type": msg.status}
        assert set(got) == set(want), rel
        for frame, w in want.items():
            for k, v in w.items():
                total += 1
                matched += got[frame][k] == v
    assert total > 400
    assert ratio(matched, total) >= 0.99, (matched, total)


def test_station_names_in_mixed_captures():
    """siemens-x208-switch and turck are only asked for (Identify by name); versamax-pns11 answers."""
    for rel in DCP_CAPTURES[:2]:
        res = analyze_shared(rel)
        answered = {(o.subject_mac, o.data.get("name"), o.data.get("product"), o.data.get("ip"))
                    for o in res.observations if o.kind == "identity" and o.proto == "profinet" and o.l4 == ""}
        assert answered == {("00:09:91:43:e0:67", "versamax-pns11", "IC200PNS001", "192.168.1.2")}
        asked = {o.data["detail"].split('"')[1] for o in res.observations if o.kind == "operation"
                 and o.data["name"] == "DCP Identify"}
        assert {"siemens-x208-switch", "versamax-pns11", "turck"} <= asked
        roles = {(o.subject_mac, o.data["role"]) for o in res.observations if o.kind == "role" and o.l4 == ""}
        assert ("00:09:91:43:e0:67", "io-device") in roles
        addr = [o for o in res.observations if o.kind == "address" and o.proto == "profinet"]
        assert [(a.data["ip"], a.data["mac"], a.data["source"]) for a in addr] == \
            [("192.168.1.2", "00:09:91:43:e0:67", "dcp")]


def test_dcp_set_is_a_config_operation():
    obs = deep_observations(shared_path(DCP_CAPTURES[2]))
    sets = [o for o in obs if o.kind == "operation" and o.data["name"] == "DCP Set"]
    assert len(sets) == 1 and sets[0].data["category"] == "config"
    assert sets[0].data["detail"] == "DCP Set IP 192.168.0.10 mask 255.255.255.0 gateway 192.168.0.1"
    assert sets[0].src is None and sets[0].src_mac == "00:0c:29:ba:09:ea"
    ident = [o for o in obs if o.kind == "identity"][0]
    assert ident.data == {"name": "X208-BORD", "product": "INC", "vendor_id": 0x2A, "device_id": 0x0A01,
                          "ip": "192.168.0.6", "netmask": "255.255.255.0", "gateway": "192.168.0.1",
                          "role_hint": "io-device"}


def test_im0_record_gives_firmware():
    """An I&M0 record in a Read response (layout of IEC 61158-6-10; no public capture has one)."""
    im0 = (bytes.fromhex("002000380100") + bytes.fromhex("002a") + b"6ES7 151-8AB01-0AB0".ljust(20)
           + b"S C-X4U123456789".ljust(16) + bytes.fromhex("0003") + b"V" + bytes([3, 2, 1])
           + bytes.fromhex("0001" "0000" "0000" "0101" "001e"))
    assert len(im0) == 6 + 54
    got = profinet.parse_im0(im0)
    assert got == {"vendor_id": 0x2A, "order_number": "6ES7 151-8AB01-0AB0", "serial": "S C-X4U123456789",
                   "hardware": "3", "firmware": "V3.2.1"}


def test_signature():
    for _f, _ts, lay in frames(shared_path("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_write.pcapng")):
        if lay.l4 == "udp":
            assert profinet.signature(lay.payload)
            assert registry.classify("udp", lay.sport, lay.dport, lay.payload) is profinet
            break
    assert not profinet.signature(b"\x04\x00" + bytes(78))      # DCE/RPC, but not a PNIO interface
    assert not profinet.signature(b"\x05" + bytes(100))
