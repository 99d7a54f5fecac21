"""MQTT decoder against the Zeek MQTT baseline (mqtt.pcap) and hand-built 3.1.1 / 5.0 logins."""
from __future__ import annotations

import struct
from collections import Counter

from conftest import analyze_shared, shared_path
from support.baselines import ratio, zeek_log
from support.decode import deep_observations, stream
from support.peers import need_tshark, tshark_fields

from plantguard.model import Packet
from plantguard.protocols import mqtt, registry

BASE = "baselines/zeek/scripts.base.protocols.mqtt.mqtt"
PCAP = "pcaps/zeek/mqtt.pcap"


def _s(b: bytes) -> bytes:
    return struct.pack(">H", len(b)) + b


def _pkt(ptype: int, body: bytes, flags: int = 0) -> bytes:
    n, enc = len(body), b""
    while True:
        byte, n = n & 0x7F, n >> 7
        enc += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return bytes([(ptype << 4) | flags]) + enc + body


def _connect(level=4, user=b"admin", password=b"public", will=None, name=b"MQTT"):
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    if will:
        flags |= 0x04
    vh = _s(name) + bytes([level, flags]) + struct.pack(">H", 60)
    if level == 5:
        vh += b"\x00"
    pl = _s(b"sensor-17")
    if will:
        pl += (b"\x00" if level == 5 else b"") + _s(will) + _s(b"offline")
    if user is not None:
        pl += _s(user)
    if password is not None:
        pl += _s(password)
    return _pkt(1, vh + pl)


def _run(packets, state=None):
    """Feed (from_client, payload) pairs through decode() as one TCP flow."""
    return stream(packets, mqtt, dport=1883, client="10.0.0.5", server="10.0.0.9", state=state)


def test_connect_fields_match_zeek_connect_log():
    rows = zeek_log(shared_path(f"{BASE}/mqtt_connect.log"))
    obs = [o for o in deep_observations(shared_path(PCAP)) if o.kind == "session"]
    got = [(o.src, int(o.sport), o.dst, o.data["protocol_version"], o.data["client_id"]) for o in obs]
    want = [(r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"],
             f"{r['proto_name']} {r['proto_version']}", r["client_id"]) for r in rows]
    assert got == want


def test_connack_status_matches_zeek():
    rows = zeek_log(shared_path(f"{BASE}/mqtt_connect.log"))
    assert {r["connect_status"] for r in rows} == {"Connection Accepted"}
    # every CONNACK in the capture is read as accepted
    from support.decode import frames
    results = []
    for _f, _ts, lay in frames(shared_path(PCAP)):
        if lay.l4 == "tcp" and lay.sport == 1883 and lay.payload[:1] == b"\x20":
            results.append(mqtt.connack_result(lay.payload[2:4], 3)[0])
    assert results == ["success"] * len(rows)


def test_publish_and_subscribe_topics_match_zeek():
    obs = deep_observations(shared_path(PCAP))
    pub = Counter((o.src, o.dst, o.data["topic"]) for o in obs
                  if o.kind == "topic" and o.data["action"] == "publish")
    want_pub = Counter()
    for r in zeek_log(shared_path(f"{BASE}/mqtt_publish.log")):
        a, b = (r["id.orig_h"], r["id.resp_h"]) if r["from_client"] == "T" else (r["id.resp_h"], r["id.orig_h"])
        want_pub[(a, b, r["topic"])] += 1
    sub = Counter((o.src, o.data["topic"]) for o in obs if o.kind == "topic" and o.data["action"] == "subscribe")
    want_sub = Counter((r["id.orig_h"], t) for r in zeek_log(shared_path(f"{BASE}/mqtt_subscribe.log"))
                       for t in r["topics"].split(","))
    matched = sum((pub & want_pub).values()) + sum((sub & want_sub).values())
    total = sum(want_pub.values()) + sum(want_sub.values())
    assert ratio(matched, total) >= 0.99, (pub, want_pub, sub, want_sub)


def test_pipeline_roles_and_service():
    res = analyze_shared(PCAP)
    roles = {(o.subject_ip, o.data["role"]) for o in res.observations if o.kind == "role" and o.proto == "mqtt"}
    assert ("198.41.30.241", "broker") in roles and ("10.0.1.4", "mqtt-client") in roles
    svc = [o for o in res.observations if o.kind == "service" and o.proto == "mqtt"]
    assert svc and all(o.subject_ip == "198.41.30.241" and o.subject_port == 1883 for o in svc)
    assert {f.app for f in res.flows if f.port == 1883} == {"mqtt"}


def test_signature_accepts_connect_only():
    assert mqtt.signature(_connect())
    assert mqtt.signature(_connect(level=3, name=b"MQIsdp"))
    assert not mqtt.signature(b"\x10\x05\x00\x04HTTP\x04")
    assert not mqtt.signature(b"GET / HTTP/1.1\r\n\r\n")
    assert registry.classify("tcp", 51000, 9999, _connect()) is mqtt


def test_cleartext_login_with_result_v311():
    obs = _run([(True, _connect()), (False, _pkt(2, b"\x00\x00"))])
    cred = [o for o in obs if o.kind == "credential"]
    assert len(cred) == 1
    c = cred[0]
    assert (c.src, c.dst, c.dport, c.frame) == ("10.0.0.5", "10.0.0.9", 1883, 1)
    assert c.data == {"user": "admin", "password": "public", "secret_type": "password",
                      "cleartext": True, "result": "success"}


def test_refused_login_v5_and_will_topic():
    obs = _run([(True, _connect(level=5, password=b"wrong", will=b"plant/dev/state")),
                (False, _pkt(2, b"\x00\x86\x00"))])
    cred = [o for o in obs if o.kind == "credential"][0]
    assert cred.data["result"] == "failure" and cred.data["password"] == "wrong"
    sess = [o for o in obs if o.kind == "session"][0]
    assert sess.data["protocol_version"] == "MQTT 5.0" and sess.data["will_topic"] == "plant/dev/state"
    assert [o.data["name"] for o in obs if o.kind == "error"] == ["CONNACK refused: bad user name or password"]


def test_login_without_connack_is_not_lost():
    obs = _run([(True, _connect(user=b"u", password=None)), (True, _pkt(12, b""))])
    cred = [o for o in obs if o.kind == "credential"]
    assert len(cred) == 1 and cred[0].data["result"] is None and cred[0].data["password"] is None


def test_several_packets_per_segment_and_split_packets():
    pub = _pkt(3, _s(b"line1/temp") + b"21.5")
    sub = _pkt(8, b"\x00\x01" + _s(b"line1/#") + b"\x00" + _s(b"line2/+") + b"\x01")
    stream = _connect(user=None, password=None) + pub + sub
    obs = _run([(True, stream[:7]), (True, stream[7:30]), (True, stream[30:])])
    topics = [(o.data["action"], o.data["topic"]) for o in obs if o.kind == "topic"]
    assert topics == [("publish", "line1/temp"), ("subscribe", "line1/#"), ("subscribe", "line2/+")]


def test_gap_drops_the_partial_packet_and_resynchronises():
    state: dict = {}
    _run([(True, _connect(user=None, password=None))], state)
    first = _pkt(3, _s(b"lost/topic") + b"x" * 50)
    second = _pkt(3, _s(b"line3/pressure") + b"1.2")
    base = 1000 + len(_connect(user=None, password=None))

    def feed(frame, payload, seq):
        return mqtt.decode(Packet("t", frame, 0.0, payload, src="10.0.0.5", dst="10.0.0.9", l4="tcp",
                                  sport=40000, dport=1883, seq=seq, from_client=True, state=state))
    assert feed(2, first[:20], base) == []               # half a PUBLISH waits in the buffer
    got = feed(3, second, base + len(first) + 100)       # the rest and 100 more bytes were lost
    assert [o.data["topic"] for o in got if o.kind == "topic"] == ["line3/pressure"]


def test_client_id_and_user_are_the_clients_identity_in_the_inventory():
    """mqtt.pcap: the client's CONNECTs (tshark mqtt.clientid / mqtt.username, Zeek client_id)
    give its identity mqtt_client_id (the first one); no user name is sent there, and the broker
    gets none of it."""
    need_tshark()
    from plantguard.inventory.build import build_assets
    rows = tshark_fields(shared_path(PCAP), "mqtt.msgtype == 1", ["ip.src", "mqtt.clientid", "mqtt.username"])
    zeek = [r["client_id"] for r in zeek_log(shared_path(f"{BASE}/mqtt_connect.log"))]
    assert [r["mqtt.clientid"][0] for r in rows] == zeek == ["paho/34AAE54A75D839566E", "paho/DDE4DDAF4108D3E363"]
    assert all(not r["mqtt.username"] for r in rows)
    assets = {a.ip: a for a in build_assets(analyze_shared(PCAP))}
    client = assets[rows[0]["ip.src"][0]].identity
    assert client["mqtt_client_id"] == zeek[0] and "mqtt_user" not in client
    assert "mqtt_client_id" not in assets["198.41.30.241"].identity


def test_connect_user_name_kept_password_never():
    obs = _run([(True, _connect()), (False, _pkt(2, b"\x00\x00"))])
    (ident,) = [o for o in obs if o.kind == "identity"]
    assert (ident.subject_ip, ident.data) == ("10.0.0.5", {"mqtt_client_id": "sensor-17", "mqtt_user": "admin"})
    assert "public" not in repr([o.data for o in obs if o.kind == "identity"])
    obs = _run([(True, _connect(user=None, password=None))])
    assert [o.data for o in obs if o.kind == "identity"] == [{"mqtt_client_id": "sensor-17"}]
