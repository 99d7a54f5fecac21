"""SNMP v1/v2c/v3 against Zeek's SNMP event dumps (out1..out4: every PDU, community, request
id, error fields and varbind with its tag and value), snmp.log, the snmp-addr dump, the
malformed traces (crash-62790, oid-subidentifier-too-long) and tshark as second oracle."""
from __future__ import annotations

import re

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import Score, zeek_bytes, zeek_log
from support.decode import frames, of_kind, packet
from support.packets import ber, ber_oid
from support.peers import need_tshark, tshark_fields, tshark_many

from plantguard.protocols import snmp
from plantguard.protocols._ber import BerError

Z = "baselines/zeek/scripts.base.protocols.snmp."
P = "pcaps/zeek/snmp/"
DUMPS = [
    (P + "snmpv1_get.pcap", Z + "v1/out1"), (P + "snmpv1_get_short.pcap", Z + "v1/out2"),
    (P + "snmpv1_set.pcap", Z + "v1/out3"), (P + "snmpv1_trap.pcap", Z + "v1/out4"),
    (P + "snmpv2_get.pcap", Z + "v2/out1"), (P + "snmpv2_get_bulk.pcap", Z + "v2/out2"),
    (P + "snmpv2_get_next.pcap", Z + "v2/out3"), (P + "snmpv3_get_next.pcap", Z + "v3/out1"),
    (P + "snmp-crash-62790.pcap", Z + "snmp-crash-62790/out1"),
]
# Zeek event per PDU; its test script prints get-next requests under the get_request name
EVENTS = {"get": {"snmp_get_request"}, "getnext": {"snmp_get_request", "snmp_get_next_request"},
          "response": {"snmp_response"}, "set": {"snmp_set_request"}, "trap": {"snmp_trap"},
          "getbulk": {"snmp_get_bulk_request"}, "report": {"snmp_report"},
          "inform": {"snmp_inform_request"}, "trap2": {"snmp_trapV2"}}


def udp_payloads(path):
    for frame, _ts, lay in frames(path):
        if lay.l4 == "udp":
            yield frame, lay


def zeek_events(rel: str) -> list[dict]:
    """Parse a Zeek SNMP event dump into one dict per event."""
    events: list[dict] = []
    cur: dict | None = None
    for line in shared_path(rel).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith(" "):
            cur = {"event": line.strip(), "varbinds": []}
            events.append(cur)
            continue
        s = line.strip()
        if s.startswith("[orig_h="):
            cur["conn"] = s
        elif s.startswith("is_orig:"):
            cur["is_orig"] = s.endswith("T")
        elif s.startswith("[community="):
            cur["community"] = s[len("[community="):-1]
        elif s.startswith("[id="):
            cur["v3"] = s
        elif s.startswith("oid:"):
            cur["varbinds"].append([s[4:].strip(), None, None])
        elif s.startswith("value (tag="):
            m = re.match(r"\s*value \(tag=0x([0-9a-fA-F]+)\): ?(.*)$", line)
            cur["varbinds"][-1][1] = int(m.group(1), 16)
            cur["varbinds"][-1][2] = m.group(2)
        elif ":" in s:
            k, _, v = s.partition(":")
            cur[k.strip()] = v.strip()
    return events


def render_value(tag: int, value) -> str | bytes:
    if value is None:
        return "<unspecified>"
    if isinstance(value, bytes):
        return value
    return str(value)


def test_pdus_and_varbinds_match_zeek_event_dumps():
    score = Score()
    for pcap, dump in DUMPS:
        events = zeek_events(dump)
        msgs = [(lay, snmp.parse_message(lay.payload)) for _f, lay in udp_payloads(shared_path(pcap))]
        assert len(msgs) == len(events), (pcap, len(msgs), len(events))
        for i, ((lay, m), ev) in enumerate(zip(msgs, events)):
            what = f"{pcap}#{i}"
            if m.encrypted:
                score.check(what + " event", ev["event"], "snmp_encrypted_pdu")
            else:
                score.check(what + " event", ev["event"] in EVENTS[m.pdu_name], True)
            score.check(what + " direction", lay.dport in (161, 162), ev["is_orig"])
            if "community" in ev:
                score.check(what + " community", m.community, zeek_bytes(ev["community"]))
            for key, ours in (("request_id", m.request_id), ("error_stat", m.error_status),
                              ("error_idx", m.error_index), ("non_repeaters", m.non_repeaters),
                              ("max_repetitions", m.max_repetitions), ("enterprise", m.enterprise),
                              ("agent", m.agent_addr), ("generic_trap", m.generic_trap),
                              ("specific_trap", m.specific_trap), ("time_stamp", m.time_stamp)):
                if key in ev:
                    score.check(f"{what} {key}", str(ours), ev[key])
            if "v3" in ev:
                v3 = ev["v3"]
                for key, ours in (("id", m.msg_id), ("max_size", m.max_size), ("flags", m.flags),
                                  ("security_model", m.security_model)):
                    score.check(f"{what} {key}", str(ours), re.search(rf"\b{key}=(\d+)", v3).group(1))
                user = re.search(r"UserName=([^,]*),", v3)
                if user:
                    score.check(what + " user", m.user, zeek_bytes(user.group(1)))
                boots = re.search(r"AuthoritativeEngineBoots=(\d+)", v3)
                if boots:
                    score.check(what + " boots", m.engine_boots, int(boots.group(1)))
                if "security_params=" in v3 and "Admin001" in v3:
                    score.check(what + " user", m.user, b"Admin001")
            ours_vb = [(oid, tag, render_value(tag, v)) for oid, tag, v in m.varbinds]
            theirs = [(oid, tag, zeek_bytes(v) if tag == 0x04 else v) for oid, tag, v in ev["varbinds"]]
            score.check(what + " varbinds", ours_vb, theirs)
    score.assert_agrees(1.0, at_least=150)


def test_ip_address_varbinds_match_zeek_snmp_addr_dump():
    expected = [ln.strip() for ln in shared_path(Z + "snmp-addr/.stdout").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    ours = []
    for _f, lay in udp_payloads(shared_path(P + "snmpwalk-short.pcap")):
        m = snmp.parse_message(lay.payload)
        ours += [v for _oid, tag, v in m.varbinds if tag == 0x40]
    assert ours == expected


def test_snmp_log_version_and_v3_user():
    (row,) = zeek_log(shared_path(Z + "v3/snmp.log"))
    assert row["version"] == "3" and row["community"] == "username"
    r = analyze_shared(P + "snmpv3_get_next.pcap")
    creds = of_kind(r.observations, "credential", "snmp")
    assert [(c.data["user"], c.data["secret_type"], c.data["cleartext"]) for c in creds] == [("username", "usm", False)]
    services = of_kind(r.observations, "service", "snmp")
    assert {s.data["version"] for s in services} == {"snmpv3"}
    ident = of_kind(r.observations, "identity", "snmp")
    assert ident and ident[0].data["snmp_engine_id"] == "80001f8880a9498e5e3a2c3043"
    assert ident[0].data["enterprise"] == 8072        # net-snmp's enterprise number


def test_encrypted_v3_crash_trace_yields_the_user_and_no_error():
    (row,) = zeek_log(shared_path(Z + "snmp-crash-62790/snmp.log"))
    assert row["version"] == "3"
    r = analyze_shared(P + "snmp-crash-62790.pcap")
    assert r.counters["decode_errors"] == 0
    creds = of_kind(r.observations, "credential", "snmp")
    assert {(c.data["user"], c.data["secret_type"]) for c in creds} == {("Admin001", "usm")}


def test_oid_subidentifier_too_long_is_contained():
    (row,) = zeek_log(shared_path(Z + "oid-subidentifier-too-long/weird.log"))
    assert row["name"] == "asn_oid_subidentifier_too_long"
    (lay,) = [lay for _f, lay in udp_payloads(shared_path(P + "snmp-oid-subidentifier-too-long.pcap"))]
    try:
        m = snmp.parse_message(lay.payload)
    except BerError:
        m = None
    assert m is None or m.malformed          # the damage is noticed, not papered over
    obs = snmp.decode(packet(lay.payload, l4="udp", sport=lay.sport, dport=lay.dport))
    assert all(o.kind in ("credential", "operation", "identity", "service") for o in obs)


def test_v1_observations_credentials_operations_identity():
    r = analyze_shared(P + "snmpv1_get.pcap")
    creds = of_kind(r.observations, "credential", "snmp")
    assert {(c.data["password"], c.data["secret_type"], c.data["cleartext"], c.data["user"]) for c in creds} \
        == {("public", "community", True, None)}
    assert all(c.src == "172.31.19.54" and c.dst == "172.31.19.73" for c in creds)
    ops = of_kind(r.observations, "operation", "snmp")
    assert {(o.data["name"], o.data["category"]) for o in ops} == {("get", "read"), ("set", "config")}
    ident = of_kind(r.observations, "identity", "snmp")
    assert ident[0].data["sys_object_id"] == "1.3.6.1.4.1.2001.1.1.1.297.93.1.27.2.2.1"
    assert ident[0].data["enterprise"] == 2001 and ident[0].subject_ip == "172.31.19.73"
    names = of_kind(r.observations, "hostname", "snmp")
    assert {(n.data["name"], n.subject_ip) for n in names} == {("B6300", "172.31.19.73")}
    # the set request in snmpv1_set.pcap carries an empty community and changes sysName
    r = analyze_shared(P + "snmpv1_set.pcap")
    (op,) = of_kind(r.observations, "operation", "snmp")
    assert op.data["category"] == "config" and op.data["detail"] == "1.3.6.1.2.1.1.5.0"
    assert of_kind(r.observations, "credential", "snmp")[0].data["password"] == ""


SYS_KEYS = {"1.3.6.1.2.1.1.5.0": "name", "1.3.6.1.2.1.1.6.0": "location", "1.3.6.1.2.1.1.4.0": "contact"}


@pytest.mark.parametrize("rel,expected", [
    ("snmpwalk-short.pcap", {"name": "ubuntu-512mb-sfo2-01", "location": "Sitting on the Dock of the Bay",
                             "contact": "Me <me@example.org>"}),
    ("snmpv1_get.pcap", {"name": "B6300", "location": "Chandra's cube"}),
])
def test_sysname_location_contact_are_the_agents_identity_as_tshark_reads_them(rel, expected):
    """sysName / sysLocation / sysContact from the GetResponse varbinds (tshark: snmp.name and
    snmp.value.octets of responses) are the agent's identity name / location / contact."""
    need_tshark()
    from plantguard.inventory.build import build_assets
    peer: dict = {}
    for row in tshark_fields(shared_path(P + rel), "snmp.get_response_element", ["ip.src", "snmp.name", "snmp.value.octets"]):
        octets = iter(row["snmp.value.octets"])
        for name in row["snmp.name"]:
            if name in SYS_KEYS:
                peer.setdefault((row["ip.src"][0], SYS_KEYS[name]), bytes.fromhex(next(octets)).decode())
            elif name.startswith("1.3.6.1.2.1.1.1."):
                next(octets, None)     # sysDescr: an octet string too
    agent = {ip for ip, _ in peer}
    assert len(agent) == 1
    ip = agent.pop()
    assert {k: v for (_, k), v in peer.items()} == expected
    ident = {a.ip: a for a in build_assets(analyze_shared(P + rel))}[ip].identity
    assert {k: ident.get(k) for k in expected} == expected


def test_error_response_varbinds_are_not_identity():
    from plantguard.protocols.snmp import SYS_NAME
    vb = ber(0x30, ber_oid(SYS_NAME) + ber(0x04, b"wanted-name"))
    pdu = ber(0xA2, ber(0x02, b"\x01") + ber(0x02, b"\x04") + ber(0x02, b"\x01") + ber(0x30, vb))   # readOnly
    msg = ber(0x30, ber(0x02, b"\x01") + ber(0x04, b"private") + pdu)
    obs = snmp.decode(packet(msg, l4="udp", sport=161, dport=40000))
    assert [o.kind for o in obs] == ["service", "error"]


def test_sysdescr_response_becomes_identity():
    descr = b"Siemens, SIMATIC NET, SCALANCE X208, HW: 3, FW: V4.1.3"
    varbinds = ber(0x30, ber(0x30, ber_oid(snmp.SYS_DESCR) + ber(0x04, descr))
                   + ber(0x30, ber_oid(snmp.SYS_OBJECT_ID) + ber_oid("1.3.6.1.4.1.4329.6.1.2")))
    pdu = ber(0xA2, ber(0x02, b"\x07") + ber(0x02, b"\x00") + ber(0x02, b"\x00") + varbinds)
    payload = ber(0x30, ber(0x02, b"\x01") + ber(0x04, b"public") + pdu)
    obs = snmp.decode(packet(payload, l4="udp", sport=161, dport=40000))
    (ident,) = of_kind(obs, "identity")
    assert ident.data["vendor"] == "Siemens" and ident.data["product"] == "SCALANCE X208"
    assert ident.data["firmware"] == "4.1.3" and ident.subject == "src"
    assert ident.data["enterprise"] == 4329 and ident.data["description"] == descr.decode()
    assert of_kind(obs, "service")[0].data == {"name": "snmp", "version": "snmpv2c"}
    assert not of_kind(obs, "credential")      # a response does not carry the manager's login


def test_agrees_with_tshark_on_every_snmp_frame():
    need_tshark()
    score = Score()
    pdus = ["get", "getnext", "response", "set", "trap", "getbulk", "inform", "trap2", "report"]
    pcaps = sorted(shared_path(P).glob("*.pcap*"))
    peer = tshark_many(pcaps, "snmp", ["snmp.version", "snmp.community", "snmp.data", "snmp.name",
                                       "snmp.request_id", "snmp.msgUserName", "snmp.msgVersion"])
    for pcap in pcaps:
        rows = {r["frame"]: r for r in peer[pcap]}
        for frame, lay in udp_payloads(pcap):
            row = rows.get(frame)
            if row is None:
                continue
            what = f"{pcap.name}#{frame}"
            try:
                m = snmp.parse_message(lay.payload)
            except BerError:
                score.check(what + " parsed", False, True)
                continue
            score.check(what + " version", str(m.version), (row["snmp.version"] or row["snmp.msgVersion"])[0])
            if row["snmp.community"]:
                score.check(what + " community", m.community.decode("latin-1"), row["snmp.community"][0])
            if row["snmp.data"] and m.pdu_type is not None:
                score.check(what + " pdu", m.pdu_name, pdus[int(row["snmp.data"][0])])
            if row["snmp.request_id"] and m.request_id is not None:
                score.check(what + " request_id", str(m.request_id), row["snmp.request_id"][0])
            if row["snmp.msgUserName"]:
                score.check(what + " user", m.user.decode("latin-1"), row["snmp.msgUserName"][0])
            if not m.malformed:
                score.check(what + " oids", [oid for oid, _t, _v in m.varbinds], row["snmp.name"])
    score.assert_agrees(at_least=1000)


@pytest.mark.parametrize("payload", [b"", b"\x30", b"\x30\x03\x02\x01\x05", b"\x30\x84\xff\xff\xff\xff",
                                     b"\x30\x0b\x02\x01\x01\x04\x01a\xa0\x03\x02\x01"])
def test_truncated_messages_do_not_raise_out_of_decode(payload):
    assert isinstance(snmp.decode(packet(payload, l4="udp", dport=161)), list)
