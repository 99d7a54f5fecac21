"""CODESYS V3 on frames built from the published layouts (no shared capture has CODESYS traffic
and tshark has no CODESYS dissector: see docs/baseline-differences/codesys.md): the name service
Identification reply against the published nmap example, field by field; an engineering session
over the TCP block driver replayed through the real engine (operations by service, errors, the
inventory's PLC and its advisories); tshark as the oracle of the framing it does read (ports,
payload bytes); strict signatures on other ports."""
from __future__ import annotations

import json
import struct
import subprocess

import pytest
from conftest import shared_path
from support.codesys_frames import (
    LINUX,
    PLC,
    TOOL,
    WAGO,
    block,
    channel_tcp,
    datagram,
    discovery_frames,
    ns_identification,
    ns_request,
    service,
    session_frames,
    tag,
)
from support.decode import of_kind, packet, stream
from support.packets import pcap_bytes, udp_frame
from support.peers import need_tshark, tshark_fields

from plantguard.capture.engine import analyze
from plantguard.capture.reference import analyze_reference
from plantguard.inventory.build import build_assets
from plantguard.knowledge.csaf import read_csaf
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
from plantguard.model import OP_CATEGORIES
from plantguard.protocols import codesys, fins, registry
from plantguard.protocols.codesys.services import SERVICES


def _write(tmp_path, frames, name="codesys.pcap"):
    path = tmp_path / name
    path.write_bytes(pcap_bytes(frames))
    return path


def _reply(ident) -> bytes:
    return datagram(4, ns_identification(ident), receiver=b"\x00\x05", sender=b"\x00\x14")


def test_identification_reply_reads_as_the_published_nmap_example():
    """nmap's codesys-plc-info documents the reply of a WAGO PFC200: targetVendor WAGO, targetName
    'WAGO 750-8206 PFC200 2ETH RS CAN DPS', deviceName 'PFC200-438F4C', targetID 0x10061204,
    targetType 0x1000, targetVersion 5.15.4.0. The reply built from the layout reads back as that."""
    out = codesys.decode(packet(_reply(WAGO), l4="udp", sport=1740, dport=1740, from_client=False))
    ident = of_kind(out, "identity")[0]
    assert ident.subject == "src"
    assert ident.data == {"vendor": "WAGO", "product": "WAGO 750-8206 PFC200 2ETH RS CAN DPS",
                          "name": "PFC200-438F4C", "device_id": 0x10061204, "device_type_id": 0x1000,
                          "firmware": "5.15.4.0"}
    assert [o.subject for o in of_kind(out, "service")] == ["src"]


@pytest.mark.parametrize("intel", [True, False])
@pytest.mark.parametrize("parent", [b"", b"\x00\x01\x00\x02"])
def test_identification_round_trip_with_serial_parent_address_and_byte_order(intel, parent):
    p = ns_identification(LINUX, parent=parent, intel=intel)
    out = codesys.decode(packet(datagram(4, p), l4="udp", sport=1741, dport=1740, from_client=False))
    assert of_kind(out, "identity")[0].data == {
        "vendor": LINUX["vendor"], "product": LINUX["device"], "name": LINUX["node"], "serial": "SN-0042",
        "device_id": LINUX["target_id"], "device_type_id": LINUX["target_type"], "firmware": "3.5.14.0"}
    # every cut of the reply is no identity or the whole one, never an exception
    for n in range(len(p)):
        cut = codesys.decode(packet(datagram(4, p[:n]), l4="udp", sport=1741, dport=1740, from_client=False))
        assert all(o.data.get("firmware") == "3.5.14.0" for o in of_kind(cut, "identity"))


def test_session_through_the_engine(tmp_path):
    """Discovery and an engineering session replayed through the real engine: the runtime is a
    PLC with the reply's identity; login, download, start, read, stop, reset are operations of
    their classes; the refused stop is an error of the PLC; the encrypted service says nothing."""
    path = _write(tmp_path, discovery_frames() + session_frames())
    res = analyze([path])
    ops = [(o.data["name"], o.data["category"], o.src, o.dst) for o in res.observations if o.kind == "operation"]
    assert [(n, c) for n, c, _s, _d in ops] == [
        ("Device login", "auth"), ("Application login", "auth"), ("Download", "program"), ("Start", "control"),
        ("Read variables", "read"), ("Stop", "control"), ("Reset", "control")]
    assert {(s, d) for _n, _c, s, d in ops} == {(TOOL, PLC)}
    errors = [(o.data["code"], o.data["function_name"], o.src) for o in res.observations if o.kind == "error"]
    assert errors == [(0x0012, "Stop", PLC)]
    services = {(o.src, o.dst) for o in res.observations if o.kind == "service" and o.proto == "codesys"}
    assert services and all(PLC in pair for pair in services)
    ref = analyze_reference([path])
    key = lambda o: (o.kind, o.proto, o.src, o.dst, o.frame, tuple(sorted(map(str, o.data.items()))))
    assert sorted(map(key, res.observations)) == sorted(map(key, ref.observations))
    creds = [(o.data["user"], o.data["password"], o.data["cleartext"], o.src, o.dst)
             for o in res.observations if o.kind == "credential"]
    assert creds == [("engineer", None, False, TOOL, PLC)]
    plc = [a for a in build_assets(res) if "codesys" in a.protocols and a.ip == PLC]
    assert len(plc) == 1 and plc[0].role == "plc"
    assert plc[0].identity["firmware"] == "3.5.14.0" and plc[0].identity["serial"] == "SN-0042"


def test_framing_agrees_with_tshark(tmp_path):
    """tshark 4.0 has no CODESYS dissector; it is the oracle of what it does read: every frame's
    ports and the payload bytes the decoder was given (as `data`)."""
    need_tshark()
    protos = subprocess.run([need_tshark(), "-G", "protocols"], check=True, capture_output=True, text=True,
                            timeout=60).stdout
    assert not [ln for ln in protos.splitlines() if "codesys" in ln.lower()]
    frames = discovery_frames() + session_frames()
    path = _write(tmp_path, frames)
    rows = tshark_fields(path, "data", ["udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport", "data.data"])
    payloads = _payloads(frames)
    assert [bytes.fromhex(r["data.data"][0].replace(":", "")) for r in rows] == payloads
    ports = {int((r["udp.dstport"] or r["tcp.dstport"])[0]) for r in rows} | \
        {int((r["udp.srcport"] or r["tcp.srcport"])[0]) for r in rows}
    assert ports <= {1740, 11740, 40000}
    assert sum(1 for p in payloads if codesys.signature(p)) == len(payloads)


def _payloads(frames):
    from plantguard.capture.layers import decode_frame
    out = []
    for _ts, f in frames:
        lay = decode_frame(1, f)
        if lay is not None and lay.payload:
            out.append(bytes(lay.payload))
    return out


def test_every_service_maps_to_an_operation_class():
    assert {c for _n, c in SERVICES.values()} <= set(OP_CATEGORIES)
    for (group, svc), (name, category) in SERVICES.items():
        out = stream([(True, channel_tcp(service(group, svc), True))], codesys, dport=11740)
        op = of_kind(out, "operation")[0]
        assert (op.data["name"], op.data["category"], op.data["code"]) == (name, category, group << 8 | svc)
    other = of_kind(stream([(True, channel_tcp(service(0x08, 0x05), True))], codesys, dport=11740), "operation")
    assert other[0].data["category"] == "file" and other[0].data["name"] == "File transfer service 0x05"


def test_block_split_across_segments_and_several_blocks_in_one():
    a = channel_tcp(service(2, 0x05, tag(0x01, b"\x55" * 300)), True)
    b = channel_tcp(service(2, 0x10), True)
    out = stream([(True, a[:10]), (True, a[10:200]), (True, a[200:] + b)], codesys, dport=11740)
    assert [o.data["name"] for o in of_kind(out, "operation")] == ["Download", "Start"]


def test_signature_strict_on_other_ports():
    req = datagram(3, ns_request(), words=4)
    rep = _reply(LINUX)
    tcp_block = channel_tcp(service(2, 0x10), True)
    for p in (req, rep):
        assert registry.classify("udp", 1740, 1740, p) is codesys
        assert registry.classify("udp", 40000, 5555, p) is not codesys      # a bare datagram: own ports only
    assert registry.classify("tcp", 40000, 11740, tcp_block) is codesys
    assert registry.classify("tcp", 40000, 5555, tcp_block) is codesys      # block driver framing: any port
    assert registry.classify("tcp", 40000, 5555, tcp_block[:-1]) is not codesys
    bad_len = tcp_block[:4] + struct.pack("<I", len(tcp_block) + 4) + tcp_block[8:]
    assert not codesys.tcp_signature(bad_len)
    assert not codesys.tcp_signature(b"\x00\x01\x17\xe8" + struct.pack("<I", 16) + b"\x00" * 8)
    # other protocols on the CODESYS ports are not CODESYS, and CODESYS is not FINS or Modbus
    for p in (b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01", bytes.fromhex("0300001611e00000000100c1020100c2"),
              b"\xc5" + bytes(15), datagram(0x22, b"\0" * 8), datagram(3, struct.pack("<HHI", 0x1234, 4, 0))):
        assert not codesys.signature(p)
        assert registry.classify("udp", 40000, 1740, p) is not codesys
    assert not fins.signature(rep) and not fins.signature(tcp_block)


def _codesys_index() -> IntelIndex:
    idx = IntelIndex()
    for path in sorted(shared_path("vuln/csaf").glob("*/*.json")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "codesys" not in text.lower():
            continue
        doc = read_csaf(json.loads(text))
        for p in doc.products:
            idx.add_product(doc.id, p.product_id, p.vendor, p.product_name, p.full_name, p.version_text,
                            p.version_kind, p.model_numbers, p.cpe)
    return idx


def _advisories(idx: IntelIndex, ident: dict) -> set[str]:
    dev = DeviceIdentity.from_identity(ident)
    return {p.advisory_id.lower() for p in idx.candidates(dev) if idx.match_product(dev, p) is not None}


def test_discovered_runtime_meets_codesys_advisories(tmp_path):
    """The runtime that answers discovery as 'CODESYS Control for Linux SL' 3.5.14.0 from
    '3S - Smart Software Solutions GmbH' meets ICSA-19-255-05 (CODESYS Control for Linux
    < 3.5.15.0); at 3.5.15.0 it no longer does; a WAGO PFC200 firmware does not."""
    idx = _codesys_index()
    res = analyze([_write(tmp_path, discovery_frames())])
    ident = of_kind(res.observations, "identity", "codesys")[0].data
    assert "icsa-19-255-05" in _advisories(idx, ident)
    assert "icsa-19-255-05" not in _advisories(idx, dict(ident, firmware="3.5.15.0"))
    assert "icsa-19-255-05" in _advisories(idx, {"vendor": "CODESYS GmbH", "firmware": "3.5.12.0",
                                                  "product": "CODESYS Control for Raspberry Pi SL"})
    assert "icsa-19-255-05" not in _advisories(idx, {"vendor": "WAGO", "product": WAGO["device"],
                                                      "firmware": "5.15.4.0"})


def test_requests_to_broadcast_and_other_channel_messages_give_no_host_facts():
    req = datagram(3, ns_request(), words=4)
    assert codesys.decode(packet(req, l4="udp", sport=1740, dport=1740, dst="255.255.255.255")) == []
    keepalive = block(datagram(0x40, b"\x03\x00\x07\x00"))
    out = stream([(True, keepalive)], codesys, dport=11740)
    assert not of_kind(out, "operation") and not of_kind(out, "identity")
    frame = udp_frame(TOOL, PLC, 40000, 1740, req)
    assert frame


def test_many_short_segments_replayed_keep_the_stream(tmp_path):
    """Blocks cut into short segments (the generic short-payload routine may replay them): the
    engine primes the stream past replayed segments and says what the reference says."""
    from support.packets import tcp_conversation
    ex = [(True, channel_tcp(service(1, 0x02), True))]   # a whole block first: the flow is classified
    for i in range(150):
        b = channel_tcp(service(0x1B, 0x01, tag(0x01, struct.pack("<I", i % 3))), True)
        ex += [(True, b[k:k + 20]) for k in range(0, len(b), 20)]
    ex.append((True, channel_tcp(service(2, 0x11), True)))
    path = _write(tmp_path, tcp_conversation(TOOL, PLC, 11740, ex))
    res, ref = analyze([path]), analyze_reference([path])
    key = lambda o: (o.kind, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items()))))
    assert sorted(map(key, res.observations)) == sorted(map(key, ref.observations))
    names = [o.data["name"] for o in res.observations if o.kind == "operation" for _ in range(o.count)]
    assert names.count("Read variables") == 150 and names[-1] == "Stop"


def test_monitoring_polls_are_replayed_and_equal_the_reference(tmp_path):
    """An HMI polling Monitoring 2 Read over the block driver (and over UDP), with a write and a
    refused read among the polls: the engine replays the polls and says exactly what the
    reference decoder says."""
    from support.packets import tcp_conversation
    read = channel_tcp(service(0x1B, 0x01, tag(0x01, b"\x01\0\0\0") + tag(0x02, b"\x10\0\0\0")), True)
    value = channel_tcp(service(0x1B, 0x01, tag(0x40, b"\x2a\0"), reply=True), False)
    refused = channel_tcp(service(0x1B, 0x01, tag(0xFF7F, b"\x05\x00"), reply=True), False)
    ex = []
    for i in range(300):
        ex += [(True, read), (False, refused if i == 150 else value)]
        if i == 200:
            ex.append((True, channel_tcp(service(0x1B, 0x02, tag(0x03, b"\x01")), True)))
    frames = tcp_conversation(TOOL, PLC, 11740, ex)
    from support.codesys_frames import first_block
    udp_read = datagram(0x40, first_block(service(0x1B, 0x01, tag(0x01, b"\x02\0\0\0")), channel=3),
                        receiver=b"\x00\x14", sender=b"\x00\x05")
    frames += [(1.8e9 + i * 0.1, udp_frame(TOOL, PLC, 1741, 1740, udp_read)) for i in range(100)]
    path = _write(tmp_path, frames)
    got, ref = analyze([path]), analyze_reference([path])
    assert got.counters["routine_packets"] > 350
    key = lambda o: (o.kind, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items()))))
    assert sorted(map(key, got.observations)) == sorted(map(key, ref.observations))
    ops = {}
    for o in got.observations:
        if o.kind == "operation":
            ops[o.data["name"]] = ops.get(o.data["name"], 0) + o.count
    assert ops == {"Read variables": 400, "Write variables": 1}
    assert [(o.data["code"], o.src) for o in got.observations if o.kind == "error"] == [(5, PLC)]


def test_v2_identification_reads_as_the_published_nmap_run(tmp_path):
    """codesys-v2-discover's published run against a V2 runtime shows 'OS Name: Linux 3.16.0' and
    'Product Type: AIC-PLC-01'; the reply built from its offsets reads back as that, through the
    engine, on TCP 2455 and 1200."""
    from support.codesys_frames import V2_QUERY, v2_reply
    from support.packets import tcp_conversation
    frames = tcp_conversation(TOOL, PLC, 2455, [(True, V2_QUERY), (False, v2_reply())])
    frames += tcp_conversation(TOOL, "10.0.7.21", 1200, [(True, b"\xbb\xbb\x01\x00\x00\x01\x01"),
                                                         (False, v2_reply("VxWorks", "6.9", "PLC-X"))],
                               sport=40001, t0=1.7e9 + 5)
    res = analyze([_write(tmp_path, frames)])
    idents = {o.src: o.data for o in res.observations if o.kind == "identity" and o.proto == "codesys"}
    assert idents == {PLC: {"os": "Linux 3.16.0", "product": "AIC-PLC-01"},
                      "10.0.7.21": {"os": "VxWorks 6.9", "product": "PLC-X"}}
    ops = [(o.data["name"], o.data["category"], o.dst) for o in res.observations if o.kind == "operation"]
    assert ops == [("V2 identification", "diagnostic", PLC), ("V2 identification", "diagnostic", "10.0.7.21")]
    # V2 is claimed on its own ports only, and only for its identification exchange
    assert registry.classify("tcp", 40000, 2455, V2_QUERY) is codesys
    assert registry.classify("tcp", 40000, 5555, V2_QUERY) is not codesys
    assert registry.classify("tcp", 40000, 1200, b"\xbb\xbb\x02" + bytes(20)) is not codesys
    assert registry.classify("tcp", 40000, 1200, b"GET / HTTP/1.1\r\n\r\n") is not codesys
    assert not codesys.signature(v2_reply(product="\x01\x02"))


def test_refused_device_login_is_an_error_and_a_login_without_credentials_no_credential():
    refused = channel_tcp(service(1, 0x02, tag(0x82, tag(0x20, b"\x1b\x00") + tag(0x21, bytes(4))), reply=True),
                          False)
    ok = channel_tcp(service(1, 0x02, tag(0x82, tag(0x20, b"\x00\x00")), reply=True), False)
    bare = channel_tcp(service(1, 0x02, tag(0x22, b"\x01\0\0\0")), True)
    out = stream([(True, bare), (False, ok), (False, refused)], codesys, dport=11740)
    assert not of_kind(out, "credential")
    assert [(o.data["code"], o.data["function_name"]) for o in of_kind(out, "error")] == [(0x1B, "Device login")]


def test_assessment_puts_the_session_on_the_plc_change_timeline(tmp_path):
    """The full assessment on the written capture: download, start, stop and reset to the
    runtime are on the PLC change timeline (unauthorised: no engineering station is declared);
    the read is not; the findings include the controller's unauthorised program change."""
    from plantguard.assess import run_assessment
    res = analyze([_write(tmp_path, discovery_frames() + session_frames())])
    c = run_assessment(res, None, db=None)
    ops = {(r["station"], r["controller"], r["operation"], r["category"]) for r in c["plc_changes"]
           if r["protocol"] == "codesys"}
    assert ops == {(TOOL, PLC, "Download", "program"), (TOOL, PLC, "Start", "control"),
                   (TOOL, PLC, "Stop", "control"), (TOOL, PLC, "Reset", "control")}
    assert all(not r["verdict"]["authorised"] for r in c["plc_changes"] if r["protocol"] == "codesys")
    checks = {f["check"] for f in c["findings"] if f["status"] == "fail"}
    assert any(ch.startswith("plc.unauthorized") for ch in checks), checks
