"""FTP against Zeek's ftp.log baselines (user, password, reply codes, file commands) and the
samba reply dump, Telnet against Zeek's telnet-missing-auth-name trace (Telnet on tcp/21),
tshark as second oracle, and hand-built Telnet logins."""
from __future__ import annotations

import json

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import Score, zeek_log
from support.decode import deep_observations, of_kind, stream
from support.packets import tcp_conversation_pcap
from support.peers import need_tshark, tshark_fields, tshark_many

from plantguard.protocols import ftp, registry, telnet

Z = "baselines/zeek/scripts.base.protocols."
F = "pcaps/zeek/ftp/"
LOGS = [
    (F + "ftp-invalid-reply-code.pcap", Z + "ftp.ftp-invalid-reply-code/ftp.log"),
    (F + "ipv4.pcap", Z + "ftp.ftp-ipv4/ftp.log"),
    (F + "ftp-password-pass-command.pcap", Z + "ftp.ftp-password-pass-command/ftp.log"),
    (F + "ipv6-retr-samba.pcap", Z + "ftp.ftp-samba-retr/ftp.log"),
    (F + "ftp-auth-tls.pcap", Z + "ftp.ftp-auth-tls/ftp.log"),
]


def test_logins_and_file_commands_match_zeek_ftp_log():
    score = Score()
    for pcap, log in LOGS:
        obs = deep_observations(shared_path(pcap))
        creds = [o.data for o in obs if o.kind == "credential" and o.proto == "ftp"]
        ops = [o.data for o in obs if o.kind == "operation" and o.proto == "ftp"]
        rows = zeek_log(shared_path(log))
        for row in rows:
            what = f"{pcap} {row['command']} {row['arg'][:30]}"
            if row["command"] in ("USER", "PASS"):
                match = [c for c in creds if c["user"] == row["user"]
                         and (row["command"] == "USER" or row["password"] in ("<hidden>", c["password"]))]
                # a USER answered by 331 is no login yet (its PASS row carries the verdict)
                if row["command"] == "USER" and row["reply_code"] in ("331", "332"):
                    continue
                if row["command"] == "USER":
                    match = [c for c in match if c["password"] is None]
                if score.check(what + " login", len(match) >= 1, True):
                    score.check(what + " reply", str(match[0]["reply_code"]), row["reply_code"])
                    score.check(what + " result", match[0]["result"],
                                "success" if row["reply_code"] == "230" else "failure")
            elif row["command"] in ftp.FILE_COMMANDS:
                names = [o["detail"] for o in ops if o["code"] == row["command"]]
                score.check(what + " file op", any(row["arg"].endswith(n or "?") for n in names), True)
            elif row["command"] == "<init>":
                (svc,) = [o.data for o in obs if o.kind == "service" and o.proto == "ftp"]
                score.check(what + " banner", svc["banner"], row["reply_msg"])
                score.check(what + " user before login", [c for c in creds if c["user"]], [])
    score.assert_agrees(1.0, at_least=15)


def test_samba_reply_dump_banner_and_login():
    lines = shared_path(Z + "ftp.ftp-samba-retr/out").read_text().splitlines()
    replies = [ln.split(", ", 3) for ln in lines if ln.startswith("ftp_reply")]
    banner = [r[3] for r in replies if r[2] == "220"][0]
    r = analyze_shared(F + "ipv6-retr-samba.pcap")
    (svc,) = of_kind(r.observations, "service", "ftp")
    assert svc.data["banner"] == banner and svc.subject_ip == "2001:6f8:200:1::5:33"
    (cred,) = of_kind(r.observations, "credential", "ftp")
    assert cred.data["secret_type"] == "anonymous" and cred.data["result"] == "success"
    assert [r[2] for r in replies].index("230") == 2


def test_cleartext_logins_known_results():
    r = analyze_shared(F + "ftp-password-pass-command.pcap")
    (cred,) = of_kind(r.observations, "credential", "ftp")
    assert cred.data == {"user": "Admin", "password": "qwerty", "secret_type": "password", "cleartext": True,
                         "result": "failure", "reply_code": 530}
    assert (cred.src, cred.dst, cred.dport, cred.subject) == ("192.168.10.132", "192.168.10.188", 21, "dst")
    (svc,) = of_kind(r.observations, "service", "ftp")
    assert svc.data["software"] == "FileZilla Server 1.9.1"
    r = analyze_shared(F + "ipv4.pcap")
    (ident,) = [o for o in of_kind(r.observations, "identity", "ftp") if "os" in o.data and "banner" not in o.data]
    assert ident.data["os"].startswith("UNIX Type: L8")
    assert {o.data["name"] for o in of_kind(r.observations, "operation", "ftp")} == {"download"}


def test_agrees_with_tshark_on_commands_and_banners():
    need_tshark()
    score = Score()
    pcaps = [shared_path(p) for p, _ in LOGS]
    peer = tshark_many(pcaps, "ftp", ["ftp.request.command", "ftp.request.arg", "ftp.response.code",
                                      "ftp.response.arg"])
    for pcap in pcaps:
        obs = deep_observations(pcap)
        creds = [(o.data["user"], o.data["password"]) for o in obs if o.kind == "credential"]
        banners = [o.data.get("banner") for o in obs if o.kind == "service" and o.proto == "ftp"]
        user = None
        first_reply = True
        for row in peer[pcap]:
            cmd = row["ftp.request.command"][:1]
            arg = (row["ftp.request.arg"] or [""])[0]
            what = f"{pcap.name}#{row['frame']}"
            if cmd == ["USER"]:
                user = arg
            elif cmd == ["PASS"]:
                score.check(what + " pass", (user, arg) in creds, True)
            if row["ftp.response.code"] and first_reply:
                first_reply = False
                if row["ftp.response.code"][0] == "220":
                    score.check(what + " banner", banners[:1], [(row["ftp.response.arg"] or [""])[0]])
    score.assert_agrees(1.0, at_least=6)


def test_identity_evidence_ftp_banners():
    evidence = json.loads(shared_path("baselines/tshark-derived/identity_evidence.json").read_text())["files"]
    seen = 0
    for rel, kinds in evidence.items():
        if not rel.startswith("pcaps/zeek/ftp/") or rel.endswith("/ipv4.pcap"):
            continue   # (ipv4.pcap's evidence lists three later replies, not its greeting)
        r = analyze_shared(rel)
        banners = {o.data.get("banner") for o in of_kind(r.observations, "service", "ftp")}
        args = [item.partition("=")[2] for item in kinds["ftp_banner"]]
        assert any(a in banners for a in args), (rel, banners, args)
        seen += 1
    assert seen == 4


def test_greeting_is_the_servers_identity_in_the_inventory():
    """The 220 greeting (tshark: ftp.response.arg of the 220 reply) is the server's identity
    banner, with the software it names; the client gets none of it."""
    need_tshark()
    from plantguard.inventory.build import build_assets
    for rel, software in ((F + "ftp-auth-tls.pcap", "vsFTPd 3.0.5"),
                          (F + "ftp-password-pass-command.pcap", "FileZilla Server 1.9.1")):
        (row, *_) = tshark_fields(shared_path(rel), "ftp.response.code == 220", ["ip.src", "ftp.response.arg"])
        server, greeting = row["ip.src"][0], row["ftp.response.arg"][0]
        assets = {a.ip: a for a in build_assets(analyze_shared(rel))}
        assert assets[server].identity["banner"] == greeting
        assert assets[server].identity["software"] == software
        assert [ip for ip, a in assets.items() if ip != server and "banner" in a.identity] == []


@pytest.mark.parametrize("greeting,expected", [
    ("cMT3090 FTP server ready.", {"product": "cMT3090", "model": "cMT3090", "vendor": "Weintek"}),
    ("MT8071iE FTP server ready", {"product": "MT8071iE", "model": "MT8071iE", "vendor": "Weintek"}),
    ("Welcome to CP 343-1 Advanced FTP server", {"product": "CP 343-1 Advanced", "model": "CP 343-1 Advanced",
                                                 "vendor": "Siemens"}),
    ("BMX NOE 0100 FTP server (Version 3.1) ready", {"product": "BMX NOE 0100", "model": "BMX NOE 0100",
                                                     "vendor": "Schneider Electric"}),
    ("VxWorks (5.4.2) FTP server ready", {"os": "VxWorks 5.4.2"}),
    ("Microsoft FTP Service", {"os": "Windows"}),
    ("WAGO 750-881 FW: 01.02.03", {"product": "750-881", "model": "750-881", "vendor": "WAGO", "firmware": "01.02.03"}),
    ("py.fake ready", {}),
])
def test_greetings_name_the_device_only_where_they_say_so(greeting, expected):
    ident = ftp.identity_from_banner(greeting, ftp.software_from_banner(greeting))
    assert ident == dict(expected, banner=greeting)


def test_ftp_greeting_identity_is_the_servers_and_server_software_is_no_firmware():
    obs = stream([(False, b"220 cMT3090 FTP server ready.\r\n")], ftp, dport=21)
    (ident,) = of_kind(obs, "identity")
    assert (ident.subject_ip, ident.subject_port) == ("10.0.0.2", 21)
    assert ident.data == {"banner": "cMT3090 FTP server ready.", "product": "cMT3090", "model": "cMT3090",
                          "vendor": "Weintek"}
    (ident,) = of_kind(stream([(False, b"220 ProFTPD 1.3.5 Server (Debian)\r\n")], ftp, dport=21), "identity")
    assert ident.data == {"banner": "ProFTPD 1.3.5 Server (Debian)", "software": "ProFTPD 1.3.5", "os": "Debian Linux"}


def test_telnet_console_banner_names_model_serial_and_firmware():
    console = (b"\r\nModel name       : NPort 5110\r\nMAC address      : 00:90:E8:11:22:33\r\n"
               b"Serial No        : 1234\r\nFirmware version : 2.10 Build 08042219\r\n\r\nlogin: ")
    obs = stream([(False, IAC_INTRO), (False, console)], telnet, dport=23)
    (ident,) = of_kind(obs, "identity")
    assert ident.subject_ip == "10.0.0.2"
    assert {k: ident.data[k] for k in ("vendor", "product", "model", "serial", "firmware")} == {
        "vendor": "Moxa", "product": "NPort 5110", "model": "NPort 5110", "serial": "1234",
        "firmware": "2.10 Build 08042219"}
    assert ident.data["banner"].startswith("Model name : NPort 5110 MAC address")


def test_telnet_on_tcp21_missing_auth_name():
    """Zeek prints no login event for this trace (a Kerberos REPLY without a name, on tcp/21)."""
    assert shared_path(Z + "login.telnet-missing-auth-name/out").read_text().strip().endswith("<empty>")
    r = analyze_shared("pcaps/zeek/telnet-auth-missing-name.pcap")
    assert [f.app for f in r.flows] == ["telnet"] and r.counters["decode_errors"] == 0
    assert of_kind(r.observations, "credential") == []
    assert [o.data for o in of_kind(r.observations, "service", "telnet")] == [{"name": "telnet"}]
    first = b"\xff\xfa\x25\x02\x02\xff\xf0"
    assert not ftp.signature(first) and telnet.signature(first)
    assert registry.classify("tcp", 21, 40000, first) is telnet


IAC_INTRO = b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"


def test_telnet_character_mode_login_success():
    convo = [(False, IAC_INTRO), (True, b"\xff\xfc\x18\xff\xfc\x20"),
             (False, b"\xff\xfb\x01\r\nMoxa NPort 5110\r\nlogin: ")]
    for ch in b"admin\r":
        convo += [(True, bytes([ch])), (False, bytes([ch]))]     # the server echoes the name
    convo.append((False, b"\r\nPassword: "))
    convo += [(True, bytes([ch])) for ch in b"moxX\x7fa\r\x00"]  # no echo; one backspace
    convo.append((False, b"\r\n"))
    convo.append((False, b"Welcome!\r\n# "))
    obs = stream(convo, telnet, dport=23)
    svc = [o.data for o in of_kind(obs, "service")]
    assert {"name": "telnet"} in svc and {"name": "telnet", "banner": "Moxa NPort 5110 login:"} in svc
    (cred,) = of_kind(obs, "credential")
    assert cred.data == {"user": "admin", "password": "moxa", "secret_type": "password", "cleartext": True,
                         "result": "success"}
    assert cred.src == "10.0.0.1" and cred.subject == "dst"


def test_telnet_line_mode_login_failure():
    convo = [(False, b"\r\nUser Access Verification\r\n\r\nUsername: "), (True, b"cisco\r\n"),
             (False, b"Password: "), (True, b"cisco\r\n"), (False, b"% Login invalid\r\n\r\nUsername: ")]
    (cred,) = of_kind(stream(convo, telnet, dport=23), "credential")
    assert (cred.data["user"], cred.data["password"], cred.data["result"]) == ("cisco", "cisco", "failure")


def test_telnet_retransmitted_keystrokes_counted_once():
    st: dict = {}
    from support.decode import packet
    telnet.decode(packet(b"login: ", sport=23, dport=40000, from_client=False, state=st, seq=1))
    for seq, b in ((10, b"r"), (11, b"o"), (11, b"o"), (12, b"o"), (13, b"t\r\n")):
        telnet.decode(packet(b, sport=40000, dport=23, state=st, seq=seq))
    assert st.get("tn_user") == "root"


@pytest.mark.parametrize("payload,is_ftp,is_telnet", [
    (b"220 ProFTPD 1.3.5 Server ready.\r\n", True, False), (b"220-Welcome\r\n", True, False),
    (b"USER anonymous\r\n", True, False), (b"\xff\xfb\x01\xff\xfb\x03", False, True),
    (b"\xff\xfd\x18", False, True), (b"\xff\xf4", False, False), (b"login: ", False, True),
    (b"HTTP/1.1 200 OK\r\n", False, False), (b"\xff\xfa\x18\x01", False, False)])
def test_ftp_and_telnet_signatures(payload, is_ftp, is_telnet):
    assert ftp.signature(payload) is is_ftp
    assert telnet.signature(payload) is is_telnet


def _telnet_capture(path):
    """Three failed Telnet logins as root, typed a keystroke a segment (the server echoing the
    user name, not the password)."""
    talk = [(False, b"\xff\xfd\x18\xff\xfd\x20")]
    for _attempt in range(3):
        talk.append((False, b"\r\nlogin: "))
        for ch in b"root\r":
            talk += [(True, bytes([ch])), (False, bytes([ch]))]
        talk.append((False, b"\r\nPassword: "))
        talk += [(True, bytes([ch])) for ch in b"aaaaaaaa\r"]
        talk.append((False, b"\r\nLogin incorrect\r\n"))
    path.write_bytes(tcp_conversation_pcap("10.0.0.1", "10.0.0.2", 23, talk, t0=1_600_000_000.0))


def test_telnet_keystrokes_through_the_reference_pipeline(tmp_path):
    from plantguard.capture.reference import analyze_reference
    _telnet_capture(tmp_path / "telnet.pcap")
    r = analyze_reference([tmp_path / "telnet.pcap"])
    (cred,) = of_kind(r.observations, "credential", "telnet")
    assert (cred.data["user"], cred.data["password"], cred.data["result"], cred.count) == \
        ("root", "aaaaaaaa", "failure", 3)


def test_telnet_keystrokes_through_the_columnar_engine(tmp_path):
    from plantguard.capture.engine import analyze
    _telnet_capture(tmp_path / "telnet.pcap")
    r = analyze([tmp_path / "telnet.pcap"])
    creds = of_kind(r.observations, "credential", "telnet")
    assert [(c.data["user"], c.data["password"], c.count) for c in creds] == [("root", "aaaaaaaa", 3)]


def _ftp_guessing_capture(path):
    """Six failed FTP logins as admin/admin, then a successful one with admin/1234."""
    talk = [(False, b"220 vsFTPd 2.3.4\r\n")]
    for password in [b"admin"] * 6 + [b"1234"]:
        talk += [(True, b"USER admin\r\n"), (False, b"331 pw\r\n"), (True, b"PASS " + password + b"\r\n"),
                 (False, b"230 ok\r\n" if password == b"1234" else b"530 no\r\n")]
    path.write_bytes(tcp_conversation_pcap("10.0.0.1", "10.0.0.2", 21, talk, t0=1_600_000_000.0))


EXPECTED_GUESSES = [("admin", "admin", "failure", 6), ("admin", "1234", "success", 1)]


def test_repeated_ftp_guesses_then_success_reference(tmp_path):
    from plantguard.capture.reference import analyze_reference
    _ftp_guessing_capture(tmp_path / "ftp.pcap")
    r = analyze_reference([tmp_path / "ftp.pcap"])
    assert [(o.data["user"], o.data["password"], o.data["result"], o.count)
            for o in of_kind(r.observations, "credential", "ftp")] == EXPECTED_GUESSES


def test_repeated_ftp_guesses_then_success_columnar(tmp_path):
    from plantguard.capture.engine import analyze
    _ftp_guessing_capture(tmp_path / "ftp.pcap")
    r = analyze([tmp_path / "ftp.pcap"])
    assert [(o.data["user"], o.data["password"], o.data["result"], o.count)
            for o in of_kind(r.observations, "credential", "ftp")] == EXPECTED_GUESSES
