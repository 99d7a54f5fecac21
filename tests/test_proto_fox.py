"""Niagara Fox decoder on the shared fox_info.pcap (a Workbench-style hello to a JACE station on
TCP 1911, the station's hello and its digest challenge). Oracles: nmap's fox-info NSE script,
run against a local TCP server that answers with the station's bytes from the capture (read
with plantguard's own capture reader), field by field; tshark's frame payloads (it has no Fox
dissector), whose `key=s:value` lines must be exactly the string fields we read."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest
from conftest import shared_path
from support.baselines import Score
from support.decode import deep_observations, frames, of_kind, packet, stream
from support.peers import tshark_fields

from plantguard.capture.engine import analyze
from plantguard.inventory.build import build_assets
from plantguard.model import OP_CATEGORIES
from plantguard.protocols import fox, registry, tls

PCAP = "pcaps/ICS-Security-Tools/fox/fox_info.pcap"
STATION, WORKBENCH = "106.68.88.119", "10.1.3.4"
# nmap fox-info's output keys -> the identity key that carries the same value
NMAP_KEYS = {"fox.version": "fox_version", "hostName": "host_name", "hostAddress": "host_address",
             "app.version": "firmware", "vm.name": "vm", "vm.version": "vm_version", "os.name": "os",
             "timeZone": "time_zone", "hostId": "host_id", "vmUuid": "vm_uuid", "brandId": "brand_id"}


def _payloads() -> list[tuple[int, bool, bytes]]:
    """(frame, from the client, payload) of the capture's data segments, by plantguard's reader."""
    return [(f, lay.dport == fox.FOX_PORT, bytes(lay.payload))
            for f, _ts, lay in frames(shared_path(PCAP)) if lay.payload]


def _identity(obs, ip: str) -> dict:
    (ident,) = [o.data for o in of_kind(obs, "identity", "fox") if o.src == ip]
    return ident


# --- the capture ------------------------------------------------------------------------------

def test_capture_frames_parse_whole():
    got = []
    for frame, from_client, payload in _payloads():
        assert registry.classify("tcp", 42167, 1911, payload) is fox
        assert fox.frame_len(payload, 0) == len(payload)
        f = fox.parse_frame(payload)
        got.append((frame, from_client, f.kind, f.seq, f.reply, f.channel, f.command, len(f.fields)))
    assert got == [(4, True, "a", 1, -1, "fox", "hello", 15), (6, False, "a", 0, -1, "fox", "hello", 17),
                   (9, False, "a", 1, -1, "fox", "challenge", 2)]
    blobs = {k: v for f in map(fox.parse_frame, [p for *_x, p in _payloads()]) for k, t, v in f.fields
             if t in ("b", "o")}
    assert blobs == {"sysInfo": ("bog", 61), "nonce": 44}


def test_string_fields_are_the_lines_tshark_shows():
    """tshark has no Fox dissector: its raw TCP payload, split into lines, is the second opinion;
    every `key=s:value` line outside the counted blobs is one string field of ours, in order."""
    rows = tshark_fields(shared_path(PCAP), "tcp.len > 0", ["tcp.payload"])
    assert [r["frame"] for r in rows] == [4, 6, 9]
    score = Score()
    for r in rows:
        text = bytes.fromhex(r["tcp.payload"][0].replace(":", ""))
        theirs = [(k.decode(), v.decode()) for k, v in re.findall(rb"\n([\w.]+)=s:([^\n]*)", text)]
        ours = [(k, v) for k, t, v in fox.parse_frame(text).fields if t == "s"]
        score.check(f"frame {r['frame']} string count", len(ours), len(theirs))
        for i, (o, t) in enumerate(zip(ours, theirs)):
            score.check(f"frame {r['frame']} field {i}", o, t)
    score.assert_agrees(minimum=1.0, at_least=30)


def test_station_and_workbench_identity():
    obs = deep_observations(shared_path(PCAP))
    station = _identity(obs, STATION)
    assert station == {"vendor": "Tridium", "product": "Niagara Station", "firmware": "3.5.41.1",
                       "name": "Legion_HQ_V4", "host_name": "192.168.2.15", "host_address": "192.168.2.15",
                       "os": "QNX", "os_version": "6.3.2", "vm": "J9", "vm_version": "2.3",
                       "host_id": "Qnx-NPM6-0000-1490-C30C", "vm_uuid": "11e4d864-cd0e-664a-0000-00000000b83b",
                       "brand_id": "vykon", "fox_version": "1.0", "time_zone": "Australia/Perth"}
    bench = _identity(obs, WORKBENCH)
    assert bench["product"] == "Niagara Workbench" and bench["firmware"] == "3.7.44"
    assert bench["role_hint"] == "engineering-workstation" and bench["os"] == "Windows XP"
    assert bench["host_name"] == "xpvm-0omdc01xmy" and "name" not in bench
    services = [(o.src, o.subject, o.data) for o in of_kind(obs, "service", "fox")]
    assert services == [(WORKBENCH, "dst", {"name": "fox"}),
                        (STATION, "src", {"name": "fox", "software": "Niagara Station 3.5.41.1",
                                          "protocol_version": "1.0"}),
                        (STATION, "src", {"name": "fox", "auth_scheme": "digest-md5"})]
    ops = [(o.src, o.dst, o.data["category"], o.data["name"]) for o in of_kind(obs, "operation", "fox")]
    assert ops == [(WORKBENCH, STATION, "diagnostic", "Hello")]
    assert not of_kind(obs, "credential") and not of_kind(obs, "error")


def test_inventory_names_the_station_a_gateway_and_the_workbench_an_engineering_workstation():
    assets = {a.ip: a for a in build_assets(analyze([shared_path(PCAP)]), None, [])}
    st, wb = assets[STATION], assets[WORKBENCH]
    assert st.role == "gateway" and st.identity["vendor"] == "Tridium" and st.identity["firmware"] == "3.5.41.1"
    assert st.identity_sources["firmware"]["proto"] == "fox" and st.identity_sources["firmware"]["frame"] == 6
    svc = st.services[("tcp", 1911)]
    assert svc.name == "fox" and svc.banner == "Niagara Station 3.5.41.1"
    assert wb.role == "engineering-workstation"
    # the addresses the hellos state (behind NAT) are no devices of their own
    assert "192.168.2.15" not in assets and "192.168.1.125" not in assets


def test_station_vendor_folds_with_advisory_and_bacnet_spellings():
    """Advisories name "Tridium", BACnet vendor id 36 is "Tridium Inc.", the hello's brand id is
    "vykon": one company for matching."""
    from plantguard.knowledge.vendors import vendor_key
    station = _identity(deep_observations(shared_path(PCAP)), STATION)
    assert vendor_key(station["vendor"]) == vendor_key("Tridium Inc.") == vendor_key(station["brand_id"]) \
        == "tridium"
    assert vendor_key("Honeywell") != "tridium"


def test_no_tridium_advisory_in_the_csaf_sample():
    """The OT index lists Tridium Niagara advisories (ICSA-18-191-03, -18-333-02, -19-262-01,
    -20-224-03) but the sample holds none of their documents: there is nothing to match yet. When
    one arrives this fails, and the capture's station (Tridium, Niagara Station 3.5.41.1) must be
    shown to meet it."""
    root = shared_path("vuln/csaf")
    index = (root / "csaf_ot_index.csv").read_text(encoding="utf-8", errors="replace")
    assert "Tridium" in index
    docs = [p for p in root.glob("*/*.json")
            if re.search(r"tridium|niagara", p.read_text(encoding="utf-8", errors="replace"), re.IGNORECASE)]
    assert docs == []


# --- nmap fox-info, the real counterpart ------------------------------------------------------

class _Station:
    """A TCP server on 127.0.0.1 (a free port) that answers each connection's first bytes with
    the capture's station hello and keeps what each client sent."""

    def __init__(self, reply: bytes):
        self.reply, self.received = reply, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    got = conn.recv(4096)
                    if got:
                        self.received.append(got)
                        conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def _nmap_fox_info(port: int) -> dict[str, str]:
    if shutil.which("nmap") is None:
        pytest.skip("needs nmap") if not os.environ.get("CI") else pytest.fail("needs nmap in CI")
    # "+fox-info": run the script whatever the port (its portrule names 1911 and 4911 only)
    r = subprocess.run(["nmap", "-n", "-Pn", "-sT", "-p", str(port), "--script", "+fox-info",
                        "--script-timeout", "30s", "127.0.0.1", "-oX", "-"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    found = ET.fromstring(r.stdout).find(".//script[@id='fox-info']")
    assert found is not None, "nmap fox-info gave no output"
    return {e.get("key"): e.text for e in found.findall("elem")}


def test_identity_matches_nmap_fox_info():
    (reply,) = [p for f, from_client, p in _payloads() if not from_client and b"fox hello" in p]
    server = _Station(reply)
    try:
        theirs = _nmap_fox_info(server.port)
    finally:
        server.close()
    ours = _identity(deep_observations(shared_path(PCAP)), STATION)
    assert set(theirs) == set(NMAP_KEYS) | {"app.name"}, theirs
    score = Score()
    for key, value in theirs.items():
        if key == "app.name":
            score.check(key, ours["product"], f"Niagara {value}")
        else:
            score.check(key, ours[NMAP_KEYS[key]], value)
    score.assert_agrees(minimum=1.0, at_least=12)
    # nmap's own probe is a Fox client hello to us: an identification operation, no identity
    probe = next(p for p in server.received if p.startswith(b"fox "))
    assert registry.classify("tcp", 40000, server.port, probe) is fox
    out = fox.decode(packet(probe, dport=server.port))
    assert [(o.kind, o.data.get("name")) for o in out] == [("service", "fox"), ("operation", "Hello")]


# --- signature and port ----------------------------------------------------------------------

def test_signature_any_port_and_negatives():
    hello = next(p for f, c, p in _payloads() if f == 6)
    assert registry.classify("tcp", 5555, 40000, hello) is fox        # a station on another port
    for junk in (b"GET / HTTP/1.1\r\nHost: jace\r\n\r\n", b"HTTP/1.1 200 OK\r\nServer: Niagara Web Server/3.5\r\n\r\n",
                 b"fox and hounds\n", b"fox a one -1 fox hello\n{\n", b"fox a 1 -1 fox\n{\n",
                 b"FOX A 1 -1 FOX HELLO\n{\n", b"foxs a 1 -1 fox hello\n{\n", b"fox a 1 -1 fox hello", b"\x00" * 40):
        assert not fox.signature(junk), junk
        assert registry.classify("tcp", 40000, 1911, junk) is not fox, junk
    # random text on 1911 is not Fox, and yields nothing
    assert fox.decode(packet(b"hello station, are you there?\n", dport=1911)) == []


def test_foxs_on_4911_is_tls_not_fox():
    """Fox over TLS (foxs, 4911): a ClientHello there is TLS, which reads its certificates."""
    hello = bytes.fromhex("16030100") + bytes([0x31]) + bytes.fromhex("0100002d0303") + bytes(32) + \
        bytes.fromhex("000002c02f0100000200")
    assert tls.signature(hello)
    assert registry.classify("tcp", 40000, 4911, hello) is tls
    assert not fox.signature(hello)


# --- framing, hostile input, what the capture does not show -----------------------------------

def test_hello_across_segments_and_two_frames_in_one():
    """The station hello cut inside its sysInfo bog, then a frame whose blob holds the
    terminator text: counted blobs are skipped by count, never searched."""
    hello = next(p for f, c, p in _payloads() if f == 6)
    cut = hello.index(b"<bog") + 10
    tricky = b"fox a 2 -1 fox challenge\n{\nmethod=s:digest-md5\nnonce=b:8[};;\n}\n\x00\x01]\n};;\n"
    assert fox.frame_len(tricky, 0) == len(tricky)
    out = stream([(False, hello[:30]), (False, hello[30:cut]), (False, hello[cut:] + tricky)], fox, dport=1911)
    assert [o.kind for o in out] == ["service", "identity", "service"]
    assert out[0].data["software"] == "Niagara Station 3.5.41.1"
    assert out[1].data["name"] == "Legion_HQ_V4" and out[2].data["auth_scheme"] == "digest-md5"


def test_login_user_error_and_other_verbs():
    """Built per the framing: a client frame naming a user is a credential (the name in clear, the
    digest not a readable password); an error frame and a hello that reports fatal are errors; a
    verb the capture does not show is named, category other."""
    login = b"fox a 2 -1 fox authenticate\n{\nusername=s:jace-admin\nresponse=b:3[abc]\n};;\n"
    unknown = b"fox a 3 -1 station nav\n{\nord=s:station:|slot:/Drivers\n};;\n"
    fatal = b"fox a 0 -1 fox hello\n{\nfox.version=s:1.0\nfatal=s:unsupported fox version\n};;\n"
    err = b"fox e 5 3 fox rejected\n{\nreason=s:bad credentials\n};;\n"
    out = stream([(True, login), (True, unknown), (False, fatal), (False, err)], fox, dport=1911)
    (cred,) = of_kind(out, "credential")
    assert cred.data == {"user": "jace-admin", "password": None, "secret_type": "digest", "cleartext": False,
                         "result": None}
    ops = [(o.data["name"], o.data["category"], o.data["code"]) for o in of_kind(out, "operation")]
    assert ops == [("fox authenticate", "other", "fox.authenticate"), ("station nav", "other", "station.nav")]
    errors = [(o.src, o.data["name"]) for o in of_kind(out, "error")]
    assert errors == [("10.0.0.2", "unsupported fox version"), ("10.0.0.2", "Fox error frame: fox rejected")]
    assert all(o.data["category"] in OP_CATEGORIES for o in of_kind(out, "operation"))


def test_hostile_text_and_sizes_are_bounded():
    """Device text stays printable and short; a blob claiming more than MAX_FRAME, a header
    without end and an endless field line are dropped without buffering past the cap."""
    evil = (b"fox a 0 -1 fox hello\n{\napp.name=s:" + b"<script>\x1b[31m" + b"A" * 1000 +
            b"\nstation.name=s:\x00\x07bell\n};;\n")
    out = fox.decode(packet(evil, sport=1911, dport=40000, from_client=False))
    ident = of_kind(out, "identity")[0].data
    assert len(ident["product"]) <= 8 + fox.MAX_TEXT and "\x1b" not in ident["product"]
    assert ident["name"] == "bell"
    assert fox.frame_len(b"fox a 0 -1 fox hello\n{\nx=b:999999999[", 0) == fox.BAD
    assert fox.frame_len(b"fox " + b"a" * 500, 0) == fox.BAD
    assert fox.frame_len(b"fox a 0 -1 fox hello\n{\nk=s:" + b"x" * (fox.MAX_LINE + 10), 0) == fox.BAD
    assert fox.frame_len(b"fox a 0 -1 fox hello\n{\nk=s:abc", 0) == fox.NEED_MORE
    state: dict = {}
    seq, held = 1, 0
    line = b"k=s:" + b"x" * 1000 + b"\n"
    for i in range(40):     # one frame that never ends, 30 KB a segment
        chunk = (b"fox a 0 -1 fox hello\n{\n" if i == 0 else b"") + line * 30
        fox.decode(packet(chunk, state=state, seq=seq, dport=1911))
        seq += len(chunk)
        held = max(held, len(state["_c2s"].pending))
        assert len(state["_c2s"].pending) <= fox.MAX_FRAME
    assert held > 0


def test_nested_message_fields_are_not_the_frames():
    """An `m:` value opens a nested message closed by its own `}` line; its fields (a user
    name inside it too) are not the frame's, and the frame still ends at its `};;`."""
    frame = (b"fox a 4 -1 fox hello\n{\napp.name=s:Station\nextra=m:{\nusername=s:inner\n"
             b"deeper=m:{\nx=i:1\n}\n}\napp.version=s:4.10\n};;\n")
    assert fox.frame_len(frame, 0) == len(frame)
    f = fox.parse_frame(frame)
    assert [k for k, _t, _v in f.fields] == ["app.name", "app.version"]
    out = fox.decode(packet(frame, dport=1911))
    assert not of_kind(out, "credential") and of_kind(out, "identity")[0].data["firmware"] == "4.10"


def _obs_key(o) -> tuple:
    return o.kind, o.proto, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items())))


def test_chatty_session_is_replayed_and_equals_the_reference(tmp_path):
    """The capture's hello exchange, then 300 small frames each way and a login in the middle
    (built per the framing). The capture shows no keep-alive, so no Fox routine is declared and
    these frames (26 bytes, past the generic short-payload replay) are all decoded; the engine
    must say what the reference decoder says, repeats folded into one observation."""
    from support.packets import pcap_bytes, tcp_conversation

    from plantguard.capture.reference import analyze_reference
    (c_hello, s_hello) = [p for f, _c, p in _payloads() if f in (4, 6)]
    ping, pong = b"fox a 7 -1 fox ping\n{\n};;\n", b"fox r 8 7 fox pong\n{\n};;\n"
    login = b"fox a 9 -1 fox authenticate\n{\nusername=s:operator\n};;\n"
    exchanges = [(True, c_hello), (False, s_hello)]
    for i in range(300):
        exchanges += [(True, ping), (False, pong)]
        if i == 150:
            exchanges.append((True, login))
    path = tmp_path / "fox_chatty.pcap"
    path.write_bytes(pcap_bytes(tcp_conversation("10.0.0.3", "10.0.0.2", 1911, exchanges)))
    got, ref = analyze([path]), analyze_reference([path])
    assert sorted(map(_obs_key, got.observations)) == sorted(map(_obs_key, ref.observations))
    assert got.counters["deep_packets"] >= 603
    creds = [o.data["user"] for o in got.observations if o.kind == "credential"]
    assert creds == ["operator"]
    ops = {(o.data["name"], o.count) for o in got.observations if o.kind == "operation"}
    assert ops == {("Hello", 1), ("fox ping", 300), ("fox authenticate", 1)}
