"""ARP, LLDP and CDP against Zeek's ARP/SNAP event dumps, tshark (second oracle, every LLDP /
CDP / ARP frame of the shared captures) and the tshark-derived identity evidence."""
from __future__ import annotations

import json

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import Score
from support.decode import frames, of_kind, packet
from support.peers import need_tshark, tshark_many

from plantguard.protocols import arp, cdp, lldp
from plantguard.protocols.base import printable

ZEEK = "baselines/zeek/"
L2_ONLY = ["--disable-protocol", "ip", "--disable-protocol", "ipv6"]   # tshark: skip IP for speed
LLDP_CAPTURES = [
    "pcaps/zeek/lldp.pcap",
    "pcaps/ICS-Security-Tools/C37.118/C37118/c37_pmu_unclean.pcap",
    "pcaps/ICS-Security-Tools/ModbusTCP/mb2.pcap",
    "pcaps/ICS-Security-Tools/beckoff/addroute1.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/addrouteuse444444444.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/invokeid12.pcapng",
    "pcaps/ICS-Security-Tools/openics/EIP-ChangeDateAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-ChangeTimeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-ControlProtocolChangeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-RebootorRestart.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-SoftwareDownloadFailure.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-SoftwareUpload.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-SoftwareUploadFailure.pcap",
    "pcaps/ICS-Security-Tools/profinet/Profinet_Failed.pcap",
    "pcaps/ICS-Security-Tools/s7/S7Comm/wrapup.pcapng",
    "pcaps/icsnpp-enip/enip_cip_example.pcap",
    "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
    "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_2.pcapng",
]
CDP_CAPTURES = [
    "pcaps/zeek/cdp-v1.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-ChangeTimeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-ControlProtocolChangeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-RemoteModeChangeAttempt.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-SoftwareDownloadFailure.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-SoftwareUpload.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-SoftwareUploadFailure.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap",
]
ARP_CAPTURES = [
    "pcaps/zeek/arp-who-has.pcap", "pcaps/zeek/linuxsll-arp.pcap", "pcaps/zeek/snap-arp.pcapng",
    "pcaps/ICS-Security-Tools/C37.118/C37118/c37_pmu_unclean.pcap",
    "pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap",
    "pcaps/ICS-Security-Tools/ModbusTCP/mb2.pcap",
    "pcaps/icsnpp-enip/enip_cip_example.pcap",
    "pcaps/ICS-Security-Tools/beckoff/addroute1.pcapng",
]


def l2_payloads(path, ethertype: int, snap: tuple[bytes, int] | None = None):
    """(frame, payload after the L2 header) for frames of one layer-2 protocol."""
    for frame, _ts, lay in frames(path):
        data = bytes(lay.l3)
        if lay.l4 or lay.src is not None:
            continue
        if lay.llc:
            if snap and data[:3] == b"\xaa\xaa\x03" and (data[3:6], int.from_bytes(data[6:8], "big")) == snap:
                yield frame, data[8:]
        elif lay.ethertype == ethertype:
            yield frame, data


# --- ARP ---------------------------------------------------------------------------------

def zeek_arp_lines(test: str) -> list[list[str]]:
    text = shared_path(ZEEK + test + "/.stdout").read_text()
    return [[p.strip() for p in line.split(",")] for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("pcap,test", [
    ("pcaps/zeek/arp-who-has.pcap", "scripts.base.protocols.arp.basic"),
    ("pcaps/zeek/linuxsll-arp.pcap", "scripts.base.protocols.arp.linuxsll"),
    ("pcaps/zeek/snap-arp.pcapng", "scripts.base.protocols.snap.snap-arp"),
])
def test_arp_fields_match_zeek_event_dump(pcap, test):
    expected = zeek_arp_lines(test)          # mac_src, mac_dst, SPA, SHA, TPA, THA
    ours = [arp.parse(p) for _f, p in l2_payloads(shared_path(pcap), 0x0806, (b"\x00\x00\x00", 0x0806))]
    assert len(ours) == len(expected)
    score = Score()
    for i, (a, z) in enumerate(zip(ours, expected)):
        assert a is not None
        for name, value, peer in (("spa", a["spa"], z[2]), ("sha", a["sha"], z[3]),
                                  ("tpa", a["tpa"], z[4]), ("tha", a["tha"], z[5])):
            score.check(f"{pcap}#{i} {name}", value, peer)
    score.assert_agrees(1.0, at_least=8)


def test_arp_corrupt_headers_bind_nothing():
    """Zeek flags every frame of arp-leak.pcap as a corrupt ARP header (hln/pln 255)."""
    bad = zeek_arp_lines("scripts.base.protocols.arp.bad")
    assert bad and all(line[0] == "BAD" for line in bad)
    payloads = list(l2_payloads(shared_path("pcaps/zeek/arp-leak.pcap"), 0x0806))
    assert len(payloads) == len(bad)
    for _f, p in payloads:
        assert arp.parse(p) is None
        assert arp.decode(packet(p, l4="", src=None, dst=None)) == []


def test_arp_pipeline_bindings_and_gratuitous():
    r = analyze_shared("pcaps/zeek/arp-who-has.pcap")
    pairs = {(o.data["ip"], o.data["mac"]) for o in of_kind(r.observations, "address", "arp")}
    assert pairs == {("10.0.0.2", "78:31:c1:c6:3f:c2"), ("10.0.0.1", "f8:ed:a5:c0:a4:f1")}
    r = analyze_shared("pcaps/zeek/linuxsll-arp.pcap")
    grat = [o for o in of_kind(r.observations, "address", "arp") if o.data.get("gratuitous")]
    assert {(o.data["ip"], o.data["mac"]) for o in grat} == {("192.168.22.81", "00:50:56:8b:3f:0d")}
    r = analyze_shared("pcaps/zeek/snap-arp.pcapng")   # ARP inside LLC/SNAP
    assert {o.data["ip"] for o in of_kind(r.observations, "address", "arp")} == {"10.0.0.1", "10.0.0.2"}


def test_arp_agrees_with_tshark_on_every_frame():
    need_tshark()
    score = Score()
    peer = tshark_many([shared_path(r) for r in ARP_CAPTURES], "arp",
                       ["arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.hw_mac",
                        "arp.dst.proto_ipv4"], L2_ONLY)
    for rel in ARP_CAPTURES:
        path = shared_path(rel)
        rows = {r["frame"]: r for r in peer[path]}
        ours = {f: arp.parse(p) for f, p in l2_payloads(path, 0x0806, (b"\x00\x00\x00", 0x0806))}
        for frame, row in rows.items():
            a = ours.get(frame)
            if not row["arp.src.proto_ipv4"]:
                continue   # not IPv4-over-Ethernet ARP
            score.check(f"{rel}#{frame} parsed", a is not None, True)
            if a is None:
                continue
            score.check(f"{rel}#{frame} op", str(a["op"]), row["arp.opcode"][0])
            score.check(f"{rel}#{frame} sha", a["sha"], row["arp.src.hw_mac"][0])
            score.check(f"{rel}#{frame} spa", a["spa"], row["arp.src.proto_ipv4"][0])
            score.check(f"{rel}#{frame} tha", a["tha"], row["arp.dst.hw_mac"][0])
            score.check(f"{rel}#{frame} tpa", a["tpa"], row["arp.dst.proto_ipv4"][0])
    score.assert_agrees(at_least=500)


# --- LLDP --------------------------------------------------------------------------------

def test_lldp_agrees_with_tshark_field_by_field():
    need_tshark()
    fields = ["lldp.tlv.system.name", "lldp.tlv.system.desc", "lldp.chassis.id.mac", "lldp.chassis.id",
              "lldp.port.id", "lldp.port.id.mac", "lldp.port.desc", "lldp.mgn.addr.ip4",
              "lldp.tlv.system_cap"]
    score = Score()
    frames_seen = 0
    peer = tshark_many([shared_path(r) for r in LLDP_CAPTURES], "lldp", fields, L2_ONLY)
    for rel in LLDP_CAPTURES:
        path = shared_path(rel)
        ours = {f: lldp.parse(p) for f, p in l2_payloads(path, 0x88CC)}
        for row in peer[path]:
            info = ours.get(row["frame"])
            what = f"{rel}#{row['frame']}"
            if not score.check(what + " decoded", info is not None, True):
                continue
            frames_seen += 1
            chassis = row["lldp.chassis.id.mac"] or [printable(bytes.fromhex(row["lldp.chassis.id"][0].replace(":", "")))] \
                if row["lldp.chassis.id"] else row["lldp.chassis.id.mac"]
            score.check(what + " chassis", info.get("chassis_id"), chassis[0] if chassis else None)
            port = row["lldp.port.id.mac"] or row["lldp.port.id"]
            score.check(what + " port", info.get("port_id"), port[0] if port else None)
            for key, field in (("name", "lldp.tlv.system.name"), ("description", "lldp.tlv.system.desc"),
                               ("port_description", "lldp.port.desc")):
                score.check(what + " " + key, info.get(key), row[field][0] if row[field] else None)
            score.check(what + " mgmt", (info.get("mgmt_addresses") or [None])[0],
                        row["lldp.mgn.addr.ip4"][0] if row["lldp.mgn.addr.ip4"] else None)
            if row["lldp.tlv.system_cap"]:
                caps = int(row["lldp.tlv.system_cap"][0], 16)
                score.check(what + " caps", info.get("capabilities"), lldp.cap_names(caps))
    assert frames_seen >= 400
    score.assert_agrees()


@pytest.mark.parametrize("rel,name,expect", [
    ("pcaps/zeek/lldp.pcap", "SMCGS8P-Smart",
     {"firmware": "3.20", "role_hint": "switch", "ip": "192.168.2.10", "chassis_id": "00:22:2d:81:db:10"}),
    ("pcaps/ICS-Security-Tools/C37.118/C37118/c37_pmu_unclean.pcap", "MAR-EA392E",
     {"vendor": "Hirschmann", "firmware": "L2P-09.0.00", "role_hint": "switch"}),
    ("pcaps/ICS-Security-Tools/ModbusTCP/mb2.pcap", "Switch1",
     {"vendor": "Siemens", "product": "SCALANCE X212-2", "order_number": "6GK5 212-2BB00-2AA3",
      "firmware": "4.02", "hardware": "7", "ip": "141.81.0.190"}),
])
def test_lldp_identity_of_named_devices(rel, name, expect):
    r = analyze_shared(rel)
    ids = [o for o in of_kind(r.observations, "identity", "lldp") if o.data.get("name") == name]
    assert ids, f"no LLDP identity named {name}"
    ident = ids[0]
    assert ident.src is None and ident.subject == "src" and ident.subject_mac
    for k, v in expect.items():
        assert ident.data.get(k) == v, (k, ident.data)
    names = {o.data["name"] for o in of_kind(r.observations, "hostname", "lldp")}
    assert name in names


def test_lldp_matches_tshark_identity_evidence():
    evidence = json.loads(shared_path("baselines/tshark-derived/identity_evidence.json").read_text())["files"]
    score = Score()
    for rel, kinds in evidence.items():
        if "lldp_sysname" not in kinds or rel not in LLDP_CAPTURES:
            continue
        r = analyze_shared(rel)
        idents = of_kind(r.observations, "identity", "lldp")
        names = {o.data.get("name") for o in idents}
        descs = {o.data.get("description") for o in idents}
        for item in kinds["lldp_sysname"]:
            key, _, value = item.partition("=")
            pool = names if key == "name" else descs
            # the evidence file keeps at most 60 characters of a value
            score.check(f"{rel} {item}", any(v and v.startswith(value.rstrip()) for v in pool), True)
    score.assert_agrees(1.0, at_least=8)


# --- CDP ---------------------------------------------------------------------------------

def test_cdp_agrees_with_tshark_field_by_field():
    need_tshark()
    score = Score()
    fields = ["cdp.deviceid", "cdp.platform", "cdp.portid", "cdp.software_version", "cdp.nrgyz.ip_address",
              "cdp.native_vlan", "cdp.capabilities"]
    seen = 0
    peer = tshark_many([shared_path(r) for r in CDP_CAPTURES], "cdp", fields, L2_ONLY)
    for rel in CDP_CAPTURES:
        path = shared_path(rel)
        ours = {f: cdp.parse(p) for f, p in l2_payloads(path, -1, (b"\x00\x00\x0c", 0x2000))}
        for row in peer[path]:
            info = ours.get(row["frame"])
            what = f"{rel}#{row['frame']}"
            if not score.check(what + " decoded", bool(info), True):
                continue
            seen += 1
            for key, field in (("name", "cdp.deviceid"), ("platform", "cdp.platform"), ("port_id", "cdp.portid")):
                score.check(what + " " + key, info.get(key), row[field][0] if row[field] else None)
            score.check(what + " software", [ln.strip() for ln in (info.get("software") or "").splitlines()],
                        [v.strip() for v in row["cdp.software_version"]])
            score.check(what + " addresses", (info.get("addresses") or []) + (info.get("mgmt_addresses") or []),
                        row["cdp.nrgyz.ip_address"])
            if row["cdp.native_vlan"]:
                score.check(what + " vlan", info.get("native_vlan"), int(row["cdp.native_vlan"][0]))
            if row["cdp.capabilities"]:
                bits = int(row["cdp.capabilities"][0], 16)
                score.check(what + " caps", info.get("capabilities"),
                            [n for b, n in cdp.CAPABILITIES if bits & b])
    assert seen >= 8
    score.assert_agrees()


def test_cdp_identity_cisco_switch_and_router():
    r = analyze_shared("pcaps/ICS-Security-Tools/openics/EIP-ChangeTimeAttempt.pcap")
    (ident,) = [o for o in of_kind(r.observations, "identity", "cdp")]
    d = ident.data
    assert d["product"] == "cisco WS-CE500-24TT" and d["model"] == "WS-CE500-24TT"
    assert d["vendor"] == "Cisco" and d["firmware"] == "12.2(25)SEG4" and d["os"] == "Cisco IOS"
    assert d["name"] == "Ns5gt" and d["port_id"] == "GigabitEthernet1" and d["ip"] == "192.168.10.253"
    assert d["role_hint"] == "switch" and d["description"].startswith("Cisco IOS Software, CE500 Software")
    r = analyze_shared("pcaps/zeek/cdp-v1.pcap")
    (ident,) = of_kind(r.observations, "identity", "cdp")
    assert ident.data["product"] == "cisco 1601" and ident.data["firmware"] == "11.2(12)P"
    assert ident.data["role_hint"] == "router"
    # Zeek only records that SNAP carried an unknown protocol 0x2000 starting with these bytes
    (row,) = [line.split("\t") for line in shared_path(ZEEK + "scripts.base.protocols.snap.snap-cdp/unknown_protocols.log")
              .read_text().splitlines() if line and not line.startswith("#")]
    first = bytes.fromhex(row[3])
    payload = next(p for _f, p in l2_payloads(shared_path("pcaps/zeek/cdp-v1.pcap"), -1, (b"\x00\x00\x0c", 0x2000)))
    assert payload.startswith(first)


def test_garbage_l2_payloads_give_nothing():
    for mod in (lldp, cdp, arp):
        assert mod.decode(packet(b"", l4="", src=None, dst=None)) == []
        assert mod.decode(packet(b"\x02\x07\x04", l4="", src=None, dst=None)) == []
