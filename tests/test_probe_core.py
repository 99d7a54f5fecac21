"""The probe's plan and limits: targets and the site's allow-list, the rate cap and the circuit
breaker on a real socket server, the command line's refusals, and the evidence pcap read by
tshark and plantguard's own reader alike."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from plantguard.probe.evidence import Evidence
from plantguard.probe.limits import Breaker, RateCap
from plantguard.probe.queries import select
from plantguard.probe.query import Exchange, Query, Target
from plantguard.probe.session import Options, Plan, run
from plantguard.probe.targets import TargetError, build_plan, expand
from plantguard.site import SiteError, parse_site

SITE = """
site: T
zones:
  - {name: cell-a, kind: ot-control, networks: [10.10.1.0/24]}
  - {name: office, kind: it, networks: [10.20.0.0/24]}
probe:
  owner: OT engineering
  rate: 5
  allow:
    - zones: [cell-a]
      protocols: [modbus, s7]
      hosts: [10.10.1.0/25]
"""


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "plantguard", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_targets_expand_hosts_and_refuse_broadcast_and_huge_ranges(tmp_path):
    assert expand(["10.10.1.0/30"]) == ["10.10.1.1", "10.10.1.2"]          # no network, no broadcast
    f = tmp_path / "t.txt"
    f.write_text("10.10.1.5  # the M340\n\n10.10.1.6,10.10.1.5\n")
    assert expand([str(f)]) == ["10.10.1.5", "10.10.1.6"]
    for bad, words in (("224.0.0.5", "not a unicast"), ("10.0.0.0/8", "smaller range"), ("plc-1", "not an address"),
                       ("fe80::1", "only IPv4")):
        with pytest.raises(TargetError, match=words):
            expand([bad])
    assert "255.255.255.255" not in expand(["255.255.255.254/31"])


def test_the_plan_keeps_only_what_the_allow_list_admits():
    site = parse_site(SITE)
    plan = build_plan(["10.10.1.5", "10.10.1.200", "10.20.0.9", "192.168.9.9"], select(["modbus", "enip", "s7"]),
                      site, known={"10.10.1.5": {"protocols": {"modbus"}, "mac": None}})
    assert [(t.ip, q.protocol) for t, q in plan.items] == [("10.10.1.5", "modbus")]
    why = {(t.ip, q.protocol): w for t, q, w in plan.skipped}
    assert "never saw 10.10.1.5 serve s7comm" in why[("10.10.1.5", "s7comm")]
    assert "admits no enip in zone cell-a" in why[("10.10.1.5", "enip")]
    assert "admits no modbus in zone cell-a" in why[("10.10.1.200", "modbus")]      # outside hosts
    assert "admits no modbus in zone office" in why[("10.20.0.9", "modbus")]
    assert why[("192.168.9.9", "modbus")] == "the address is in no zone of the site"


@pytest.mark.parametrize("probe,words", [
    ("probe: yes", "expected a mapping"),
    ("probe: {allow: [{zones: [cell-a], protocols: [modbus]}]}", "owner: Field required"),
    ("probe: {owner: x, allow: [{zones: [cell-a], protocols: [ftp]}]}", "'ftp' is not a probe protocol"),
    ("probe: {owner: x, rate: 500, allow: [{zones: [cell-a], protocols: [modbus]}]}", "rate"),
    ("probe: {owner: x, allow: [{zones: [cell-a], protocols: [modbus], hosts: [plc]}]}", "not an address"),
    ("probe: {owner: x, allow: []}", "allow"),
])
def test_a_bad_probe_section_is_one_line_with_its_line(probe, words):
    text = "site: T\nzones:\n  - {name: cell-a, kind: ot-control, networks: [10.10.1.0/24]}\n" + probe + "\n"
    with pytest.raises(SiteError) as err:
        parse_site(text, "site.yaml")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("site.yaml:4: probe") and words in msg, msg


def test_rate_cap_spaces_every_packet():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s
    cap = RateCap(4.0, clock=lambda: now[0], sleep=sleep)
    stamps = []
    for _ in range(9):
        cap.take()
        stamps.append(now[0])
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) == pytest.approx(0.25) and cap.sent == 9


def test_breaker_trips_on_errors_and_on_a_rising_latency():
    b = Breaker(max_errors=2, max_devices=2)
    for s in (0.01, 0.012, 0.011):
        b.latency("10.0.0.1", s)
    assert b.stops("10.0.0.1") is None
    b.latency("10.0.0.1", 0.9)
    assert "90" in b.stops("10.0.0.1") or "×" in b.stops("10.0.0.1")
    b.error("10.0.0.2", "reset")
    assert b.stops("10.0.0.2") is None
    b.error("10.0.0.2", "reset")
    assert "2 errors, the last: reset" in b.tripped["10.0.0.2"]
    assert b.run_tripped == "2 devices tripped the breaker" and b.stops("10.0.0.3") == b.run_tripped


class Recorder:
    """A real TCP server on loopback that records every byte it receives and answers each
    Modbus request with a device-identification response after `delay` seconds."""

    def __init__(self, delay=0.0, grow=0.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self.delay, self.grow = delay, grow
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    self.received += data
                    time.sleep(self.delay)
                    self.delay += self.grow
                    pdu = bytes([0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x04]) + b"Acme"
                    conn.sendall(data[:4] + (len(pdu) + 1).to_bytes(2, "big") + data[6:7] + pdu)


def writes_after_a_read(t: Target) -> Exchange:
    """A query written wrongly: a read, then a Write Single Register."""
    yield bytes.fromhex("000100000005ff2b0e0100")
    yield bytes.fromhex("000200000006ff0600010005")


def test_a_refused_frame_never_reaches_the_device():
    srv = Recorder()
    q = Query(protocol="modbus", name="bad", title="bad", transport="tcp", port=srv.port,
              exchange=writes_after_a_read, response_length=select(["modbus"])[0].response_length)
    runs, sent = run(Plan([(Target("127.0.0.1"), q)]), Options(rate=50), Evidence())
    assert runs[0].status == "refused" and "Write Single Register" in runs[0].reason
    time.sleep(0.2)
    assert bytes(srv.received) == bytes.fromhex("000100000005ff2b0e0100")      # the read only


def test_a_slowing_device_trips_the_breaker_and_gets_nothing_more():
    srv = Recorder(delay=0.01, grow=0.0)
    q = replace(select(["modbus"])[0], port=srv.port)
    targets = [(Target("127.0.0.1"), q)] * 6
    breaker = Breaker(max_errors=2, min_slow=0.2)
    runs, _ = run(Plan(targets[:3]), Options(rate=50, timeout=3), Evidence(), breaker)
    assert all(r.status == "answered" for r in runs)
    srv.delay = 0.6                                                # a device in trouble
    runs, _ = run(Plan(targets[3:]), Options(rate=50, timeout=3), Evidence(), breaker)
    assert runs[0].status == "answered" and breaker.stops("127.0.0.1")
    assert [r.status for r in runs[1:]] == ["skipped", "skipped"] and srv.connections == 4


def test_the_evidence_pcap_reads_the_same_in_tshark_and_plantguard(tmp_path):
    srv = Recorder()
    q = replace(select(["modbus"])[0], port=srv.port)
    ev = Evidence()
    run(Plan([(Target("127.0.0.1"), q)]), Options(rate=50), ev)
    pcap = tmp_path / "e.pcap"
    assert ev.write(pcap) == 8                         # handshake 3, request, response, close 3
    from plantguard.capture.reference import decoded_frames
    frames = list(decoded_frames(pcap))
    assert len(frames) == 8
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-T", "fields",
                          "-e", "tcp.flags.str", "-e", "tcp.checksum.status", "-e", "tcp.analysis.flags"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == 8
    assert all(line.split("\t")[1] == "1" for line in out)        # 1: checksum good
    assert not any(line.split("\t")[2:] != [""] for line in out)  # no retransmission, no lost segment


def test_dry_run_is_the_default_and_send_needs_an_allow_list(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    dry = cli("probe", "--site", str(site), "--targets", "10.10.1.5", "--protocols", "modbus,s7", "-f", "json")
    assert dry.returncode == 0, dry.stderr
    d = json.loads(dry.stdout)
    assert d["dry_run"] is True and d["sent"] == 0
    frames = {f["query"]: f["frames"] for f in d["frames"]}
    assert frames["modbus.device-id"][0]["operations"] == ["Read Device Identification"]
    assert d["expected_load"]["packets_sent"] > 0
    text = cli("probe", "--site", str(site), "--targets", "10.10.1.5", "--protocols", "modbus")
    assert "0000  00 01 00 00 00 05 ff 2b 0e 02 00" in text.stdout and "dry run: nothing was sent" in text.stdout
    bare = tmp_path / "bare.yaml"
    bare.write_text(SITE.split("probe:")[0])
    refused = cli("probe", "--site", str(bare), "--targets", "10.10.1.5", "--send")
    assert refused.returncode == 2 and "probe: allow-list" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for args, words in ((["--targets", "10.0.0.0/8"], "smaller range"), (["--protocols", "ftp"], "not a probe protocol"),
                        (["--max-conn-per-device", "2"], "less than or equal to 1")):
        r = cli("probe", "--site", str(site), *(["--targets", "10.10.1.5"] if "--targets" not in args else []), *args)
        assert r.returncode == 2 and words in r.stderr, r.stderr


def _window_site(tmp_path, windows_rule: str) -> str:
    """A site whose only maintenance window for its zone is closed now (it opens in three days)."""
    import datetime as dt
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(dt.datetime.now(dt.timezone.utc).weekday() + 3) % 7]
    site = tmp_path / "site.yaml"
    site.write_text(f"""site: T
timezone: UTC
zones:
  - {{name: loop, kind: ot-control, networks: [127.0.0.0/8]}}
maintenance_windows:
  - {{name: sunday shutdown, days: [{day}], start: "02:00", hours: 2, zones: [loop]}}
probe:
  owner: OT engineering
  windows: {windows_rule}
  allow:
    - zones: [loop]
      protocols: [modbus]
""")
    return str(site)


def test_outside_a_maintenance_window_nothing_is_sent(tmp_path):
    srv = Recorder()
    site = _window_site(tmp_path, "required")
    r = cli("probe", "--site", site, "--targets", "127.0.0.1", "--send", "--db", str(tmp_path / "s.db"),
            "--evidence", str(tmp_path / "ev"), "-f", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    (q,) = d["targets"][0]["queries"]
    assert d["sent"] == 0 and q["status"] == "skipped" and "outside every maintenance window" in q["reason"]
    assert srv.connections == 0
    # modbus on its real port is elsewhere; the point is what leaves: nothing, and the site can opt out
    ignored = cli("probe", "--site", _window_site(tmp_path, "ignored"), "--targets", "127.0.0.1", "--send",
                  "--db", str(tmp_path / "s.db"), "--evidence", str(tmp_path / "ev"), "-f", "json", cwd=tmp_path)
    assert json.loads(ignored.stdout)["sent"] >= 1
