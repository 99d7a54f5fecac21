"""Beckhoff ADS/AMS decoder against tshark's `ams` dissector on the ten ICS-Security-Tools
Beckhoff captures (a CX1020 on Windows CE 6.0 with TwinCAT 2.11 and an engineering PC adding a
route and browsing it), field by field: AMS header (NetIds, ports, command id, state flags, data
length, error code, invoke id), ADS request fields (index group, offset, lengths), results and
ReadDeviceInfo replies. tshark 4.0 does not dissect the UDP 48899 discovery service: there the
datagram bytes (tshark's `data.data`) at the documented offsets are the oracle."""
from __future__ import annotations

import json
import struct
from collections import Counter

import pytest
from conftest import shared_path
from support.baselines import Score
from support.decode import deep_observations, frames, of_kind, packet, replay, stream
from support.peers import tshark_fields

from plantguard.capture.engine import analyze
from plantguard.knowledge.creds import match_login
from plantguard.knowledge.csaf import read_csaf
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
from plantguard.model import OP_CATEGORIES
from plantguard.protocols import ads, registry
from plantguard.protocols.ads import discovery

DIR = "pcaps/ICS-Security-Tools/beckoff"
CAPTURES = ["addroute.pcapng", "addroute1.pcapng", "addrouteuse444444444.pcapng", "beckoffaddroute.pcapng",
            "beckoffiplink.pcapng", "beckoffiplinktc.pcapng", "beckoffiplinktc2.pcapng", "beckoffiplinktc3.pcapng",
            "beckofflink.pcapng", "invokeid12.pcapng"]
HEADER_FIELDS = ["ams.targetnetid", "ams.targetport", "ams.sendernetid", "ams.senderport", "ams.cmdid",
                 "ams.stateflags", "ams.cbdata", "ams.errorcode", "ams.invokeid"]
ADS_FIELDS = ["ams.ads_indexgroup", "ams.ads_indexoffset", "ams.ads_cblength", "ams.ads_cbreadlength",
              "ams.ads_cbwritelength", "ams.adsresult", "ams.ads_devicename", "ams.ads_versionversion",
              "ams.ads_versionrevision", "ams.ads_versionbuild", "ams.ads_state", "ams.ads_devicestate"]


def _int(v: str) -> int:
    return int(v, 0)


def _frames(name: str) -> list[tuple]:
    _obs, seen = replay(shared_path(f"{DIR}/{name}"), ads, tap="_observe")
    return seen


@pytest.mark.parametrize("name", CAPTURES)
def test_every_ams_frame_matches_tshark(name):
    """Every AMS frame tshark dissects is one the decoder parses, at the same frame, with the
    same header fields; the ADS fields tshark decodes (request index group / offset / lengths,
    response result, ReadDeviceInfo name and version, ReadState states) agree too."""
    path = shared_path(f"{DIR}/{name}")
    rows = tshark_fields(path, "ams", HEADER_FIELDS + ADS_FIELDS)
    by_frame = {r["frame"]: r for r in rows}
    ours = _frames(name)
    assert Counter(s[0] for s in ours) == Counter({r["frame"]: len(r["ams.cmdid"]) for r in rows})
    score = Score()
    index: Counter = Counter()
    for frame, _fc, _src, _sport, _dst, _dport, f in ours:
        r = by_frame[frame]
        i = index[frame]
        index[frame] += 1
        where = f"frame {frame}"
        for ours_v, col in ((f.target_net, "ams.targetnetid"), (f.source_net, "ams.sendernetid")):
            score.check(f"{where} {col}", ours_v, r[col][i])
        for ours_v, col in ((f.target_port, "ams.targetport"), (f.source_port, "ams.senderport"),
                            (f.command, "ams.cmdid"), (f.flags, "ams.stateflags"), (f.data_length, "ams.cbdata"),
                            (f.error, "ams.errorcode"), (f.invoke, "ams.invokeid")):
            score.check(f"{where} {col}", ours_v, _int(r[col][i]))
        _check_ads(score, where, f, r)
    score.assert_agrees(minimum=1.0, at_least=9 * len(ours))


def _check_ads(score: Score, where: str, f, r: dict) -> None:
    """The ADS fields of one frame (captures carry one AMS frame per TCP segment, so tshark's
    per-frame lists have one value where it decodes the field)."""
    d = f.data
    first = lambda col: r[col][0] if r[col] else None
    if not f.response and f.command in (2, 3, 6, 9) and len(d) >= 12:
        group, offset, length = struct.unpack_from("<III", d, 0)
        score.check(f"{where} index group", group, _int(first("ams.ads_indexgroup")))
        score.check(f"{where} index offset", offset, _int(first("ams.ads_indexoffset")))
        if f.command == 9:
            score.check(f"{where} read length", length, _int(first("ams.ads_cbreadlength")))
            score.check(f"{where} write length", struct.unpack_from("<I", d, 12)[0],
                        _int(first("ams.ads_cbwritelength")))
        else:
            score.check(f"{where} length", length, _int(first("ams.ads_cblength")))
    if f.response and first("ams.adsresult") is not None and len(d) >= 4:
        score.check(f"{where} result", struct.unpack_from("<I", d, 0)[0], _int(first("ams.adsresult")))
    if f.response and f.command == 1 and first("ams.ads_devicename") is not None:
        ident = ads._identity(f)
        version = ".".join(first(c) for c in ("ams.ads_versionversion", "ams.ads_versionrevision",
                                              "ams.ads_versionbuild"))
        score.check(f"{where} device", ident["software"].split(" (")[0],
                    f"{first('ams.ads_devicename').strip()} {version}")
    if f.response and f.command == 4 and first("ams.ads_state") is not None:
        score.check(f"{where} ADS state", struct.unpack_from("<H", d, 4)[0], _int(first("ams.ads_state")))
        score.check(f"{where} device state", struct.unpack_from("<H", d, 6)[0], _int(first("ams.ads_devicestate")))


def test_operations_and_errors_of_a_route_add_session():
    """beckoffaddroute: every request an operation of its command (tshark's counts), the
    registry lookups through ReadWrite are reads with their key in the detail, every AMS error
    code and non-zero ADS result an error."""
    path = shared_path(f"{DIR}/beckoffaddroute.pcapng")
    rows = tshark_fields(path, "ams", HEADER_FIELDS + ["ams.adsresult"])
    obs = [o for o in deep_observations(path) if o.proto == "ads"]
    want = Counter(_int(r["ams.cmdid"][0]) for r in rows if not _int(r["ams.stateflags"][0]) & 1)
    tcp_ops = [o for o in of_kind(obs, "operation") if isinstance(o.data["code"], int)]
    assert Counter(o.data["code"] for o in tcp_ops) == want
    assert all(o.data["category"] in OP_CATEGORIES for o in tcp_ops)
    # ReadState / ReadDeviceInfo are diagnostics (device state, name, version), the rest reads
    assert {(o.data["code"], o.data["category"]) for o in tcp_ops} == {
        (1, "diagnostic"), (4, "diagnostic"), (2, "read"), (6, "read"), (7, "read"), (9, "read")}
    registry_reads = [o.data["detail"] for o in tcp_ops if o.data["code"] == 9]
    assert any("key HKLM\\Software\\Microsoft\\Windows NT\\CurrentVersion\\WinLogon value AutoAdminLogon" in d
               for d in registry_reads)
    assert all("index group 0xC8 (registry HKEY_LOCAL_MACHINE)" in d for d in registry_reads)
    # tshark decodes no result in Read / ReadWrite replies of 8 or 9 data bytes: there the result
    # is read from the frame bytes tshark gives (offset 38, after the AMS/TCP and AMS headers)
    raw = {r["frame"]: bytes.fromhex(r["tcp.payload"][0]) for r in tshark_fields(path, "ams", ["tcp.payload"])}
    want_err: Counter = Counter()
    for r in rows:
        if not _int(r["ams.stateflags"][0]) & 1:
            continue
        code = _int(r["ams.errorcode"][0])
        if r["ams.adsresult"]:
            assert struct.unpack_from("<I", raw[r["frame"]], 38)[0] == _int(r["ams.adsresult"][0])
        if not code and len(raw[r["frame"]]) >= 42:
            code = struct.unpack_from("<I", raw[r["frame"]], 38)[0]
        if code:
            want_err[code] += 1
    assert Counter(o.data["code"] for o in of_kind(obs, "error")) == want_err
    assert want_err == {6: 2, 0x703: 4, 2: 3}   # TARGET PORT NOT FOUND, INVALID OFFSET, registry value missing


def test_discovery_bytes_and_identity():
    """The discovery reply's fields at their documented offsets (tshark shows the datagram as
    data) give the identity; its TwinCAT version equals what tshark decodes from the system
    service's ReadDeviceInfo reply, and the target description names the CX model."""
    path = shared_path(f"{DIR}/beckoffaddroute.pcapng")
    data = {r["frame"]: bytes.fromhex(r["data.data"][0])
            for r in tshark_fields(path, "udp.port == 48899", ["data.data"]) if r["data.data"]}
    assert len(data) == 6
    obs = [o for o in deep_observations(path) if o.proto == "ads"]
    ids = of_kind(obs, "identity")
    disc = [o for o in ids if o.l4 == "udp"]
    assert len(disc) == 1
    raw = data[disc[0].frame]
    assert struct.unpack_from("<I", raw, 0)[0] == discovery.MAGIC
    assert struct.unpack_from("<I", raw, 8)[0] == 0x80000001
    assert disc[0].data["ams_net_id"] == ".".join(str(b) for b in raw[12:18]) == "5.13.117.96.1.1"
    assert raw[20:24] == b"\x03\x00\x00\x00" and raw[24:28] == b"\x05\x00\x0a\x00" and raw[28:38] == b"CX_0D7560\x00"
    assert disc[0].data == {"vendor": "Beckhoff", "ams_net_id": "5.13.117.96.1.1", "name": "CX_0D7560",
                            "product": "TwinCAT", "firmware": "2.11.2228", "software": "TwinCAT 2.11.2228",
                            "os": "Windows CE 6.0"}
    system = tshark_fields(path, "ams.ads_devicename == \"TwinCAT CE\"",
                           ["ams.ads_versionversion", "ams.ads_versionrevision", "ams.ads_versionbuild"])
    version = ".".join(system[0][c][0] for c in ("ams.ads_versionversion", "ams.ads_versionrevision",
                                                 "ams.ads_versionbuild"))
    assert version == disc[0].data["firmware"]
    models = {o.data.get("model") for o in ids if o.data.get("model")}
    assert models == {"CX1020-CE"}
    assert {o.data.get("ams_net_id") for o in ids} == {"5.13.117.96.1.1"}


def test_add_route_is_config_with_a_cleartext_credential():
    """The add-route request (tags 12 route name, 7 NetId, 13 user, 2 password, 5 address) is a
    config operation of the CX and a cleartext credential the credential checks read; its reply
    (tag 1 status 0) is no error."""
    path = shared_path(f"{DIR}/addroute.pcapng")
    obs = [o for o in deep_observations(path) if o.proto == "ads"]
    route = [o for o in of_kind(obs, "operation") if o.data["code"] == "udp/6"]
    assert [(o.data["category"], o.src, o.dst, o.data["detail"]) for o in route] == [
        ("config", "192.168.1.99", "192.168.1.8",
         "route SHENHUAJ6-PC AMS NetId 192.168.1.199.1.1 address 192.168.1.99")]
    cred = of_kind(obs, "credential")
    assert [(o.src, o.dst, o.dport, o.data) for o in cred] == [
        ("192.168.1.99", "192.168.1.8", 48899, {"user": "Administrator", "password": "1", "secret_type": "password",
                                                "cleartext": True, "result": None})]
    assert not of_kind(obs, "error")
    # the host that searches and adds routes is TwinCAT engineering (role hint -> fingerprint)
    roles = {(o.src, o.data["role"]) for o in of_kind(obs, "role")}
    assert roles == {("192.168.1.99", "twincat-engineering")}
    # the default list has no Beckhoff pair (Administrator / 1 is the CX images' default): the
    # check judges the login, it just finds no documented default for it
    assert match_login("Administrator", "1", "ads") == []


def _beckhoff_index() -> IntelIndex:
    idx = IntelIndex()
    for path in sorted(shared_path("vuln/csaf").glob("*/*.json")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "Beckhoff" not in text:
            continue
        doc = read_csaf(json.loads(text))
        for p in doc.products:
            idx.add_product(doc.id, p.product_id, p.vendor, p.product_name, p.full_name, p.version_text,
                            p.version_kind, p.model_numbers, p.cpe)
    return idx


def _advisories(idx: IntelIndex, ident: dict) -> set[str]:
    dev = DeviceIdentity.from_identity(ident)
    return {p.advisory_id.lower() for p in idx.candidates(dev) if idx.match_product(dev, p) is not None}


def test_identity_meets_the_twincat_advisory():
    """The CX's TwinCAT 2.11.2228 (discovery reply) is inside ICSA-18-081-02's "TwinCAT 3.1 Build
    4022.4 or prior"; a TwinCAT 3.1.4024 is not, nor is a Siemens CPU."""
    idx = _beckhoff_index()
    obs = deep_observations(shared_path(f"{DIR}/addroute.pcapng"))
    ident = of_kind(obs, "identity", "ads")[0].data
    assert "icsa-18-081-02" in _advisories(idx, ident)
    assert "icsa-18-081-02" not in _advisories(idx, dict(ident, firmware="3.1.4024.12"))
    assert not _advisories(idx, {"vendor": "Siemens", "model": "CPU 315-2 PN/DP", "firmware": "3.2"})


def test_signature_on_other_ports_and_negatives():
    """AMS/TCP frames classify on any port; discovery only on 48899; Modbus, S7, FINS/TCP and
    random bytes nowhere, not even on 48898."""
    path = shared_path(f"{DIR}/beckofflink.pcapng")
    payloads = []
    for _f, _t, lay in frames(path):
        if lay.l4 == "tcp" and 48898 in (lay.sport, lay.dport) and lay.payload:
            payloads.append(bytes(lay.payload))
    assert len(payloads) > 50
    for p in payloads:
        assert registry.classify("tcp", 40000, 5555, p) is ads
    disc = next(bytes(lay.payload) for _f, _t, lay in frames(path) if lay.l4 == "udp" and lay.dport == 48899)
    assert registry.classify("udp", 48899, 48899, disc) is ads
    assert registry.classify("udp", 40000, 5555, disc) is not ads
    modbus = b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01"
    s7 = bytes.fromhex("0300001611e00000000100c1020100c2020102c0010a")
    fins_tcp = b"FINS" + (20).to_bytes(4, "big") + b"\x00\x00\x00\x02" + bytes(4) + bytes(12)
    for p in (modbus, s7, fins_tcp, b"\x00" * 38, bytes(range(64)), b"GET / HTTP/1.1\r\n\r\n"):
        assert not ads.strict_signature(p)
        assert registry.classify("tcp", 40000, 5555, p) is not ads
    for p in (modbus, s7, fins_tcp, bytes(range(64))):
        assert not ads.signature(p)
    # a real frame with one byte changed in the length no longer classifies elsewhere
    bad = bytearray(payloads[0])
    bad[2] ^= 1
    assert not ads.strict_signature(bytes(bad))


def _ams(command: int, data: bytes, invoke: int = 1, response: bool = False, port: int = 851,
         error: int = 0) -> bytes:
    """An AMS/TCP frame per the AMS header layout."""
    head = (bytes([5, 13, 117, 96, 1, 1]) + struct.pack("<H", port if not response else 32905)
            + bytes([192, 168, 1, 99, 1, 1]) + struct.pack("<H", 32905 if not response else port)
            + struct.pack("<HHIII", command, 0x0005 if response else 0x0004, len(data), error, invoke))
    return struct.pack("<HI", 0, len(head) + len(data)) + head + data


def test_write_control_write_and_readwrite_by_hand():
    """WriteControl STOP and RUN are control operations named by state, CONFIG a config one;
    Write is write; ReadWrite of a symbol handle by name is a read naming the symbol, a sum write
    a write; a Write split across two segments is reassembled."""
    stop = _ams(5, struct.pack("<HHI", 6, 0, 0))
    run = _ams(5, struct.pack("<HHI", 5, 0, 0), invoke=2)
    config = _ams(5, struct.pack("<HHI", 15, 0, 0), invoke=3)
    write = _ams(3, struct.pack("<III", 0x4020, 0, 4) + b"\x01\x02\x03\x04", invoke=4)
    handle = _ams(9, struct.pack("<IIII", 0xF003, 0, 4, 11) + b"MAIN.nStep\x00", invoke=5)
    sumw = _ams(9, struct.pack("<IIII", 0xF081, 2, 8, 28) + bytes(28), invoke=6)
    out = stream([(True, stop + run + config), (True, write[:20]), (True, write[20:] + handle + sumw)], ads,
                 dport=48898)
    ops = [(o.data["name"], o.data["category"]) for o in of_kind(out, "operation")]
    assert ops == [("ADS Write Control STOP", "control"), ("ADS Write Control RUN", "control"),
                   ("ADS Write Control CONFIG", "config"), ("ADS Write", "write"), ("ADS Read Write", "read"),
                   ("ADS Read Write", "write")]
    details = [o.data["detail"] for o in of_kind(out, "operation")]
    assert details[3] == "port 851 index group 0x4020 (PLC memory %M) offset 0x0 length 4"
    assert details[4].endswith("symbol MAIN.nStep")
    assert "ADS state STOP (6)" in details[0]
    # on the system service (AMS port 10000) a Write starts a process, sets the registry, writes a file
    sysw = [_ams(3, struct.pack("<III", g, 0, 4) + bytes(4), port=10000, invoke=10 + i)
            for i, g in enumerate((500, 200, 123, 600))]
    sysw.append(_ams(9, struct.pack("<IIII", 120, 0, 4, 12) + b"C:\\boot.ini\x00", port=10000, invoke=20))
    cats = [o.data["category"] for o in of_kind(stream([(True, b"".join(sysw))], ads, dport=48898), "operation")]
    assert cats == ["control", "config", "file", "config", "file"]
    # a Write refused by the PLC (ADS result 0x704 INVALID ACCESS) is an error of the PLC
    refused = _ams(3, struct.pack("<I", 0x704), response=True)
    err = [o for o in ads.decode(packet(refused, sport=48898, dport=40000, from_client=False)) if o.kind == "error"]
    assert [(o.data["code"], o.data["name"], o.data["function"], o.subject) for o in err] == [
        (0x704, "INVALID ACCESS", 3, "src")]


def _obs_key(o) -> tuple:
    return o.kind, o.proto, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items())))


def test_polling_is_replayed_and_equals_the_reference(tmp_path):
    """Read and ReadWrite polling with a refused read and a STOP among the polls: the engine
    replays the polls and says exactly what the reference decoder says."""
    from support.packets import pcap_bytes, tcp_conversation

    from plantguard.capture.reference import analyze_reference
    exchanges = []
    for i in range(300):
        exchanges.append((True, _ams(2, struct.pack("<III", 0x4020, 8, 4), invoke=i)))
        result = 0x703 if i == 150 else 0
        exchanges.append((False, _ams(2, struct.pack("<II", result, 4) + struct.pack("<I", i), invoke=i,
                                      response=True)))
        exchanges.append((True, _ams(9, struct.pack("<IIII", 0xF080, 2, 16, 12) + struct.pack("<III", 0x4020, 0, 4),
                                     invoke=i)))
        exchanges.append((False, _ams(9, struct.pack("<II", 0, 8) + struct.pack("<II", 0, i), invoke=i,
                                      response=True)))
        if i == 200:
            exchanges.append((True, _ams(5, struct.pack("<HHI", 6, 0, 0), invoke=i)))
    frames = tcp_conversation("10.0.0.3", "10.0.0.2", 48898, exchanges, t0=1.7e9)
    path = tmp_path / "ads_poll.pcap"
    path.write_bytes(pcap_bytes(frames))
    got, ref = analyze([path]), analyze_reference([path])
    assert got.counters["routine_packets"] > 900
    assert sorted(map(_obs_key, got.observations)) == sorted(map(_obs_key, ref.observations))
    ops = {(o.data["name"], o.data["category"]) for o in got.observations if o.kind == "operation"}
    assert ops == {("ADS Read", "read"), ("ADS Read Write", "read"), ("ADS Write Control STOP", "control")}
    errors = [o for o in got.observations if o.kind == "error"]
    assert [(o.data["code"], o.src) for o in errors] == [(0x703, "10.0.0.2")]


def test_real_polling_capture_is_replayed_and_roles_hold():
    """beckoffiplink: ~1000 ReadState / Read polls of the CX; the engine replays most of them. The
    CX is the plc (a TwinCAT runtime), the PC polling its state online is the engineering station."""
    from plantguard.inventory.build import build_assets
    got = analyze([shared_path(f"{DIR}/beckoffiplink.pcapng")])
    assert got.counters["routine_packets"] > 3000
    roles = {a.ip: a.role for a in build_assets(got, None) if a.ip}
    assert roles["192.168.1.8"] == "plc" and roles["192.168.1.99"] == "engineering-workstation"


def test_credential_checks_read_the_add_route_login():
    """credentials.cleartext fails on the add-route login; credentials.default runs on it (it is
    a login with a visible secret) and finds no documented default."""
    from support.checks import fails, run
    result = analyze([shared_path(f"{DIR}/addroute.pcapng")])
    clear, _reason = run("credentials.cleartext", result)
    titles = [f.title for f in fails(clear)]
    assert any("ADS credentials sent in clear text from 192.168.1.99" in t and "Administrator" in t for t in titles)
    default, reason = run("credentials.default", result)
    assert reason is None and not fails(default)
