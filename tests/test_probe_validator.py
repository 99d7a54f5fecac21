"""The probe's send-side validator: frames of every protocol built here, independently of the
probe's own queries, are decoded by plantguard's passive decoders and refused unless read-only.
Hypothesis draws function codes, services and whole request plans; the oracle is the bytes (a
Modbus function code, an S7 job function, a BACnet service choice), not the decoder's words."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.probe.queries import all_queries
from plantguard.probe.query import Target
from plantguard.probe.validator import ConnectionValidator, Refused

DST = "10.77.0.2"


def allowed(protocol, l4, port, frames, mac=None, ethertype=0):
    """How many of `frames` the validator lets through, in order, before the first refusal."""
    v = ConnectionValidator(protocol, l4, DST, port, dst_mac=mac, ethertype=ethertype)
    for n, f in enumerate(frames):
        try:
            v.check(f)
        except Refused:
            return n
    return len(frames)


# -- Modbus ------------------------------------------------------------------------------------

def mbap(fc: int, data: bytes, unit: int = 1, tid: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(data) + 2, unit) + bytes([fc]) + data


@settings(max_examples=400, deadline=None)
@given(fc=st.integers(1, 127), data=st.binary(min_size=0, max_size=40))
def test_modbus_only_read_device_identification_leaves(fc, data):
    ok = allowed("modbus", "tcp", 502, [mbap(fc, data)]) == 1
    assert not ok or (fc == 43 and data[:1] == b"\x0e"), (fc, data.hex())


@pytest.mark.parametrize("fc,data", [
    (5, b"\x00\x01\xff\x00"), (6, b"\x00\x01\x00\x05"), (15, b"\x00\x01\x00\x08\x01\xff"),
    (16, b"\x00\x01\x00\x01\x02\x00\x05"), (22, b"\x00\x01\xff\xff\x00\x00"),
    (23, b"\x00\x01\x00\x01\x00\x01\x00\x01\x02\x00\x05"), (8, b"\x00\x01\x00\x00"),   # restart comms
    (43, b"\x0d\x00\x00\x00\x00"),                       # CANopen general reference (can write)
    (90, b"\x00\x40\x00"), (125, b"\x00"), (21, b"\x07\x06\x00\x01\x00\x00\x00\x01\x00\x05")])
def test_modbus_writes_programs_and_restarts_are_refused(fc, data):
    assert allowed("modbus", "tcp", 502, [mbap(fc, data)]) == 0


# -- S7comm ------------------------------------------------------------------------------------

COTP_CR = bytes.fromhex("0300001611e00000000100c0010ac1020100c2020102")


def tpkt_dt(s7: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, 7 + len(s7)) + b"\x02\xf0\x80" + s7


def s7_job(function: int, params: bytes = b"", data: bytes = b"", ref: int = 1) -> bytes:
    param = bytes([function]) + params
    return tpkt_dt(struct.pack(">BBHHHH", 0x32, 1, 0, ref, len(param), len(data)) + param + data)


SETUP = s7_job(0xF0, bytes.fromhex("00000100010" "1e0"))


def s7_userdata(type_group: int, subfunction: int, data: bytes = b"\xff\x09\x00\x04\x00\x11\x00\x00") -> bytes:
    param = bytes([0x00, 0x01, 0x12, 0x04, 0x11, type_group, subfunction, 0x00])
    return tpkt_dt(struct.pack(">BBHHHH", 0x32, 7, 0, 2, len(param), len(data)) + param + data)


@settings(max_examples=300, deadline=None)
@given(function=st.integers(0, 255), params=st.binary(max_size=24))
def test_s7_jobs_other_than_setup_never_leave(function, params):
    n = allowed("s7comm", "tcp", 102, [COTP_CR, SETUP, s7_job(function, params)])
    assert n >= 2                                   # connect and setup are read-only
    assert n == 2 or function == 0xF0, hex(function)


@settings(max_examples=300, deadline=None)
@given(group=st.integers(0, 15), kind=st.sampled_from([0x4, 0x8, 0x0]), sub=st.integers(0, 255))
def test_s7_userdata_only_read_szl_leaves(group, kind, sub):
    n = allowed("s7comm", "tcp", 102, [COTP_CR, SETUP, s7_userdata((kind << 4) | group, sub)])
    assert n == 2 or (group == 4 and sub == 1 and kind == 4), (kind, group, sub)


@pytest.mark.parametrize("function,params", [
    (0x29, b"\x00\x00\x00\x00\x00\x09P_PROGRAM"),                          # PLC stop
    (0x28, b"\x00\x00\x00\x00\x00\x00\xfd\x00\x00\x09P_PROGRAM"),          # PI service (start)
    (0x1A, b"\x00\x01\x00\x00\x00\x00\x00\x09_0800001P"), (0x1B, b"\x00\x01\x00\x00\x00\x00\x00\x09_0800001P"),
    (0x1D, b"\x00\x01\x00\x00\x00\x00\x00\x09_0800001P"),
    (0x05, b"\x01\x12\x0a\x10\x02\x00\x01\x00\x01\x84\x00\x00\x00")])       # write var
def test_s7_stop_start_download_upload_and_write_are_refused(function, params):
    assert allowed("s7comm", "tcp", 102, [COTP_CR, SETUP, s7_job(function, params)]) == 2


# -- EtherNet/IP + CIP -------------------------------------------------------------------------

def encap(command: int, data: bytes = b"", session: int = 0) -> bytes:
    return struct.pack("<HHII8sI", command, len(data), session, 0, b"\0" * 8, 0) + data


def send_rr(cip: bytes) -> bytes:
    cpf = struct.pack("<IHHHHHH", 0, 0, 2, 0, 0, 0xB2, len(cip)) + cip
    return encap(0x6F, cpf, session=0x11223344)


def cip(service: int, cls: int = 1, inst: int = 1, attr: int | None = None, data: bytes = b"") -> bytes:
    path = bytes([0x20, cls, 0x24, inst]) + (bytes([0x30, attr]) if attr is not None else b"")
    return bytes([service, len(path) // 2]) + path + data


@settings(max_examples=200, deadline=None)
@given(command=st.integers(0, 0xFF), data=st.binary(max_size=16))
def test_enip_only_the_list_commands_leave(command, data):
    ok = allowed("enip", "tcp", 44818, [encap(command, data)]) == 1
    assert not ok or command in (0x63, 0x64, 0x04), hex(command)


@pytest.mark.parametrize("service,attr,data", [(0x10, 1, b"\x01\x00"), (0x05, None, b""), (0x06, None, b""),
                                                (0x07, None, b""), (0x02, None, b"\x00"), (0x4D, None, b"\x00")])
def test_cip_set_reset_start_stop_are_refused(service, attr, data):
    assert allowed("enip", "tcp", 44818, [send_rr(cip(service, attr=attr, data=data))]) == 0


def test_cip_reads_through_send_rr_data_are_refused_too():
    # the catalogue allows no session at all: even a Get_Attribute_All needs RegisterSession first
    assert allowed("enip", "tcp", 44818, [encap(0x65, b"\x01\x00\x00\x00")]) == 0
    assert allowed("enip", "tcp", 44818, [send_rr(cip(0x01))]) == 0


# -- BACnet/IP ---------------------------------------------------------------------------------

def bvlc(npdu_apdu: bytes, function: int = 0x0A) -> bytes:
    return struct.pack(">BBH", 0x81, function, 4 + len(npdu_apdu)) + npdu_apdu


def confirmed(service: int, tail: bytes, invoke: int = 1) -> bytes:
    return bvlc(b"\x01\x04" + bytes([0x00, 0x05, invoke, service]) + tail)


def unconfirmed(service: int, tail: bytes) -> bytes:
    return bvlc(b"\x01\x00" + bytes([0x10, service]) + tail)


DEVICE_OBJECT = b"\x0c\x02\x00\x00\x01"


@settings(max_examples=300, deadline=None)
@given(service=st.integers(0, 40), prop=st.integers(0, 255))
def test_bacnet_confirmed_only_reads_leave(service, prop):
    ok = allowed("bacnet", "udp", 47808, [confirmed(service, DEVICE_OBJECT + bytes([0x19, prop]))]) == 1
    assert not ok or service in (12, 14), service


@settings(max_examples=100, deadline=None)
@given(service=st.integers(0, 12), tail=st.binary(max_size=8))
def test_bacnet_unconfirmed_only_who_is_leaves(service, tail):
    ok = allowed("bacnet", "udp", 47808, [unconfirmed(service, tail)]) == 1
    assert not ok or service == 8, service


@pytest.mark.parametrize("frame", [
    confirmed(15, DEVICE_OBJECT + b"\x19\x55\x3e\x44\x00\x00\x00\x00\x3f"),         # WriteProperty
    confirmed(20, b"\x09\x00"),                                                     # ReinitializeDevice
    confirmed(17, b"\x19\x01"),                                                     # DeviceCommunicationControl
    confirmed(16, DEVICE_OBJECT + b"\x1e\x09\x55\x2e\x44\x00\x00\x00\x00\x2f\x1f"),  # WritePropertyMultiple
    unconfirmed(6, b"\x0c\x00\x00\x00\x01\x19\x55"),                                # TimeSynchronization
    confirmed(10, b"\x0c\x00\x00\x00\x01"), confirmed(11, b"\x0c\x00\x00\x00\x01")])  # Create/DeleteObject
def test_bacnet_writes_reinitialize_and_dcc_are_refused(frame):
    assert allowed("bacnet", "udp", 47808, [frame]) == 0


# -- SNMP --------------------------------------------------------------------------------------

def ber(tag: int, body: bytes) -> bytes:
    n = len(body)
    return bytes([tag]) + (bytes([n]) if n < 128 else bytes([0x81, n])) + body


def oid(text: str) -> bytes:
    parts = [int(p) for p in text.split(".")]
    out = bytes([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        while p > 0x7F:
            p >>= 7
            chunk.insert(0, 0x80 | (p & 0x7F))
        out += bytes(chunk)
    return ber(0x06, out)


def snmp(pdu_tag: int, value: bytes = b"\x05\x00", community: bytes = b"public") -> bytes:
    varbind = ber(0x30, oid("1.3.6.1.2.1.1.5.0") + value)
    pdu = ber(pdu_tag, ber(0x02, b"\x01") + ber(0x02, b"\x00") + ber(0x02, b"\x00") + ber(0x30, varbind))
    return ber(0x30, ber(0x02, b"\x01") + ber(0x04, community) + pdu)


@pytest.mark.parametrize("tag,ok", [(0xA0, True), (0xA1, True), (0xA3, False), (0xA5, False), (0xA4, False),
                                    (0xA6, False), (0xA7, False)])
def test_snmp_get_leaves_and_set_does_not(tag, ok):
    value = ber(0x04, b"renamed") if tag == 0xA3 else b"\x05\x00"
    assert allowed("snmp", "udp", 161, [snmp(tag, value)]) == int(ok)


# -- HTTP --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"])
def test_http_only_head_leaves(method):
    frame = f"{method} / HTTP/1.1\r\nHost: {DST}\r\nContent-Length: 0\r\n\r\n".encode()
    assert allowed("http", "tcp", 80, [frame]) == 0
    assert allowed("http", "tcp", 80, [frame.replace(method.encode(), b"HEAD", 1)]) == 1


# -- PROFINET DCP ------------------------------------------------------------------------------

def dcp(frame_id: int, service: int, blocks: bytes, length: int | None = None) -> bytes:
    return struct.pack(">HBBIHH", frame_id, service, 0, 0x1234, 1, len(blocks) if length is None else length) + blocks


IDENTIFY_ALL = dcp(0xFEFE, 5, b"\xff\xff\x00\x00")
DEVICE_MAC = "02:77:00:00:00:02"


def test_dcp_identify_all_leaves_only_unicast_and_well_formed():
    assert allowed("profinet", "", 0, [IDENTIFY_ALL], mac=DEVICE_MAC, ethertype=0x8892) == 1
    with pytest.raises(Refused):
        ConnectionValidator("profinet", "", DST, 0, dst_mac="01:0e:cf:00:00:00", ethertype=0x8892)
    assert allowed("profinet", "", 0, [dcp(0xFEFE, 5, b"\xff\xff\x00\x00", length=40)], mac=DEVICE_MAC,
                   ethertype=0x8892) == 0
    assert allowed("profinet", "", 0, [dcp(0xFEFE, 5, b"\x01\x02\x00\x04\x0a\x00\x00\x01")], mac=DEVICE_MAC,
                   ethertype=0x8892) == 0


@pytest.mark.parametrize("blocks", [
    b"\x05\x03\x00\x04\x00\x00\x01\x00",                     # Control/Signal: blink
    b"\x02\x02\x00\x08\x00\x01newname",                      # NameOfStation set
    b"\x01\x02\x00\x0e\x00\x01\x0a\x00\x00\x05\xff\xff\xff\x00\x0a\x00\x00\x01",   # IP set
    b"\x05\x06\x00\x04\x00\x00\x00\x00"])                    # Control/Factory reset
def test_dcp_set_and_blink_are_refused(blocks):
    assert allowed("profinet", "", 0, [dcp(0xFEFD, 4, blocks)], mac=DEVICE_MAC, ethertype=0x8892) == 0


# -- plans: a read-only prefix, then anything ---------------------------------------------------

READS = {
    "modbus": ("tcp", 502, [mbap(43, b"\x0e\x01\x00")]),
    "s7comm": ("tcp", 102, [COTP_CR, SETUP, s7_userdata(0x44, 0x01)]),
    "bacnet": ("udp", 47808, [unconfirmed(8, b""), confirmed(12, DEVICE_OBJECT + b"\x19\x79")]),
}
WRITES = {
    "modbus": [mbap(6, b"\x00\x01\x00\x05"), mbap(16, b"\x00\x01\x00\x01\x02\x00\x05"), mbap(8, b"\x00\x01\x00\x00")],
    "s7comm": [s7_job(0x29, b"\x00\x00\x00\x00\x00\x09P_PROGRAM"), s7_job(0x05, b"\x01\x12\x0a\x10\x02\x00\x01")],
    "bacnet": [confirmed(15, DEVICE_OBJECT + b"\x19\x55\x3e\x44\x00\x00\x00\x00\x3f"), confirmed(20, b"\x09\x00")],
}


@settings(max_examples=200, deadline=None)
@given(protocol=st.sampled_from(sorted(READS)), data=st.data())
def test_a_plan_stops_at_its_first_non_read_frame(protocol, data):
    l4, port, reads = READS[protocol]
    prefix = reads[:data.draw(st.integers(1, len(reads)))]
    bad = data.draw(st.sampled_from(WRITES[protocol]))
    tail = data.draw(st.lists(st.sampled_from(reads[-1:]), max_size=3))
    plan = prefix + [bad] + tail
    assert allowed(protocol, l4, port, plan) == len(prefix)


# -- the probe's own queries -------------------------------------------------------------------

@pytest.mark.parametrize("query", all_queries(), ids=lambda q: q.id)
def test_every_frame_of_every_probe_query_is_allowed(query):
    """A dry run of each query (no answers): every frame it would send passes the validator."""
    from plantguard.probe.session import Plan, dry_run
    (run,) = dry_run(Plan([(Target(DST, mac=DEVICE_MAC), query)]))
    assert run.status == "planned", run.reason
    assert run.steps and all(s.operations for s in run.steps)


def test_garbage_and_broadcast_are_refused():
    assert allowed("modbus", "tcp", 502, [b"\x00" * 3]) == 0
    assert allowed("modbus", "tcp", 502, [b""]) == 0
    for bad in ("255.255.255.255", "224.0.0.1", "0.0.0.0"):
        with pytest.raises(Refused):
            ConnectionValidator("modbus", "tcp", bad, 502)
    with pytest.raises(Refused):
        ConnectionValidator("no-such-protocol", "tcp", DST, 1)
