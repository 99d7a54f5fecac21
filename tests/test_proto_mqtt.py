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


# --- operations: what the client asks the broker ----------------------------------------------

# Every capture of the shared corpus in which tshark finds MQTT (tshark -r F -Y mqtt).
MQTT_CAPTURES = [PCAP]


def test_operations_towards_the_broker_match_tshark():
    """(flow, msgtype) of every control packet sent to the broker (tshark: tcp.dstport is the
    broker's port), per packet from the deep tier and as a set after folding from the engine;
    the flows' operation totals count them all."""
    need_tshark()
    for rel in MQTT_CAPTURES:
        path = shared_path(rel)
        rows = tshark_fields(path, "mqtt", ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "mqtt.msgtype"])
        want = Counter((r["ip.src"][0], int(r["tcp.srcport"][0]), r["ip.dst"][0], int(r["tcp.dstport"][0]), int(t))
                       for r in rows if int(r["tcp.dstport"][0]) == 1883 for t in r["mqtt.msgtype"])
        assert want and {k[4] for k in want} >= {1, 3, 8, 12, 14}
        ops = [o for o in deep_observations(path) if o.kind == "operation" and o.proto == "mqtt"]
        assert Counter((o.src, o.sport, o.dst, o.dport, o.data["code"]) for o in ops) == want
        res = analyze_shared(rel)
        folded = {(o.src, o.dst, o.dport, o.data["code"]) for o in res.observations
                  if o.kind == "operation" and o.proto == "mqtt"}
        assert folded == {(a, b, p, t) for a, _sp, b, p, t in want}
        per_flow = Counter()
        for (a, sp, b, p, _t), n in want.items():
            per_flow[(a, sp, b, p)] += n
        assert {(f.client, f.client_port, f.server, f.port): sum(f.operations.values())
                for f in res.flows if f.app == "mqtt"} == per_flow


def test_operation_names_categories_and_topics():
    obs = deep_observations(shared_path(PCAP))
    ops = {(o.data["code"], o.data["name"], o.data["category"], o.data["detail"])
           for o in obs if o.kind == "operation" and o.proto == "mqtt"}
    assert ops == {(1, "Connect", "other", None), (3, "Publish", "write", "SampleTopic"),
                   (8, "Subscribe", "read", "SampleTopic"), (12, "Ping Request", "other", None),
                   (14, "Disconnect", "other", None)}
    # the broker's PUBLISHes (frames 5 and 11) deliver to the client: no operation
    assert not [o for o in obs if o.kind == "operation" and o.sport == 1883]


def test_every_client_request_type_and_none_from_the_broker():
    sub = _pkt(8, b"\x00\x01\x00" + _s(b"line1/#") + b"\x00" + _s(b"line2/+") + b"\x01", flags=2)   # v5: properties
    unsub = _pkt(10, b"\x00\x02\x00" + _s(b"line1/#"), flags=2)
    obs = _run([(True, _connect(level=5, user=None, password=None)), (False, _pkt(2, b"\x00\x00\x00")),
                (True, _pkt(15, b"\x18\x00")), (True, sub), (False, _pkt(9, b"\x00\x01\x00\x00\x01")),
                (True, _pkt(3, _s(b"line1/temp") + b"\x00" + b"21.5")), (True, unsub), (True, _pkt(12, b"")),
                (False, _pkt(13, b"")), (False, _pkt(3, _s(b"cmd/line1") + b"\x00" + b"stop")),
                (False, _pkt(15, b"\x18\x00")), (True, _pkt(14, b"\x00\x00"))])
    ops = [(o.src, o.data["code"], o.data["name"], o.data["category"], o.data["detail"])
           for o in obs if o.kind == "operation"]
    assert ops == [("10.0.0.5", 1, "Connect", "other", None),
                   ("10.0.0.5", 15, "Authentication Exchange", "auth", None),
                   ("10.0.0.5", 8, "Subscribe", "read", "line1/#,line2/+"),
                   ("10.0.0.5", 3, "Publish", "write", "line1/temp"),
                   ("10.0.0.5", 10, "Unsubscribe", "read", None),
                   ("10.0.0.5", 12, "Ping Request", "other", None),
                   ("10.0.0.5", 14, "Disconnect", "other", None)]
    from plantguard.model import OP_CATEGORIES
    assert all(o.data["category"] in OP_CATEGORIES for o in obs if o.kind == "operation")


def test_operation_detail_is_bounded_and_a_bad_topic_gives_none():
    long_topic = b"plant/" + b"x" * 5000
    obs = _run([(True, _connect(user=None, password=None)), (True, _pkt(3, _s(long_topic) + b"1")),
                (True, _pkt(3, b"\x00"))])
    details = [o.data["detail"] for o in obs if o.kind == "operation" and o.data["code"] == 3]
    assert len(details) == 2 and len(details[0]) == mqtt.MAX_DETAIL and details[1] is None


def test_operations_are_counted_under_routine_replay(tmp_path):
    """Hundreds of PINGREQs and small PUBLISHes with the same bytes (routine: replayed by the
    engine), the broker publishing the same bytes back: the engine, also in chunks of 13
    records, counts what the reference counts, and that is one operation per client packet."""
    from support.packets import tcp_conversation_pcap
    from test_engine_equivalence import assert_equivalent

    from plantguard.capture.engine import analyze
    from plantguard.capture.reference import analyze_reference
    pub = _pkt(3, _s(b"l1/t") + b"21.5")
    exchanges = [(True, _connect(user=None, password=None)), (False, _pkt(2, b"\x00\x00"))]
    for _ in range(300):
        exchanges += [(True, _pkt(12, b"")), (False, _pkt(13, b"")), (True, pub), (False, pub)]
    exchanges.append((True, _pkt(14, b"")))
    p = tmp_path / "mqtt-routine.pcap"
    p.write_bytes(tcp_conversation_pcap("10.0.0.5", "10.0.0.9", 1883, exchanges))
    ref = analyze_reference([p])
    got = analyze([p])
    assert_equivalent(ref, got)
    assert_equivalent(ref, analyze([p], chunk_records=13))
    (flow,) = [f for f in got.flows if f.app == "mqtt"]
    assert flow.operations == {"other": 302, "write": 300}
    counts = {o.data["code"]: o.count for o in got.observations if o.kind == "operation"}
    assert counts == {1: 1, 3: 300, 12: 300, 14: 1}
