"""DNS / mDNS / LLMNR against tshark on every name-service frame of the shared captures
(questions, A/AAAA/PTR answers), hostname observations, and SSH identification lines
(no shared SSH capture exists, so SSH is tested on hand-built exchanges)."""
from __future__ import annotations

import struct

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import Score
from support.decode import frames, of_kind, packet, stream
from support.peers import need_tshark, tshark_many

from plantguard.protocols import dns, registry, ssh

CAPTURES = [
    "pcaps/zeek/modbus/modbusSmall.pcap",
    "pcaps/ICS-Security-Tools/C37.118/C37118/c37118_1100_unclean.pcap",
    "pcaps/ICS-Security-Tools/C37.118/C37118/c37_pmu_unclean.pcap",
    "pcaps/ICS-Security-Tools/profinet/Profinet_Failed.pcap",
    "pcaps/ICS-Security-Tools/MELSEC/melsoft_UDP_unclean_1.pcap",
    "pcaps/ICS-Security-Tools/beckoff/addroute.pcapng",
    "pcaps/ICS-Security-Tools/beckoff/invokeid12.pcapng",
    "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
    "pcaps/ICS-Security-Tools/s7/S7Comm/wrapup.pcapng",
]


def messages(path):
    for frame, _ts, lay in frames(path):
        if lay.l4 == "udp" and {lay.sport, lay.dport} & set(dns.SPEC.udp_ports):
            try:
                yield frame, lay, dns.parse(lay.payload)
            except dns.DnsError:
                yield frame, lay, None


def test_agrees_with_tshark_on_questions_and_answers():
    need_tshark()
    score = Score()
    paths = [shared_path(p) for p in CAPTURES]
    peer = tshark_many(paths, "dns and udp", ["dns.flags.response", "dns.qry.name", "dns.a", "dns.aaaa",
                                              "dns.ptr.domain_name", "dns.count.queries"])
    for path in paths:
        ours = {fr: m for fr, _l, m in messages(path)}
        for row in peer[path]:
            what = f"{path.name}#{row['frame']}"
            if row["frame"] not in ours:
                continue    # a name service on a port we do not claim (see module docstring)
            m = ours[row["frame"]]
            if not score.check(what + " parsed", m is not None, True):
                continue
            score.check(what + " qr", m["qr"], row["dns.flags.response"][0] in ("1", "True"))
            names = [q for q, _t in m["questions"]]
            score.check(what + " questions", names, row["dns.qry.name"][:dns.MAX_RECORDS])
            if int(row["dns.count.queries"][0]) <= dns.MAX_RECORDS:
                score.check(what + " A", [v for _n, t, v in m["records"] if t == 1], row["dns.a"])
                score.check(what + " AAAA", [v for _n, t, v in m["records"] if t == 28], row["dns.aaaa"])
                score.check(what + " PTR", [v for _n, t, v in m["records"] if t == 12], row["dns.ptr.domain_name"])
    score.assert_agrees(at_least=300)


def test_hostnames_from_answers_carry_the_address():
    r = analyze_shared("pcaps/zeek/modbus/modbusSmall.pcap")
    names = {(o.data["name"], o.data["ip"]) for o in of_kind(r.observations, "hostname", "dns")}
    assert ("googlemail.l.google.com", "74.125.239.54") in names
    assert ("videosearch.ubuntu.com", "91.189.89.22") in names
    q = [o for o in of_kind(r.observations, "operation", "dns") if o.data["detail"] == "mail.google.com"]
    assert q and q[0].data["name"] == "A" and q[0].data["category"] == "read"
    assert {o.data["name"] for o in of_kind(r.observations, "service", "dns")} == {"dns"}
    via = [o for o in of_kind(r.observations, "hostname", "dns") if o.data["name"] == "googlemail.l.google.com"]
    assert via[0].data["query"] == "mail.google.com"


def _dns_message(qr: bool, qname: str, answers: list[tuple[str, int, bytes]]) -> bytes:
    def name(n: str) -> bytes:
        return b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\x00"
    head = struct.pack(">HHHHHH", 7, 0x8400 if qr else 0x0100, 1, len(answers), 0, 0)
    body = name(qname) + struct.pack(">HH", 1, 1)
    for n, t, rdata in answers:
        body += (b"\xc0\x0c" if n == qname else name(n)) + struct.pack(">HHIH", t, 1, 120, len(rdata)) + rdata
    return head + body


def test_mdns_self_announcement_and_reverse_pointer():
    msg = _dns_message(True, "plc-7.local", [("plc-7.local", 1, bytes([10, 0, 0, 2]))])
    (svc, host) = dns.decode(packet(msg, l4="udp", src="10.0.0.2", dst="224.0.0.251", sport=5353, dport=5353))
    assert svc.data == {"name": "mdns"} and host.subject == "src"
    assert host.data == {"name": "plc-7.local", "ip": "10.0.0.2", "source": "mdns"}
    ptr_target = b"\x03hmi\x04site\x00"
    msg = _dns_message(True, "20.1.168.192.in-addr.arpa", [("20.1.168.192.in-addr.arpa", 12, ptr_target)])
    obs = dns.decode(packet(msg, l4="udp", src="10.0.0.53", dst="10.0.0.9", sport=53, dport=40000))
    (host,) = of_kind(obs, "hostname")
    assert host.data["ip"] == "192.168.1.20" and host.data["name"] == "hmi.site" and host.subject == "dst"


def test_dns_over_tcp_split_across_segments():
    msg = _dns_message(True, "historian.plant", [("historian.plant", 1, bytes([10, 9, 9, 9]))])
    framed = struct.pack(">H", len(msg)) + msg
    obs = stream([(False, framed[:7]), (False, framed[7:])], dns, dport=53)
    assert [(o.data["name"], o.data["ip"]) for o in of_kind(obs, "hostname")] == [("historian.plant", "10.9.9.9")]


def test_compression_loops_and_garbage_are_bounded():
    loop = struct.pack(">HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c"
    with pytest.raises(dns.DnsError):
        dns.parse(loop)
    assert dns.decode(packet(loop, l4="udp", sport=53, dport=4000)) == []
    assert not dns.signature(b"\x00" * 5) and not dns.signature(loop)
    assert dns.signature(_dns_message(False, "a.b", []))


# --- SSH ---------------------------------------------------------------------------------

def test_ssh_banners_server_and_client():
    convo = [(True, b"SSH-2.0-PuTTY_Release_0.78\r\n"),
             (False, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1\r\n"),
             (False, b"\x00\x00\x01\x14\x0a\x14" + b"\x00" * 300)]
    obs = stream(convo, ssh, dport=22)
    client, server = of_kind(obs, "identity")
    assert client.data == {"description": "SSH-2.0-PuTTY_Release_0.78", "ssh_client": "PuTTY_Release_0.78"}
    # the server's line is its identity: raw banner, software, and the OS its comment names
    assert (server.subject_ip, server.subject_port) == ("10.0.0.2", 22)
    assert server.data == {"banner": "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1", "software": "OpenSSH_8.9p1",
                           "os": "Ubuntu Linux"}
    (svc,) = of_kind(obs, "service")
    assert svc.data == {"name": "ssh", "banner": "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1",
                        "software": "OpenSSH_8.9p1", "protocol_version": "2.0", "version": "8.9p1"}
    assert svc.subject_port == 22


def test_ssh_device_makers_named_by_their_software():
    (_svc, ident) = stream([(False, b"SSH-1.99-Cisco-1.25\r\n")], ssh, dport=22)
    assert ident.data == {"banner": "SSH-1.99-Cisco-1.25", "software": "Cisco-1.25", "vendor": "Cisco"}
    (_svc, ident) = stream([(False, b"SSH-2.0-ROSSSH\r\n")], ssh, dport=22)
    assert (ident.data["vendor"], ident.data["os"]) == ("MikroTik", "RouterOS")


def test_ssh_on_any_port_and_pre_banner_lines():
    line = b"SSH-1.99-Cisco-1.25\r\n"
    assert registry.classify("tcp", 2022, 50000, line) is ssh
    assert ssh.parse_ident(b"Welcome to the switch\r\nSSH-2.0-dropbear_2019.78\r\n")["software"] == "dropbear_2019.78"
    assert not ssh.signature(b"SSH-3.0-x") and not ssh.signature(b"GET / HTTP/1.1")
