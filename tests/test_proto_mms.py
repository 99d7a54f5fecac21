"""IEC 61850 MMS decoder against tshark's `mms` dissector, PDU by PDU and field by field (PDU
choice, invokeID, confirmed service request / response, Identify vendor / model / revision,
domain-specific object names), on every MMS capture of ICS-Security-Tools/IEC61850; the service
categories of the 24 single-command captures; TCP 102 split between MMS and S7comm."""
from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
from conftest import shared_path
from support.baselines import Score
from support.decode import deep_observations, frames, of_kind, packet, replay, stream
from support.peers import tshark_fields

from plantguard.capture.engine import analyze
from plantguard.protocols import mms, registry, s7comm
from plantguard.protocols.mms import services

DIR = "pcaps/ICS-Security-Tools/IEC61850"
CMD = f"{DIR}/MMS - Specific Commands"
CAPTURES = ["8d7c7db0-9804-012b-b2a6-0016cb8cea27.pcap", "Sample_File_MMS_and_GOOSE.pcap", "piccolo.pcap"]
COMMANDS = {   # capture -> the confirmed service requests in it (tshark agrees: test below)
    "iec61850_get_name_list.pcap": [("getNameList", "read")],
    "iec61850_get_variable_access_attributes.pcap": [("getVariableAccessAttributes", "read")],
    "iec61850_read.pcap": [("read", "read")],
    "iec61850_release.pcap": [],
    "iec61850_write.pcap": [("write", "write")],
    "mms-cancelRequest.pcap": [],
    "mms-confirmedRequestPDU.pcap": [],
    "mms-deleteProgramInvocation.pcap": [("deleteProgramInvocation", "control")],
    "mms-getAlarmSummary.pcap": [("getAlarmSummary", "read")],
    "mms-getDomainAttributes.pcap": [("getDomainAttributes", "read")],
    "mms-initiateDownloadSequence.pcap": [("takeControl", "control"), ("initiateDownloadSequence", "program")],
    "mms-initiateUploadSequence.pcap": [("initiateUploadSequence", "read")],
    "mms-killRequest.pcap": [("kill", "control")],
    "mms-readRequest.pcap": [("read", "read")],
    "mms-relinquishControl.pcap": [("takeControl", "control"), ("relinquishControl", "control")],
    "mms-resetRequest.pcap": [("reset", "control")],
    "mms-resumeRequest.pcap": [("resume", "control")],
    "mms-startRequest.pcap": [("stop", "control"), ("start", "control")],
    "mms-stopRequest.pcap": [("start", "control"), ("stop", "control")],
    "mms-takeControl.pcap": [("takeControl", "control"), ("relinquishControl", "control")],
    "mms-terminateUploadSequence.pcap": [("initiateUploadSequence", "read"), ("terminateUploadSequence", "read")],
}
FIELDS = ["_ws.col.Info", "mms.invokeID", "mms.confirmedServiceRequest", "mms.confirmedServiceResponse",
          "mms.vendorName", "mms.modelName", "mms.revision", "mms.domainId", "mms.itemId"]


def _all_paths():
    return [shared_path(f"{DIR}/{c}") for c in CAPTURES] + [shared_path(f"{CMD}/{c}") for c in sorted(COMMANDS)]


def test_every_mms_pdu_matches_tshark():
    """Every MMS PDU tshark decodes, we decode, with the same fields (and no PDU tshark lacks)."""
    score = Score()
    pdus = 0
    extra: list = []
    for path in _all_paths():
        rows = {r["frame"]: r for r in tshark_fields(path, "mms", FIELDS)}
        _obs, seen = replay(path, mms, tap="_observe_pdu")
        ours = defaultdict(list)
        for frame, *_rest, pdu in seen:
            ours[frame].append(pdu)
        where = path.name
        assert set(rows) <= set(ours), (where, sorted(set(rows) - set(ours)))
        for frame in sorted(set(ours) - set(rows)):
            # what tshark leaves undecoded: a bare conclude-Request ("8B 00") straight on COTP (too
            # short for its heuristic), and data transfers of associations whose start the capture
            # lacks (tshark needs the CP's presentation contexts; the PDU says MMS by itself)
            kinds = {p.pdu_name for p in ours[frame]}
            assert kinds in ({"conclude-RequestPDU"}, {"unconfirmed-PDU"}, {"confirmed-RequestPDU"},
                             {"confirmed-ResponsePDU"}), (where, frame, kinds)
            extra.append((where, frame))
        for frame, r in rows.items():
            got = ours.get(frame, [])
            pdus += len(got)
            kinds = re.findall(r"\b([a-z]+-(?:Request|Response|Error)PDU|unconfirmed-PDU|rejectPDU)", r["_ws.col.Info"][0])
            score.check(f"{where} {frame} pdu", [p.pdu_name for p in got], kinds)
            score.check(f"{where} {frame} invokeID", [p.invoke_id for p in got if p.invoke_id is not None
                                                      and p.kind in (0, 1, 2)],
                        [int(v) for v in r["mms.invokeID"]])
            score.check(f"{where} {frame} request", [p.service for p in got if p.kind == 0 and p.service is not None],
                        [int(v) for v in r["mms.confirmedServiceRequest"]])
            score.check(f"{where} {frame} response", [p.service for p in got if p.kind == 1 and p.service is not None],
                        [int(v) for v in r["mms.confirmedServiceResponse"]])
            for key, field in (("vendor", "mms.vendorName"), ("model", "mms.modelName"),
                               ("revision", "mms.revision")):
                score.check(f"{where} {frame} {key}", [p.identity[key] for p in got if key in p.identity], r[field])
            names = [n for p in got for n in p.names if n[0]]
            score.check(f"{where} {frame} domainId", [d for d, _i in names], r["mms.domainId"])
            score.check(f"{where} {frame} itemId", [i for _d, i in names], r["mms.itemId"])
    assert pdus >= 200
    assert len(extra) == 36, extra   # 21 in Sample_File (mid-association), 15 bare conclude requests
    score.assert_agrees(minimum=1.0, at_least=1500)


@pytest.mark.parametrize("capture", sorted(COMMANDS))
def test_command_captures_give_their_operations(capture):
    obs = deep_observations(shared_path(f"{CMD}/{capture}"))
    ops = [(o.data["name"], o.data["category"]) for o in of_kind(obs, "operation", "mms")]
    assert ops == COMMANDS[capture]
    assert all(o.subject == "dst" and o.dport == 102 for o in of_kind(obs, "operation", "mms"))
    assert len(of_kind(obs, "service", "mms")) == 1


def test_service_numbers_are_tsharks():
    """Our service table names every confirmed service as tshark's value strings do."""
    import subprocess

    from support.peers import need_tshark
    out = subprocess.run([need_tshark(), "-G", "values"], capture_output=True, text=True, timeout=120, check=True).stdout
    theirs = {int(code): name for kind, field, code, name in
              (line.split("\t") for line in out.splitlines() if line.startswith("V\tmms.confirmedServiceRequest\t"))}
    assert theirs and {c: n for c, (n, _cat) in services.SERVICES.items()} == theirs
    assert services.SERVICES[19][0] == "takeControl" and services.SERVICES[63][0] == "getAlarmSummary"


def test_identify_is_the_identity_and_errors_are_observed():
    obs = deep_observations(shared_path(f"{DIR}/piccolo.pcap"))
    assert [(o.subject, o.src, o.data) for o in of_kind(obs, "identity", "mms")] == \
        [("src", "10.10.0.30", {"vendor": "INFO TECH", "model": "S61850 for PC", "firmware": "0.0.1"})]
    iccp = deep_observations(shared_path(f"{DIR}/8d7c7db0-9804-012b-b2a6-0016cb8cea27.pcap"))
    idents = {(o.src, o.data["vendor"], o.data["model"], o.data["firmware"]) for o in of_kind(iccp, "identity")}
    assert {v[1:] for v in idents} == {("AREVA T&D Corporation", "e-terracomm", "2.3.1")}
    sample = deep_observations(shared_path(f"{DIR}/Sample_File_MMS_and_GOOSE.pcap"))
    errors = of_kind(sample, "error", "mms")
    assert [(o.frame, o.data["code"], o.subject) for o in errors] == [(126, "access/2", "src")]
    assert "object-non-existent" in errors[0].data["name"]
    svc = [o.data for o in of_kind(sample, "service", "mms") if "max_pdu" in o.data]
    assert svc == [{"name": "mms", "protocol_version": "1", "max_pdu": 64000, "parameter_cbb": "e100",
                    "calling_tsap": "0x0001", "called_tsap": "0x0001"}]


def test_no_advisories_for_the_captured_vendors():
    """The Identify vendors of the captures (AREVA T&D's e-terracomm, INFO TECH's S61850) have no
    product in the shared CSAF sample, so no advisory can match them; the one IEC 61850 advisory
    in it is ABB's Relion 670."""
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(shared_path("vuln/csaf").glob("*/*.json"))]
    for vendor in ("AREVA", "e-terracomm", "INFO TECH", "S61850"):
        assert not any(vendor.lower() in t.lower() for t in texts), vendor
    assert any("61850" in t and "Relion 670" in t for t in texts)


def _payloads(path) -> list[bytes]:
    return [bytes(lay.payload) for _f, _t, lay in frames(path) if lay.payload and 102 in (lay.sport, lay.dport)]


S7_CAPTURES = ["pcaps/ICS-Security-Tools/s7/s7comm_reading_plc_status.pcap",
               "pcaps/ICS-Security-Tools/s7/S7-1200-Uploading-OB1-TIAV12.pcap",
               "pcaps/ICS-Security-Tools/s7/snap7_s300_stop.pcapng",
               "pcaps/ICS-Security-Tools/s7/S7-1511_db3_var1_HMI.pcap"]


def test_port_102_is_split_between_mms_and_s7comm():
    """No S7 payload is MMS and no MMS payload S7: S7 captures' flows stay s7comm, MMS ones mms."""
    for rel in S7_CAPTURES:
        path = shared_path(rel)
        assert not any(mms.signature(p) for p in _payloads(path)), rel
        apps = {f.app for f in analyze([path]).flows if f.port == 102} - {None}   # None: no payload
        assert apps == {"s7comm"}, (rel, apps)
    for path in _all_paths():
        assert not any(s7comm.signature(p) for p in _payloads(path)), path.name
        # None: a flow with no payload, or only bytes tshark does not decode either
        apps = {f.app for f in analyze([path]).flows if f.port == 102} - {None}
        assert apps == {"mms"}, (path.name, apps)


def test_signature_only_on_port_102():
    pay = next(p for p in _payloads(shared_path(f"{DIR}/piccolo.pcap")) if mms.signature(p))
    assert registry.classify("tcp", 40000, 102, pay) is mms
    assert registry.classify("tcp", 40000, 5555, pay) is None
    assert registry.classify("udp", 40000, 102, pay) is None
    # S7 connection request (TSAPs 0x0100 / 0x0102) and an S7 job are not MMS
    assert not mms.signature(bytes.fromhex("0300001611e00000000100c1020100c2020102c0010a"))
    assert not mms.signature(bytes.fromhex("0300001902f08032010000000000080000f0000001000101e0"))
    assert not mms.signature(b"GET / HTTP/1.1\r\n\r\n")


def _tpkt(user: bytes, eot: bool = True) -> bytes:
    cotp = bytes([2, 0xF0, 0x80 if eot else 0])
    return b"\x03\x00" + (4 + len(cotp) + len(user)).to_bytes(2, "big") + cotp + user


def _tlv(tag: bytes, value: bytes) -> bytes:
    assert len(value) < 128
    return tag + bytes([len(value)]) + value


def _data_transfer(mms_pdu: bytes) -> bytes:
    """GIVE TOKENS + DATA TRANSFER, fully-encoded data with one PDV (context 3), per ISO 8327 /
    8823 as IEC 61850-8-1 profiles them."""
    pdv = _tlv(b"\x30", b"\x02\x01\x03" + _tlv(b"\xa0", mms_pdu))
    return b"\x01\x00\x01\x00" + _tlv(b"\x61", pdv)


def _write(invoke: int, domain: bytes, item: bytes) -> bytes:
    name = _tlv(b"\xa1", _tlv(b"\x1a", domain) + _tlv(b"\x1a", item))
    spec = _tlv(b"\xa0", _tlv(b"\x30", _tlv(b"\xa0", name)))
    req = _tlv(b"\xa5", _tlv(b"\xa0", spec) + _tlv(b"\xa0", b"\x83\x01\x01"))
    return _tlv(b"\xa0", b"\x02\x01" + bytes([invoke]) + req)


def test_control_write_and_fragmented_pdu():
    """Built per IEC 61850-8-1: a write to CSWI1$CO$Pos$Oper is control, a write to a setting is
    write; an MMS PDU split over two COTP DT units (first without EOT) is reassembled."""
    oper = _data_transfer(_write(1, b"IED1LD0", b"CSWI1$CO$Pos$Oper"))
    setting = _data_transfer(_write(2, b"IED1LD0", b"PTOC1$SP$StrVal$setMag$f"))
    split = _tpkt(setting[:10], eot=False) + _tpkt(setting[10:])
    out = stream([(True, _tpkt(oper)), (True, split[:7]), (True, split[7:])], mms, dport=102)
    ops = [(o.data["category"], o.data["detail"]) for o in of_kind(out, "operation")]
    assert ops == [("control", "IED1LD0/CSWI1$CO$Pos$Oper"), ("write", "IED1LD0/PTOC1$SP$StrVal$setMag$f")]
    # a reject PDU from the IED (invalid-argument on a confirmed request) is an error
    reject = _tlv(b"\xa4", b"\x80\x01\x05\x81\x01\x04")
    err = of_kind(mms.decode(packet(_tpkt(_data_transfer(reject)), sport=102, dport=40000, from_client=False)),
                  "error")
    assert [(o.data["code"], o.subject) for o in err] == [("confirmed-requestPDU/4", "src")]


def _read(invoke: int, domain: bytes, item: bytes) -> bytes:
    name = _tlv(b"\xa1", _tlv(b"\x1a", domain) + _tlv(b"\x1a", item))
    req = _tlv(b"\xa4", _tlv(b"\xa1", _tlv(b"\xa0", _tlv(b"\x30", _tlv(b"\xa0", name)))))
    return _tlv(b"\xa0", b"\x02\x02" + invoke.to_bytes(2, "big") + req)


def _read_response(invoke: int, value: int) -> bytes:
    data = _tlv(b"\xa1", _tlv(b"\xa0", _tlv(b"\x87", b"\x08" + value.to_bytes(4, "big"))))
    return _tlv(b"\xa1", b"\x02\x02" + invoke.to_bytes(2, "big") + _tlv(b"\xa4", data))


def _obs_key(o) -> tuple:
    return o.kind, o.proto, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items())))


def test_polling_is_replayed_and_equals_the_reference(tmp_path):
    """A client polling two measured values with read requests (invoke ids counting up), the
    IED's responses and reports, one control write and one refused read among them: the engine
    replays the polls and says exactly what the reference decoder says."""
    from support.packets import pcap_bytes, tcp_conversation

    from plantguard.capture.reference import analyze_reference
    report = _tlv(b"\xa3", _tlv(b"\xa0", _tlv(b"\xa1", _tlv(b"\x80", b"RPT")) + _tlv(b"\xa0", b"\x8a\x02ok")))
    error = _tlv(b"\xa2", b"\x80\x02\x00\x96" + _tlv(b"\xa2", _tlv(b"\xa0", b"\x87\x01\x02")))
    exchanges = [(True, bytes.fromhex("030000160ee00000000100c1020001c2020001c0010a")),
                 (False, bytes.fromhex("030000160ed00001000100c1020001c2020001c0010a"))]
    for i in range(300):
        item = b"MMXU1$MX$TotW$mag$f" if i % 2 else b"MMXU1$MX$Hz$mag$f"
        exchanges.append((True, _tpkt(_data_transfer(_read(i, b"IED1MEAS", item)))))
        exchanges.append((False, _tpkt(_data_transfer(error if i == 150 else _read_response(i, 1000 + i)))))
        if i % 10 == 0:
            exchanges.append((False, _tpkt(_data_transfer(report))))
        if i == 200:
            exchanges.append((True, _tpkt(_data_transfer(_write(9, b"IED1LD0", b"XCBR1$CO$Pos$Oper")))))
    path = tmp_path / "mms_poll.pcap"
    path.write_bytes(pcap_bytes(tcp_conversation("10.0.0.3", "10.0.0.2", 102, exchanges)))
    got, ref = analyze([path]), analyze_reference([path])
    assert got.counters["routine_packets"] > 500
    assert sorted(map(_obs_key, got.observations)) == sorted(map(_obs_key, ref.observations))
    ops = {(o.data["name"], o.data["category"], o.data["detail"]) for o in got.observations if o.kind == "operation"}
    assert ops == {("read", "read", "IED1MEAS/MMXU1$MX$Hz$mag$f"), ("read", "read", "IED1MEAS/MMXU1$MX$TotW$mag$f"),
                   ("write", "control", "IED1LD0/XCBR1$CO$Pos$Oper")}
    assert [(o.data["code"], o.src) for o in got.observations if o.kind == "error"] == [("access/2", "10.0.0.2")]
    assert {f.app for f in got.flows} == {"mms"}


def _connect(si: int, acse: bytes) -> bytes:
    """A session CONNECT / ACCEPT (SI 13 / 14) whose user data is a CP / CPA-type presentation
    PPDU holding one PDV (context 1: ACSE), per ISO 8327 / 8823."""
    pdv = _tlv(b"\x30", b"\x02\x01\x01" + _tlv(b"\xa0", acse))
    ppdu = _tlv(b"\x31", b"\xa0\x03\x80\x01\x01" + _tlv(b"\xa2", _tlv(b"\x61", pdv)))
    params = b"\x05\x06\x13\x01\x00\x16\x01\x02" + b"\x14\x02\x00\x02" + _tlv(b"\xc1", ppdu)
    return _tlv(bytes([si]), params)


def test_acse_password_is_a_cleartext_credential_and_a_refused_association_an_error():
    initiate = _tlv(b"\xa8", b"\x80\x03\x00\xfd\xe8\x81\x01\x05\x82\x01\x05\x83\x01\x0a"
                    + _tlv(b"\xa4", b"\x80\x01\x01\x81\x03\x05\xf1\x00\x82\x0c\x03" + b"\xee\x1c" + bytes(9)))
    user_info = _tlv(b"\xbe", _tlv(b"\x28", b"\x02\x01\x03" + _tlv(b"\xa0", initiate)))
    aarq = _tlv(b"\x60", _tlv(b"\xa1", b"\x06\x05\x28\xca\x22\x02\x03") + b"\x8a\x02\x06\x80"
                + b"\x8b\x03\x52\x03\x01" + _tlv(b"\xac", _tlv(b"\x80", b"s3cret")) + user_info)
    out = stream([(True, _tpkt(_connect(0x0D, aarq)))], mms, dport=102)
    creds = of_kind(out, "credential", "mms")
    assert [(c.subject, c.data["password"], c.data["secret_type"], c.data["cleartext"]) for c in creds] == \
        [("dst", "s3cret", "password", True)]
    svc = of_kind(out, "service", "mms")[0].data
    assert (svc["max_pdu"], svc["protocol_version"]) == (65000, "1")
    aare = _tlv(b"\x61", _tlv(b"\xa1", b"\x06\x05\x28\xca\x22\x02\x03") + _tlv(b"\xa2", b"\x02\x01\x01"))
    err = of_kind(mms.decode(packet(_tpkt(_connect(0x0E, aare)), sport=102, dport=40000, from_client=False)),
                  "error")
    assert [(e.data["code"], e.subject) for e in err] == [(1, "src")]
    assert "rejected" in err[0].data["name"]


def test_abb_relion_identify_meets_its_advisory():
    """An Identify response as an ABB Relion 670 IED gives it (built per ISO 9506: vendorName,
    modelName, revision) is an identity that meets ICSA-19-330-01 (Relion 670 series, 2.0 up to
    2.0.0.10); a captured vendor (AREVA) meets none. No capture holds an ABB Identify."""
    from plantguard.knowledge.csaf import read_csaf
    from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
    ident = _tlv(b"\xa2", _tlv(b"\x80", b"ABB") + _tlv(b"\x81", b"REL670") + _tlv(b"\x82", b"2.0.0.3"))
    resp = _tlv(b"\xa1", b"\x02\x01\x07" + ident)
    out = mms.decode(packet(_tpkt(_data_transfer(resp)), sport=102, dport=40000, from_client=False))
    data = of_kind(out, "identity", "mms")[0].data
    assert data == {"vendor": "ABB", "model": "REL670", "firmware": "2.0.0.3"}
    idx = IntelIndex()
    for path in sorted(shared_path("vuln/csaf").glob("*/*.json")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "ABB" not in text:
            continue
        doc = read_csaf(json.loads(text))
        for p in doc.products:
            idx.add_product(doc.id, p.product_id, p.vendor, p.product_name, p.full_name, p.version_text,
                            p.version_kind, p.model_numbers, p.cpe)

    def advisories(identity: dict) -> set[str]:
        dev = DeviceIdentity.from_identity(identity)
        return {p.advisory_id.lower() for p in idx.candidates(dev) if idx.match_product(dev, p) is not None}

    assert "icsa-19-330-01" in advisories(data)
    assert not advisories({"vendor": "AREVA T&D Corporation", "model": "e-terracomm", "firmware": "2.3.1"})
