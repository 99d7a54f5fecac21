"""DHCP against Zeek's dhcp.log baselines (client MAC, host name, requested / assigned address,
lease, domain, message types, NAK message), the automayt Bro dhcp.log of an ITI capture, and
tshark on every DHCP frame (host name, vendor class, parameter list, client MAC, yiaddr)."""
from __future__ import annotations

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import Score, zeek_log
from support.decode import frames, of_kind, packet
from support.peers import need_tshark, tshark_many

from plantguard.protocols import dhcp

Z = "baselines/zeek/scripts.base.protocols.dhcp."
D = "pcaps/zeek/dhcp/"
LOGS = [(D + "dhcp.pcap", Z + "dhcp-all-msg-types/dhcp.log"),
        (D + "dhcp_discover_param_req_and_client_id.pcap", Z + "dhcp-discover-msg-types/dhcp.log"),
        (D + "dhcp_inform.pcap", Z + "inform/dhcp.log")]
CAPTURES = [p for p, _ in LOGS] + ["pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
                                   "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_2.pcapng",
                                   "pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap",
                                   "pcaps/ICS-Security-Tools/openics/EIP-FirmwareChange.pcap"]


def messages(path):
    """(frame, layers, parsed message, readable fields) for every DHCP datagram."""
    for frame, _ts, lay in frames(path):
        if lay.l4 == "udp" and {lay.sport, lay.dport} & {67, 68}:
            msg = dhcp.parse(lay.payload)
            if msg is not None:
                yield frame, lay, msg, dhcp.fields(msg)


def test_transactions_match_zeek_dhcp_log():
    score = Score()
    for pcap, log in LOGS:
        msgs = list(messages(shared_path(pcap)))
        by_xid: dict = {}
        for _fr, _l, m, f in msgs:
            by_xid.setdefault((m["chaddr"], m["xid"]), []).append((m, f))
        for row in zeek_log(shared_path(log)):
            types = row["msg_types"].split(",")
            # Zeek logs one row per transaction (transaction id + client MAC)
            mine = [txn for (mac, _x), txn in by_xid.items()
                    if mac == row["mac"] and [f.get("message") for _m, f in txn] == types]
            what = f"{pcap} {row['msg_types']}"
            if not score.check(what + " found", len(mine), 1):
                continue
            txn = mine[0]
            client = [f for m, f in txn if m["op"] == 1]
            server = [(m, f) for m, f in txn if m["op"] == 2]
            seen = lambda fs, key: sorted({f[key] for f in fs if key in f}) or ["-"]   # noqa: E731
            score.check(what + " host_name", seen(client, "hostname"), [row["host_name"]])
            # Zeek keeps the last requested address of the transaction (the NAK'd one is replaced)
            last = [f["requested_ip"] for f in client if "requested_ip" in f][-1:] or ["-"]
            score.check(what + " requested_addr", last, [row["requested_addr"]])
            score.check(what + " domain", seen([f for _m, f in server], "domain"), [row["domain"]])
            score.check(what + " server_message", seen([f for _m, f in server], "server_message"),
                        [row["server_message"]])
            lease = seen([f for _m, f in server], "lease_time")
            score.check(what + " lease_time", [f"{v:.6f}" if v != "-" else v for v in lease][-1:], [row["lease_time"]])
            acked = sorted({m["yiaddr"] for m, f in server if f.get("message") == "ACK" and m["yiaddr"] != "0.0.0.0"})
            score.check(what + " assigned_addr", acked or ["-"], [row["assigned_addr"]])
    score.assert_agrees(1.0, at_least=20)


def test_bindings_hostnames_and_fingerprints_as_observations():
    r = analyze_shared(D + "dhcp.pcap")
    (addr,) = of_kind(r.observations, "address", "dhcp")
    assert (addr.data["ip"], addr.data["mac"]) == ("128.2.6.189", "90:b1:1c:99:49:29")
    (host,) = of_kind(r.observations, "hostname", "dhcp")
    assert host.data["name"] == "btest.is.cool" and host.src is None and host.src_mac == "90:b1:1c:99:49:29"
    (nak,) = of_kind(r.observations, "error", "dhcp")
    assert nak.data["name"] == "requested address not available"
    assert {o.subject_ip for o in of_kind(r.observations, "service", "dhcp")} == {"128.2.6.152"}
    r = analyze_shared(D + "dhcp_discover_param_req_and_client_id.pcap")
    (ident,) = of_kind(r.observations, "identity", "dhcp")
    assert ident.data["dhcp_fingerprint"] == "1,3,6,42" and ident.data["dhcp_client_id"] == "00:0b:82:01:fc:42"
    assert ident.data["dhcp_requested_ip"] == "208.67.222.222" and ident.subject_mac == "00:0b:82:01:fc:42"


def test_profinet_capture_windows_host_and_siemens_switch():
    r = analyze_shared("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap")
    idents = {o.data["mac"]: o.data for o in of_kind(r.observations, "identity", "dhcp")}
    win = idents["e4:11:5b:5a:d9:73"]
    assert win["description"] == "MSFT 5.0" and win["os"] == "Windows"
    assert win["dhcp_fingerprint"] == "1,15,3,6,44,46,47,31,33,121,249,43"
    assert idents["00:0e:8c:ef:75:c5"]["dhcp_fingerprint"] == "1,28,3"
    names = {o.data["name"]: o.subject_mac for o in of_kind(r.observations, "hostname", "dhcp")}
    assert names == {"LT-US-DSWANSON": "e4:11:5b:5a:d9:73", "siemens-x208-switch": "00:0e:8c:ef:75:c5"}


def test_assignment_matches_bro_dhcp_log():
    (row,) = zeek_log(shared_path("baselines/ICS-pcap/EIP/EIP-IPAddressChangeAttempt/dhcp.log"))
    r = analyze_shared("pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap")
    pairs = {(o.data["mac"], o.data["ip"]) for o in of_kind(r.observations, "address", "dhcp")}
    assert (row["mac"], row["assigned_ip"]) in pairs
    acks = [(m, f) for _fr, _l, m, f in messages(shared_path("pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap"))
            if m["chaddr"] == row["mac"] and f.get("message") == "ACK"]
    assert acks[0][0]["xid"] == int(row["trans_id"])
    assert float(acks[0][1]["lease_time"]) == pytest.approx(float(row["lease_time"]), rel=1e-6)


def test_agrees_with_tshark_on_every_dhcp_frame():
    need_tshark()
    score = Score()
    paths = [shared_path(p) for p in CAPTURES]
    peer = tshark_many(paths, "dhcp", ["dhcp.option.dhcp", "dhcp.hw.mac_addr", "dhcp.option.hostname",
                                       "dhcp.option.vendor_class_id", "dhcp.option.request_list_item",
                                       "dhcp.ip.your", "dhcp.ip.client", "dhcp.option.requested_ip_address"])
    for path in paths:
        ours = {fr: (m, f) for fr, _l, m, f in messages(path)}
        for row in peer[path]:
            what = f"{path.name}#{row['frame']}"
            if not score.check(what + " parsed", row["frame"] in ours, True):
                continue
            m, f = ours[row["frame"]]
            score.check(what + " mac", m["chaddr"], row["dhcp.hw.mac_addr"][0])
            score.check(what + " yiaddr", m["yiaddr"], row["dhcp.ip.your"][0])
            score.check(what + " ciaddr", m["ciaddr"], row["dhcp.ip.client"][0])
            if row["dhcp.option.dhcp"]:
                score.check(what + " type", f.get("message"), dhcp.MSG_TYPES[int(row["dhcp.option.dhcp"][0])])
            score.check(what + " hostname", f.get("hostname"), (row["dhcp.option.hostname"] or [None])[0])
            score.check(what + " vendor", f.get("vendor_class"), (row["dhcp.option.vendor_class_id"] or [None])[0])
            score.check(what + " prl", f.get("fingerprint"), ",".join(row["dhcp.option.request_list_item"]) or None)
            score.check(what + " requested", f.get("requested_ip"),
                        (row["dhcp.option.requested_ip_address"] or [None])[0])
    score.assert_agrees(1.0, at_least=500)


def test_relayed_and_malformed_messages():
    base = bytearray(240)
    base[0], base[1], base[2] = 1, 1, 6
    base[24:28] = bytes([10, 1, 1, 1])                       # giaddr: relayed
    base[28:34] = bytes.fromhex("001b1b0102aa")
    base[236:240] = dhcp.MAGIC
    opts = b"\x35\x01\x03\x0c\x04plc1\x3c\x08Siemens!\x37\x03\x01\x03\x06\xff"
    obs = dhcp.decode(packet(bytes(base) + opts, l4="udp", src="10.1.1.1", src_mac="02:00:00:00:00:fe",
                             sport=67, dport=67))
    (host,) = of_kind(obs, "hostname")
    assert host.src is None and host.src_mac == "00:1b:1b:01:02:aa"        # the client, not the relay
    (ident,) = of_kind(obs, "identity")
    assert ident.data["description"] == "Siemens!" and ident.data["dhcp_fingerprint"] == "1,3,6"
    for cut in (0, 10, 239, 240, 243, len(base) + 5):
        assert isinstance(dhcp.decode(packet((bytes(base) + opts)[:cut], l4="udp", sport=68, dport=67)), list)
    assert dhcp.decode(packet(bytes(base) + b"\x0c\xff" + b"x" * 3, l4="udp", sport=68, dport=67)) == []
