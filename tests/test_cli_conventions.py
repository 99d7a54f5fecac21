"""The command-line conventions users of tcpdump, nmap, Zeek or Prowler expect, on the real command
line: --version, shell completion, -v/-q, plain columns when not a terminal (and NO_COLOR), `-o -`,
choices in any case, --bpf (counted against tcpdump on real captures), `-` for standard input,
and `checks list`."""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_path

ENIP = "pcaps/icsnpp-enip/enip_cip_example.pcap"
SRC = Path(__file__).resolve().parents[1] / "src"


def run(*args, cwd=None, env=None, stdin=None, text=True):
    e = {k: v for k, v in os.environ.items() if k not in ("PLANTGUARD_DB", "FORCE_COLOR", "NO_COLOR", "COLUMNS")}
    e["PYTHONPATH"] = str(SRC) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, text=text,
                          timeout=300, cwd=cwd, env=e, input=stdin)


def ok(p):
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p


# --- 1. version, 2. completion ----------------------------------------------------------------

def test_version_option_and_command_agree():
    from plantguard import __version__
    a, b = ok(run("--version")), ok(run("version"))
    assert a.stdout == b.stdout == f"plantguard {__version__}\n"


def test_bash_completion_completes_commands_and_options():
    env = {"_PLANTGUARD_COMPLETE": "complete_bash", "COMP_WORDS": "plantguard as", "COMP_CWORD": "1"}
    assert ok(run(env=env)).stdout.split() == ["assess"]
    env.update(COMP_WORDS="plantguard checks li", COMP_CWORD="2")
    assert ok(run(env=env)).stdout.split() == ["list"]
    env.update(COMP_WORDS="plantguard assess --bp", COMP_CWORD="2")
    assert "--bpf" in ok(run(env=env)).stdout.split()
    script = ok(run("--show-completion", "bash", env={"SHELL": "/bin/bash"})).stdout
    assert "_PLANTGUARD_COMPLETE=complete_bash" in script and "complete " in script


# --- 3. -v / -q ---------------------------------------------------------------------------------

def test_verbosity_levels_go_to_stderr(tmp_path):
    cap = shared_path(ENIP)
    out = tmp_path / "r.json"
    v = ok(run("-v", "assess", cap, "-f", "json", "-o", out, "-j", "1"))
    info = [ln for ln in v.stderr.splitlines() if ln.startswith("plantguard: info:")]
    assert any("776 packets" in ln and "4 flows" in ln for ln in info), v.stderr
    assert any(ln.startswith("plantguard: info: checks:") and ln.endswith(" s") for ln in info), v.stderr
    assert "debug:" not in v.stderr and json.loads(out.read_text())["summary"]["packets"] == 776
    plain = ok(run("inventory", cap, "--no-store", "-f", "csv", "-j", "1"))
    assert "info:" not in plain.stderr
    vv = ok(run("-vv", "inventory", cap, "--no-store", "-f", "csv", "-j", "1"))
    assert re.search(r"plantguard: debug: capture .*enip_cip_example.pcap: 776 packets", vv.stderr), vv.stderr
    q = ok(run("-q", "assess", cap, "-f", "json", "-o", out, "-j", "1"))
    assert q.stderr == ""                                  # not even the summary line
    bad = run("-q", "inventory", tmp_path / "none.pcap", "--no-store")
    assert bad.returncode == 2 and bad.stderr.startswith("plantguard: error:") and "none.pcap" in bad.stderr


# --- 4. plain columns when not a terminal, NO_COLOR -------------------------------------------------

def _tsv(text: str) -> list[list[str]]:
    lines = text.rstrip("\n").split("\n")
    rows = [ln.split("\t") for ln in lines]
    assert len({len(r) for r in rows}) == 1, "every row has the header's columns"
    return rows


def test_inventory_piped_is_tsv_one_asset_a_line():
    cap = shared_path(ENIP)
    p = ok(run("inventory", cap, "--no-store"))
    rows = _tsv(p.stdout)
    assert rows[0] == ["address", "mac / vendor", "role", "zone", "identity", "services", "state"]
    doc = json.loads(ok(run("inventory", cap, "--no-store", "-f", "json")).stdout)
    assert sorted(r[0] for r in rows[1:]) == sorted(a["ip"] or "-" for a in doc["assets"])
    plc = next(r for r in rows if r[0] == "10.1.1.164")
    assert plc[1] == "00:19:07:24:3c:ca Cisco Systems" and "1756-ENBT/A" in plc[4] and plc[5] == "enip tcp/44818"


def test_tsv_cells_escape_what_devices_send(tmp_path):
    from test_output_safety import write_hostile_capture
    cap = tmp_path / "hostile.pcap"
    write_hostile_capture(cap)
    p = run("inventory", cap, "--no-store", text=False)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode("utf-8")
    rows = _tsv(text)
    assert len(rows) > 10
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)
    assert any("\\x09" in c or "\\x0a" in c or "\\x1b" in c for r in rows for c in r)


def test_terminal_table_keeps_addresses_whole_and_honours_no_color():
    cap = shared_path(ENIP)
    env = {"FORCE_COLOR": "1", "COLUMNS": "70", "TERM": "xterm-256color"}      # Rich: a terminal, 70 wide
    tty = ok(run("inventory", cap, "--no-store", "-q", env=env)).stdout
    assert "┃" in tty and "\t" not in tty
    for ip in ("10.1.1.164", "10.1.1.167", "192.168.1.22"):
        assert ip in tty                                           # never split across lines
    assert "00:19:07:24:3c:ca" in tty
    assert re.search(r"\x1b\[[0-9;]*3\dm", tty)                    # colours by default...
    plain = ok(run("inventory", cap, "--no-store", "-q", env={**env, "NO_COLOR": "1"})).stdout
    assert not re.search(r"\x1b\[[0-9;]*(3[0-9]|38;[0-9;]+)m", plain)   # ...none with NO_COLOR
    assert "10.1.1.164" in plain


def test_intel_status_and_token_list_piped_are_tsv(tmp_path):
    kev = shared_path("vuln/kev/known_exploited_vulnerabilities.json")
    db = tmp_path / "pg.db"
    ok(run("intel", "import", kev, "--db", db))
    st = ok(run("intel", "status", "--db", db))
    rows = _tsv(st.stdout)                              # the totals line goes to stderr: stdout is only columns
    assert "1,404 KEV entries" in st.stderr
    assert rows[0] == ["source", "documents", "records", "newest document", "age (days)", "imported"]
    assert rows[1][0] == "CISA KEV" and rows[1][2] == "1,404"
    url = f"sqlite:///{tmp_path / 'central.db'}"
    ok(run("server", "token", "create", "--db", url, "--role", "Viewer", "--name", "a\tb"))
    rows = _tsv(ok(run("server", "token", "list", "--db", url)).stdout)
    assert rows[0][:4] == ["id", "role", "sites", "state"] and rows[1][1:4] == ["viewer", "all", "active"]
    assert rows[1][-1] == "a\\x09b"                                  # a tab in a cell never splits the row


# --- 5. -o - -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_dash_output_is_stdout_for_every_command_with_o(tmp_path):
    cap = shared_path(ENIP)
    cases = {
        "assess": (["assess", cap, "-f", "json", "-o", "-", "-q"], lambda s: json.loads(s)["summary"]),
        "inventory": (["inventory", cap, "--no-store", "-f", "csv", "-o", "-"], lambda s: s.startswith("ip,")),
        "intel plan": (["intel", "plan", cap, "-f", "json", "-o", "-"], lambda s: json.loads(s) is not None),
        "site init": (["site", "init", cap, "-o", "-", "-q"], lambda s: "zones:" in s),
        "baseline export": (["baseline", "export", "-o", "-", "--state", tmp_path / "st"], None),
    }
    for name, (args, good) in cases.items():
        p = run(*args, cwd=tmp_path)
        assert not (tmp_path / "-").exists(), f"{name} wrote a file named -"
        if good is None:        # no baseline yet: one line, nothing written
            assert p.returncode in (0, 2) and "Traceback" not in p.stderr
            continue
        ok(p)
        assert good(p.stdout), name
    inv = tmp_path / "inv.json"
    ok(run("inventory", cap, "--no-store", "-f", "json", "-o", inv))
    assert json.loads(inv.read_text())["assets"]


# --- 6. choices in any case -------------------------------------------------------------------------

def test_choices_are_accepted_in_any_case(tmp_path):
    cap = shared_path(ENIP)
    assert json.loads(ok(run("inventory", cap, "--no-store", "--format", "JSON")).stdout)["assets"]
    p = run("assess", cap, "-f", "Json", "-o", "-", "-q", "--fail-on", "Medium")
    assert p.returncode == 1 and json.loads(p.stdout)["summary"]["failed"]       # a medium fail: exit 1
    assert ok(run("intel", "plan", cap, "-f", "CSV")).stdout.startswith(ok(run("intel", "plan", cap)).stdout[:20])
    assert json.loads(ok(run("checks", "list", "-f", "JSON")).stdout)["checks"]
    bad = run("inventory", cap, "--no-store", "-f", "yaml")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


# --- 7. --bpf against tcpdump -----------------------------------------------------------------------

BPF_CASES = [
    (ENIP, "tcp"), (ENIP, "udp and not port 2222"), (ENIP, "tcp port 44818"), (ENIP, "arp"),
    (ENIP, "host 10.1.1.164 or host 192.168.1.22"), (ENIP, "src net 10.1.1.0/24 && !tcp"),
    (ENIP, "ether host 00:19:07:24:3c:ca"), (ENIP, "portrange 2000-3000 or icmp"),
    ("pcaps/zeek/ftp/ipv6-retr-samba.pcap", "ip6 and dst port 21"),
    ("pcaps/zeek/ftp/ipv6-retr-samba.pcap", "host 2001:6f8:200:1::5:33 and tcp"),
    ("pcaps/zeek/arp-who-has.pcap", "src host 10.0.0.2"),
    ("pcaps/zeek/linuxsll-arp.pcap", "net 192.168.0.0/16"),
    ("pcaps/zeek/modbus/modbusSmall.pcap", "tcp src port 502 or 503"),
    ("pcaps/icsnpp-bacnet/bacnet_example.pcap", "udp dst port 47808 and (ip or ip6)"),
    ("pcaps/icsnpp-s7comm/snap7.pcap", "ether proto 0x0800 and port 102"),
    ("pcaps/ICS-Security-Tools/openics/EIP-ChangePortConfigurationAttempt.pcap", "not arp"),
    ("pcaps/ICS-Security-Tools/openics/EIP-ChangePortConfigurationAttempt.pcap", "ether host 01:00:0c:cc:cc:cc"),
]


TIME = re.compile(r"\d\d:\d\d:\d\d\.\d+ ")


def tcpdump_count(cap: Path, expr: str) -> int:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump not installed (.ci/run installs it)")
    p = subprocess.run(["tcpdump", "-r", str(cap), "-nn", expr], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return sum(1 for ln in p.stdout.splitlines() if TIME.match(ln))   # some packets print more lines (CDP)


@pytest.mark.parametrize("rel,expr", BPF_CASES)
def test_bpf_keeps_what_tcpdump_keeps(rel, expr):
    from plantguard.capture.bpf import compile_filter
    from plantguard.capture.engine import analyze
    cap = shared_path(rel)
    want = tcpdump_count(cap, expr)
    pf = compile_filter(expr)
    res = analyze([cap], packet_filter=pf)
    assert res.captures[0].packets == want == pf.kept, (expr, res.captures[0].packets, want)


@pytest.mark.slow
def test_bpf_on_the_command_line_with_jobs(tmp_path):
    cap = shared_path(ENIP)
    expr = "tcp and (port 44818 or port 2222)"
    want = tcpdump_count(cap, expr)
    one = json.loads(ok(run("assess", cap, "-f", "json", "-o", "-", "-q", "--bpf", expr, "-j", "1")).stdout)
    two = json.loads(ok(run("assess", cap, "-f", "json", "-o", "-", "-q", "--bpf", expr, "-j", "2")).stdout)
    assert one["summary"]["packets"] == one["captures"][0]["packets"] == want == 362
    assert two["captures"] == one["captures"] and two["summary"] == one["summary"]
    assert f"packet filter '{expr}': 362 of 776 packets kept" in one["notes"]
    inv = json.loads(ok(run("inventory", cap, "--no-store", "-f", "json", "--bpf", "udp")).stdout)
    assert inv["captures"][0]["packets"] == tcpdump_count(cap, "udp")
    assert "zones:" in ok(run("site", "init", cap, "-o", "-", "--bpf", "tcp", "-q")).stdout
    ok(run("intel", "plan", cap, "--bpf", "arp"))


def test_bpf_engine_equals_the_reference():
    from plantguard.capture.bpf import compile_filter
    from plantguard.capture.engine import analyze
    from plantguard.capture.reference import analyze_reference
    from test_engine_equivalence import assert_equivalent
    for rel, expr in [(ENIP, "not udp"), ("pcaps/zeek/modbus/modbusSmall.pcap", "dst port 502"),
                      ("pcaps/zeek/arp-who-has.pcap", "arp and host 10.0.0.1")]:
        cap = shared_path(rel)
        assert_equivalent(analyze_reference([cap], packet_filter=compile_filter(expr)),
                          analyze([cap], packet_filter=compile_filter(expr), chunk_records=13))


@pytest.mark.parametrize("expr,where", [
    ("tcp and", "position 8"), ("port 99999", "position 6"), ("host example.com", "position 6"),
    ("tcp[13] & 2 != 0", "position 1"), ("(tcp or udp", "position 12"), ("vlan 4096", "position 6"),
    ("ether proto 5", "position 13"), ("gateway 10.0.0.1", "position 1"), ("udp )", "position 5"),
    ("port 502 and > 3", "position 14"), ("port 502 or 70000", "position 13"), ("portrange 9", "position 11"),
])
def test_bpf_unsupported_is_one_line_with_the_position(expr, where):
    p = run("inventory", shared_path(ENIP), "--no-store", "--bpf", expr)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plantguard: error: --bpf:") and where in lines[0], lines


# --- 8. - reads standard input ----------------------------------------------------------------------

def test_stdin_capture_plain_and_gzip():
    cap = shared_path(ENIP)
    raw = cap.read_bytes()
    want = json.loads(ok(run("inventory", cap, "--no-store", "-f", "json")).stdout)
    for data in (raw, gzip.compress(raw)):
        p = run("inventory", "-", "--no-store", "-f", "json", stdin=data, text=False)
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert [c["path"] for c in got["captures"]] == ["<stdin>"]
        assert got["captures"][0]["packets"] == 776
        assert [a["ip"] for a in got["assets"]] == [a["ip"] for a in want["assets"]]
    p = run("assess", "-", "-f", "json", "-o", "-", "-q", stdin=raw, text=False)
    assert p.returncode == 0 and b"plantguard-stdin" not in p.stdout
    assert json.loads(p.stdout)["captures"][0]["path"] == "<stdin>"
    bad = run("inventory", "-", "--no-store", stdin=b"not a capture\n", text=False)
    assert bad.returncode == 2 and bad.stderr.decode().startswith("plantguard: error: <stdin>: not a pcap")
    empty = run("inventory", "-", "--no-store", stdin=b"", text=False)
    assert empty.returncode == 2 and b"<stdin>: empty" in empty.stderr


# --- 9. checks list ------------------------------------------------------------------------------

def test_checks_list_json_is_the_registry():
    from plantguard.checks.listing import CheckListing
    from plantguard.checks.registry import all_checks
    doc = CheckListing.model_validate_json(ok(run("checks", "list", "--format", "json")).stdout)
    assert [c.id for c in doc.checks] == [m.id for m, _ in all_checks()] and doc.load_errors == []
    by_id = {c.id: c for c in doc.checks}
    for meta, _ in all_checks():
        c = by_id[meta.id]
        assert (c.title, c.severity, c.practice, c.remediation, c.needs_site) == \
            (meta.title, meta.severity, meta.practice, meta.remediation, meta.needs_site)
        assert c.controls == {k: list(v) for k, v in meta.controls.items()} and c.attack == list(meta.attack)
    rows = _tsv(ok(run("checks", "list")).stdout)
    assert rows[0][:4] == ["id", "title", "severity", "practice"] and len(rows) == len(doc.checks) + 1
    only = json.loads(ok(run("checks", "list", "-f", "json", "--practice", "Default-Credentials")).stdout)
    assert only["checks"] and {c["practice"] for c in only["checks"]} == {"default-credentials"}


# --- monitor --watch --bpf ---------------------------------------------------------------------------

def test_monitor_session_applies_the_filter_to_ring_chunks():
    from plantguard.capture import formats
    from plantguard.capture.bpf import compile_filter
    from plantguard.monitor.session import Session
    cap = shared_path(ENIP)
    expr = "udp or arp"
    s = Session(packet_filter=compile_filter(expr))
    for chunk in formats.read_chunks(cap, None, 100):       # as a ring's pieces arrive
        s.feed(str(cap), chunk)
    assert s.packets == tcpdump_count(cap, expr) == 402
    assert {f.l4 for f in s.result().flows} == {"udp"}


def test_monitor_watch_bad_filter_is_one_line(tmp_path):
    (tmp_path / "ring").mkdir()
    p = run("monitor", "--watch", tmp_path / "ring", "--state", tmp_path / "st", "--bpf", "tcp and (", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "plantguard: error: --bpf: the expression ends too early at position 10 of 'tcp and ('"]
