"""EtherCAT against tshark's `ecatf`, `ecat` and `ecat_mailbox` dissectors, field by field, on a
capture built from the specification (no real EtherCAT capture is available: see
docs/baseline-differences/ethercat.md); the inventory it gives (one master, its slaves as modules);
and the cyclic bulk replayed, not decoded, with the engine equal to the reference."""
from __future__ import annotations

import pytest
from support.ethercat_frames import (BROADCAST, FPRD, MASTER, PRODUCT, REVISION, SERIAL, STATIONS, VENDOR,
                                     cyclic, datagram, ecat, over_udp, startup)
from support.packets import pcap_bytes
from support.peers import tshark_fields
from test_engine_equivalence import assert_equivalent

from plantguard.capture.engine import analyze
from plantguard.capture.layers import decode_frame
from plantguard.capture.reference import analyze_reference
from plantguard.inventory.build import build_assets
from plantguard.protocols import ethercat

T0 = 1.7e9


def _write(tmp_path, frames, name="ecat.pcap"):
    path = tmp_path / name
    path.write_bytes(pcap_bytes([(T0 + i * 0.001, f) for i, f in enumerate(frames)]))
    return path


def _frames():
    return startup() + cyclic(3) + [over_udp(ecat(datagram(FPRD, STATIONS[0], 0x0130, b"\0\0"))),
                                    over_udp(ecat(datagram(FPRD, STATIONS[0], 0x0130, b"\x08\0", wkc=1)), reply=True)]


def _hex(v: int, width: int) -> str:
    return f"0x{v:0{width}x}"


FIELDS = ["ecatf.length", "ecatf.type", "ecat.cmd", "ecat.idx", "ecat.adp", "ecat.ado", "ecat.lad", "ecat.int",
          "ecat.cnt", "ecat.subframe.length", "ecat.subframe.more", "ecat.subframe.circulating",
          "ecat.reg.alctrl.ctrl", "ecat.reg.alstatus.status", "ecat_mailbox.type", "ecat_mailbox.length",
          "ecat_mailbox.coe.sdoidx", "ecat_mailbox.coe.sdosub", "ecat_mailbox.coe.sdodata",
          "ecat_mailbox.foe_opmode", "ecat_mailbox.foe_filename"]


def test_frames_agree_with_tshark(tmp_path):
    frames = _frames()
    path = _write(tmp_path, frames)
    rows = {r["frame"]: r for r in tshark_fields(path, "ecatf", FIELDS)}
    assert len(rows) == len(frames)
    checked = {"al-control": 0, "al-status": 0, "mailbox": 0, "sdo": 0, "foe": 0, "logical": 0}
    for n, raw in enumerate(frames, 1):
        row, lay = rows[n], decode_frame(1, raw)
        payload = lay.payload if lay.l4 else bytes(lay.l3)
        f = ethercat.parse(payload)
        assert row["ecatf.length"] == [_hex(f.length, 4)] and row["ecatf.type"] == [_hex(f.type, 4)]
        ds = f.datagrams
        assert row["ecat.cmd"] == [_hex(d.cmd, 2) for d in ds]
        assert row["ecat.idx"] == [_hex(d.idx, 2) for d in ds]
        physical = [d for d in ds if d.addressing != ethercat.LOGICAL]
        assert row["ecat.adp"] == [_hex(d.adp, 4) for d in physical]
        assert row["ecat.ado"] == [_hex(d.ado, 4) for d in physical]
        assert row["ecat.lad"] == [_hex(d.logical, 8) for d in ds if d.addressing == ethercat.LOGICAL]
        checked["logical"] += len(ds) - len(physical)
        assert row["ecat.int"] == [_hex(d.irq, 4) for d in ds]
        assert row["ecat.cnt"] == [str(d.wkc) for d in ds]
        assert row["ecat.subframe.length"] == [str(d.length) for d in ds]
        assert row["ecat.subframe.more"] == [str(int(d.more)) for d in ds]
        assert row["ecat.subframe.circulating"] == [str(int(d.circulating)) for d in ds]
        ctrl = [d for d in ds if d.ado == ethercat.AL_CONTROL and d.addressing != ethercat.LOGICAL]
        assert row["ecat.reg.alctrl.ctrl"] == [_hex(d.word(ethercat.AL_CONTROL) & 0x0F, 4) for d in ctrl]
        checked["al-control"] += len(ctrl)
        status = [d for d in ds if d.ado == ethercat.AL_STATUS and d.addressing != ethercat.LOGICAL and d.wkc]
        assert row["ecat.reg.alstatus.status"] == [_hex(d.word(ethercat.AL_STATUS) & 0x0F, 4) for d in status]
        checked["al-status"] += len(status)
        boxes = [mb for mb in map(ethercat.parse_mailbox, ds) if mb]
        assert row["ecat_mailbox.type"] == [str(mb.type) for mb in boxes]
        assert row["ecat_mailbox.length"] == [str(mb.length) for mb in boxes]
        checked["mailbox"] += len(boxes)
        sdos = [s for s in map(ethercat.coe_sdo, boxes) if s]
        assert row["ecat_mailbox.coe.sdoidx"] == [_hex(s["index"], 4) for s in sdos]
        assert row["ecat_mailbox.coe.sdosub"] == [_hex(s["subindex"], 2) for s in sdos]
        # tshark shows the data of responses and of download requests (an upload request has none)
        answers = [s for s in sdos if s["service"] == 3 or s["specifier"] == 1]
        assert row["ecat_mailbox.coe.sdodata"] == [_hex(int.from_bytes(s["data"], "little"), 8) for s in answers]
        checked["sdo"] += len(sdos)
        foes = [x for x in map(ethercat.foe, boxes) if x]
        assert row["ecat_mailbox.foe_opmode"] == [_hex(x["opcode"], 2) for x in foes]
        assert row["ecat_mailbox.foe_filename"] == [x["filename"] for x in foes if "filename" in x]
        checked["foe"] += len(foes)
    assert all(checked.values()), checked


def test_eeprom_identity_words_agree_with_tshark(tmp_path):
    """The SII words tshark reads from the EEPROM registers (address 0x0504, data 0x0508..0x050F)
    of the returning frames, as identity keys, are what the decoder reports for that slave."""
    path = _write(tmp_path, startup())
    rows = tshark_fields(path, "ecat.reg.data0 && eth.src == 02:01:05:10:20:30",
                         ["ecat.reg.addrl", "ecat.reg.data0", "ecat.reg.data1", "ecat.reg.data2", "ecat.reg.data3"])
    want = {}
    for row in rows:
        word = int(row["ecat.reg.addrl"][0], 16)
        data = [int(row[f"ecat.reg.data{i}"][0], 16) for i in range(4)]
        for k in (0, 2):
            key = ethercat.SII_WORDS.get(word + k)
            if key:
                value = data[k] | data[k + 1] << 16
                want[key] = str(value) if key == "serial" else value
    ident = {}
    for o in analyze([path]).observations:
        if o.kind == "identity" and o.data.get("route") == f"EtherCAT station 0x{STATIONS[0]:04x}":
            ident.update({k: v for k, v in o.data.items() if k in ethercat.SII_WORDS.values()})
    assert ident == want == {"vendor_id": VENDOR, "product_code": PRODUCT, "revision_number": REVISION,
                             "serial": str(SERIAL)}


def test_master_asset_with_slaves_as_modules(tmp_path):
    res = analyze([_write(tmp_path, startup() + cyclic(20))])
    assets = [a for a in build_assets(res) if "ethercat" in a.protocols]
    assert [a.mac for a in assets] == [MASTER]               # the returning frames' MAC is no device
    master = assets[0]
    assert master.role == "plc"
    assert master.identity["slave_count"] == 3
    mods = {m["route"]: m for m in master.identity["modules"]}
    assert mods["EtherCAT station 0x1001"] == {"route": "EtherCAT station 0x1001", "vendor_id": VENDOR,
                                               "product_code": PRODUCT, "revision_number": REVISION,
                                               "serial": str(SERIAL), "state": "OP"}
    assert mods["EtherCAT station 0x1002"] == {"route": "EtherCAT station 0x1002", "vendor_id": VENDOR,
                                               "product_code": PRODUCT + 1, "revision_number": REVISION,
                                               "serial": str(SERIAL + 1)}
    ops = {}
    for o in res.observations:
        if o.kind == "operation":
            assert o.src_mac == MASTER and o.dst_mac == BROADCAST
            ops[o.data["code"]] = ops.get(o.data["code"], 0) + o.count
    assert ops == {"al-control": 12, "coe-sdo-download": 1, "foe-write": 1, "sii-write": 1}
    fw = next(o for o in res.observations if o.data.get("code") == "foe-write")
    assert fw.data["category"] == "firmware" and "ecat_fw.efw" in fw.data["detail"]


def test_cyclic_frames_are_replayed_and_the_engine_equals_the_reference(tmp_path):
    path = _write(tmp_path, startup() + cyclic(500))
    for chunk in (65536, 13):
        got = analyze([path], chunk_records=chunk)
        assert_equivalent(analyze_reference([path]), got)
        assert got.counters["routine_packets"] >= 990, got.counters
        assert got.counters["deep_packets"] < 100, got.counters
    role = next(o for o in got.observations if o.kind == "role")
    assert role.count == len(startup()) + 1000 and role.src_mac == MASTER


def test_over_udp(tmp_path):
    res = analyze([_write(tmp_path, _frames()[-2:])])
    assert [f.app for f in res.flows] == ["ethercat"]
    ident = [o for o in res.observations if o.kind == "identity"]
    assert [(o.src, o.subject, o.data) for o in ident] == [
        ("192.168.10.20", "src", {"route": "EtherCAT station 0x1001", "state": "OP"})]
    role = [o.subject_ip for o in res.observations if o.kind == "role"]
    assert set(role) == {"192.168.10.5"}


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x0e\x20" + bytes(14), b"\x00\x10" + bytes(14),
                                     b"\x0e\x10" + bytes(11)])
def test_frames_without_a_whole_datagram_give_nothing(payload):
    """Not type 1 (datagrams), a zero length, or a datagram cut short."""
    from plantguard.model import Packet
    assert ethercat.parse(payload) is None and not ethercat.signature(payload)
    assert ethercat.decode(Packet("t", 1, 0.0, payload, MASTER, BROADCAST, 0x88A4)) == []
