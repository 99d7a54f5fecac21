"""Everything a device sends is hostile text: a capture whose devices name themselves with Rich
markup, ANSI and OSC-8 escapes, spreadsheet formulas, HTML, Markdown table breaks, control bytes,
very long and invalid UTF-8 strings goes through the real command line (a subprocess) in every
output format, and each output shows the text literally and stays well-formed."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from support.packets import ber, ber_oid, pcap_bytes, tcp_conversation, udp_frame

# name -> bytes a device sends as its name, product, banner ...
CORPUS: dict[str, bytes] = {
    "close-tag": b"[/x]",
    "rich-link": b"[link=https://evil.example]click me[/link]",
    "rich-style": b"[bold red blink]ALARM[/] [/bold]",
    "ansi": b"\x1b[31mred\x1b[0m\x1b[2J",
    "osc8": b"\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "formula": b'=HYPERLINK("http://evil.example","x")',
    "dde": b"+cmd|' /C calc'!A0",
    "minus": b"-2+3+cmd|' /C calc'!A0",
    "at": b"@SUM(1+1)*cmd|' /C calc'!A0",
    "script": b"<script>alert(1)</script><img src=x onerror=alert(2)>",
    "md-table": b"| md | table |",
    "md-emph": b"**bold** _it_ `code` [a](http://evil.example) <b>x</b>",
    "controls": b"nul\x00bel\x07bs\x08vt\x0bdel\x7fcsi\xc2\x9b31m",
    "long": b"[/long]" + b"L" * 3000 + b"\x1b[31m" + b"M" * 900,
    "bad-utf8": b"bad\xff\xfe\xc3(utf8\xed\xa0\x80",
}
LINE_SAFE = {k: v.replace(b"\r", b" ").replace(b"\n", b" ") for k, v in CORPUS.items()}

CLIENT = "10.0.0.2"
CLIENT_MAC = "02:00:00:00:00:02"


def _mac(net: int, i: int) -> str:
    return f"02:00:00:{net:02x}:00:{i:02x}"


def _snmp_request() -> bytes:
    """GetRequest for sysName.0, community public."""
    pdu = ber(0xA0, ber(0x02, b"\x07") + ber(0x02, b"\x00") + ber(0x02, b"\x00")
              + ber(0x30, ber(0x30, ber_oid("1.3.6.1.2.1.1.5.0") + b"\x05\x00")))
    return ber(0x30, ber(0x02, b"\x01") + ber(0x04, b"public") + pdu)


def _snmp_response(name: bytes, descr: bytes) -> bytes:
    varbinds = ber(0x30, ber(0x30, ber_oid("1.3.6.1.2.1.1.1.0") + ber(0x04, descr))
                   + ber(0x30, ber_oid("1.3.6.1.2.1.1.5.0") + ber(0x04, name)))
    pdu = ber(0xA2, ber(0x02, b"\x07") + ber(0x02, b"\x00") + ber(0x02, b"\x00") + varbinds)
    return ber(0x30, ber(0x02, b"\x01") + ber(0x04, b"public") + pdu)


def _modbus_identity(value: bytes) -> tuple[bytes, bytes]:
    """A Read Device Identification (43/14) request and its answer naming objects `value`: name,
    product, product code, vendor, firmware, model, as many as fit in one PDU (253 bytes)."""
    value = value[:230]
    objs, room = [], 240
    for obj in (6, 4, 1, 0, 2, 5):
        if len(value) + 2 <= room:
            objs.append((obj, value))
            room -= len(value) + 2
    body = b"".join(bytes([i, len(v)]) + v for i, v in objs)
    resp = bytes([0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, len(objs)]) + body

    def adu(pdu):
        return struct.pack(">HHHB", 7, 0, len(pdu) + 1, 1) + pdu
    return adu(bytes([0x2B, 0x0E, 0x01, 0x00])), adu(resp)


def hostile_frames() -> list:
    """Per corpus string: a Modbus device answering 43/14 with it (10.0.1.x), an SNMP agent with
    it as sysName and sysDescr (10.0.2.x), an HTTP server (10.0.3.x) and an SSDP device
    (10.0.4.x) with it as Server header, an FTP server with it as 220 banner (10.0.5.x)."""
    frames = []
    t = 1_700_000_000.0

    def conversation(server, smac, port, exchanges, sport, t0):   # with the client, 1 ms apart
        return tcp_conversation(CLIENT, server, port, exchanges, sport, client_mac=CLIENT_MAC, server_mac=smac,
                                t0=t0, step=0.001)

    def datagram(t0, src, dst, smac, dmac, sport, dport, payload):
        return t0, udp_frame(src, dst, sport, dport, payload, smac=smac, dmac=dmac)

    for i, key in enumerate(CORPUS, 10):
        raw, line = CORPUS[key], LINE_SAFE[key]
        req, resp = _modbus_identity(raw)
        frames += conversation(f"10.0.1.{i}", _mac(1, i), 502, [(True, req), (False, resp)], 41000 + i, t)
        frames.append(datagram(t + 0.01, CLIENT, f"10.0.2.{i}", CLIENT_MAC, _mac(2, i), 40161, 161,
                               _snmp_request()))
        frames.append(datagram(t + 0.011, f"10.0.2.{i}", CLIENT, _mac(2, i), CLIENT_MAC, 161, 40161,
                               _snmp_response(raw, raw)))
        frames += conversation(f"10.0.3.{i}", _mac(3, i), 80,
                               [(True, b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: " + line + b"\r\n\r\n"),
                                (False, b"HTTP/1.1 200 OK\r\nServer: " + line + b"\r\nContent-Length: 0\r\n\r\n")],
                               42000 + i, t + 0.02)
        frames.append(datagram(t + 0.03, f"10.0.4.{i}", "239.255.255.250", _mac(4, i), "01:00:5e:7f:ff:fa", 1900, 1900,
                               b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nSERVER: " + line
                               + b"\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n"))
        frames += conversation(f"10.0.5.{i}", _mac(5, i), 21, [(False, b"220 " + line + b"\r\n")], 43000 + i, t + 0.04)
        t += 0.1
    return sorted(frames, key=lambda f: f[0])


def write_hostile_capture(path) -> None:
    path.write_bytes(pcap_bytes(hostile_frames()))


# --- the command line on the hostile capture ------------------------------------------------------

def run(*args, cwd, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("PLANTGUARD_DB", "FORCE_COLOR", "NO_COLOR")}
    e.update({"COLUMNS": "200", "PLANTGUARD_SHARED_DATA": str(SHARED_DATA)}, **(env or {}))
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True,
                          timeout=300, cwd=cwd, env=e)


ASSESS_FORMATS = ("html", "md", "csv", "sarif", "json")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every output of the real CLI on the hostile capture: name -> (process, output bytes)."""
    d = tmp_path_factory.mktemp("hostile")
    cap = d / "hostile.pcap"
    write_hostile_capture(cap)
    db = d / "pg.db"
    res = {}
    for fmt in ("table", "csv", "json"):
        p = run("inventory", cap, "--db", db, "-f", fmt, cwd=d)
        res[f"inventory-{fmt}"] = (p, p.stdout)
    p = run("inventory", cap, "--db", db, "-f", "table", "-q", cwd=d, env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    res["inventory-table-colour"] = (p, p.stdout)
    def assess(fmt):   # independent runs: one per core at a time
        out = d / f"report.{fmt}"
        p = run("assess", cap, "-f", fmt, "-o", out, "-q", cwd=d)
        return f"assess-{fmt}", (p, out.read_bytes() if out.exists() else b"")

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        res.update(pool.map(assess, ASSESS_FORMATS))
    p = run("assess", cap, "-f", "md", "-o", "-", "-q", cwd=d)
    res["assess-md-stdout"] = (p, p.stdout)
    return res


TERMINAL_BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")     # Rich's own colours, when it thinks it is at a terminal


def test_every_run_succeeds_without_internal_error(outputs):
    for name, (p, body) in outputs.items():
        assert p.returncode == 0, (name, p.stderr.decode(errors="replace"))
        err = p.stderr.decode("utf-8")
        assert "internal error" not in err and "Traceback" not in err, (name, err)
        assert body, name
        body.decode("utf-8")                    # every output is valid UTF-8, whatever came in


def test_terminal_output_has_no_raw_escapes_or_control_bytes(outputs):
    for name, (p, body) in outputs.items():
        err = p.stderr.decode("utf-8")
        assert not TERMINAL_BAD.search(err.replace("\n", "")), (name, err)
    for name in ("inventory-table",):
        text = outputs[name][1].decode("utf-8")
        assert not TERMINAL_BAD.search(text.replace("\n", "")), name
        assert "[/x]" in text and "[link=https://evil.example]" in text        # shown, not interpreted
    colour = outputs["inventory-table-colour"][1].decode("utf-8")
    assert "\x1b]" not in colour and "\x1b[2J" not in colour              # no OSC-8 link, no screen wipe
    assert not TERMINAL_BAD.search(SGR.sub("", colour).replace("\n", ""))
    assert "[/x]" in colour and "ALARM[/]" in colour


def _csv_cells(body: bytes):
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows)
    return [c for r in rows for c in r]


@pytest.mark.parametrize("name", ["inventory-csv", "assess-csv"])
def test_csv_cells_cannot_run_as_formulas(outputs, name):
    cells = _csv_cells(outputs[name][1])
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not [c for c in cells if TERMINAL_BAD.search(c.replace("\n", "").replace("\t", ""))]
    assert "+cmd|' /C calc'!A0" in "\n".join(cells)         # kept, as text
    if name == "inventory-csv":                              # a device's name is a cell of its own
        assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in cells and "'+cmd|' /C calc'!A0" in cells


def md_cells(line: str) -> list[str]:
    """The cells of a Markdown table row: split at | not escaped by a backslash."""
    cells, cur, i = [], "", 0
    body = line.strip()
    assert body.startswith("|") and body.endswith("|"), line
    body = body[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            cur += body[i:i + 2]
            i += 2
            continue
        if body[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += body[i]
        i += 1
    return cells + [cur]


@pytest.mark.parametrize("name", ["assess-md", "assess-md-stdout"])
def test_markdown_tables_keep_their_columns(outputs, name):
    text = outputs[name][1].decode("utf-8")
    assert not TERMINAL_BAD.search(text.replace("\n", ""))
    tables = 0
    width = None
    for line in text.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        n = len(md_cells(line))
        if width is None:
            width, tables = n, tables + 1
        assert n == width, line
    assert tables >= 3
    devices = text[text.index("## Devices"):]
    assert "[/x]" not in devices and "\\[/x\\]" in devices
    assert "**bold**" not in text and "\\*\\*bold\\*\\*" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "[a](http://evil.example)" not in text


def test_html_escapes_everything_and_forbids_scripts(outputs):
    from html.parser import HTMLParser
    html = outputs["assess-html"][1].decode("utf-8")

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))
    parser = Tags()
    parser.feed(html)
    assert not [t for t, _ in parser.tags if t in ("img", "iframe", "object", "embed", "link", "b")]
    # one script, the report's own (report.js), and the CSP allows that one only, by its hash
    import base64
    import hashlib
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.DOTALL)
    ours = (Path(__file__).parents[1] / "src/plantguard/report/templates/report.js").read_text(encoding="utf-8")
    assert [t for t, _ in parser.tags].count("script") == 1 and scripts == [("", ours)]
    assert html.lower().count("<script") == 1 and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")]
    csp = [a.get("content", "") for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(ours.encode()).digest()).decode()
    assert csp and "default-src 'none'" in csp[0]
    assert re.findall(r"script-src [^;]*", csp[0]) == [f"script-src 'sha256-{digest}'"]
    assert not TERMINAL_BAD.search(html.replace("\n", "").replace("\t", ""))


def _strings(doc):
    if isinstance(doc, dict):
        for v in doc.values():
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)
    elif isinstance(doc, str):
        yield doc


def test_sarif_is_json_and_messages_hold_no_embedded_links(outputs):
    doc = json.loads(outputs["assess-sarif"][1])
    run_ = doc["runs"][0]
    messages = [r["message"]["text"] for r in run_["results"]]
    messages += [loc["message"]["text"] for r in run_["results"] for loc in r.get("locations", []) if "message" in loc]
    assert any("evil.example" in m for m in messages)
    link = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")
    assert not [m for m in messages if link.search(m)]
    assert not [m for m in messages if TERMINAL_BAD.search(m.replace("\n", ""))]


@pytest.fixture(scope="module")
def decoded(outputs, tmp_path_factory):
    """The assets as plantguard builds them in process from the same capture: what the JSON
    outputs must carry unchanged (the decoders may trim; the renderers must not touch)."""
    from plantguard.capture.engine import analyze
    from plantguard.inventory.build import build_assets
    cap = tmp_path_factory.mktemp("decoded") / "hostile.pcap"
    write_hostile_capture(cap)
    return {a.ip: a.as_dict() for a in build_assets(analyze([cap]))}


@pytest.mark.parametrize("name", ["inventory-json", "assess-json"])
def test_json_keeps_the_device_strings_exactly(outputs, decoded, name):
    doc = json.loads(outputs[name][1])
    assets = {a["ip"]: a for a in doc["assets"]}
    for i, key in enumerate(CORPUS, 10):
        for net in (1, 2, 3, 4, 5):
            ip = f"10.0.{net}.{i}"
            want, got = decoded[ip], assets[ip]
            assert got["hostnames"] == want["hostnames"], (key, ip)
            assert {k: v for k, v in got["identity"].items() if isinstance(v, str)} == \
                {k: v for k, v in want["identity"].items() if isinstance(v, str)}, (key, ip)
            assert [s.get("banner") for s in got["services"]] == [s.get("banner") for s in want["services"]]
        raw = CORPUS[key]
        if raw.isascii() and raw.decode().isprintable():           # the Modbus decoder keeps it as is
            assert assets[f"10.0.1.{i}"]["identity"]["name"] == raw[:230].decode(), key
    everything = "\n".join(_strings(doc))      # escapes and control bytes survive, JSON-escaped
    assert "\x1b]8;;http://evil.example\x1b\\" in everything and "nul\x00bel\x07" in everything


# --- the renderers on strings no decoder cleaned ------------------------------------------------

RAW = "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ [/x] [bold]b[/bold] \x1b[2J\x07\u202etxt.exe\x9b31m"


def _inventory_report():
    from plantguard.inventory.asset import Asset, Service
    from plantguard.report.inventory import InventoryReport
    a = Asset("10.9.9.9", mac="02:00:00:00:09:09", vendor=RAW, role="plc", zone=RAW,
              identity={"vendor": RAW, "product": RAW, "firmware": RAW, "serial": RAW, "name": RAW})
    a.services[("tcp", 502)] = Service("tcp", 502, RAW)
    return InventoryReport(assets=[a], captures=[{"path": RAW, "packets": 1, "warnings": [RAW]}])


def test_inventory_table_renderer_shows_raw_strings_literally():
    from plantguard.report.inventory_table import render_inventory_table
    out = render_inventory_table(_inventory_report())
    assert not TERMINAL_BAD.search(out.replace("\n", ""))
    flat = "".join(ch for ch in out if ch not in "│┃ \n")
    assert "\\x1b]8;;http://evil.example\\x1b\\click" in flat and "[/x]" in flat and "\\u202etxt.exe" in flat


def test_inventory_csv_renderer_neutralises_raw_strings():
    from plantguard.report.inventory_csv import render_inventory_csv
    inv = _inventory_report()
    inv.assets[0].identity["name"] = "@SUM(1)"
    cells = _csv_cells(render_inventory_csv(inv).encode())
    assert "'@SUM(1)" in cells and not [c for c in cells if TERMINAL_BAD.search(c)]


def test_sanitize_sinks():
    from plantguard.util import sanitize as s
    assert s.terminal("a\x1b[31mb\x00\x9b\u202e\u00a0c") == "a\\x1b[31mb\\x00\\x9b\\u202e c"
    assert s.terminal("x" * 10, limit=5) == "xxxx…" and s.terminal(b"\xff") == "\ufffd"
    assert s.terminal("\ud800") == "\\ud800"                    # a lone surrogate cannot be encoded
    assert s.terminal_text("[/x]").plain == "[/x]"
    for bad in ("=1+1", "+1", "-1", "@A1", "\t=1"):
        assert s.csv_cell(bad) == "'" + bad, bad
    assert s.csv_cell("\r=1") == "\\x0d=1"                    # a CR is made visible, so nothing is left to run
    assert s.csv_cell("a\nb\x1b") == "a\nb\\x1b" and s.csv_cell(" =1") == " =1"
    assert s.markdown("| a *b* _c_ `d` [e](f) <g> &\nh") == "\\| a \\*b\\* \\_c\\_ \\`d\\` \\[e\\](f) &lt;g&gt; &amp; h"
    assert str(s.html("<b>\x00")) == "&lt;b&gt;\\x00"
    assert s.sarif_message("[a](http://x)") == "\\[a\\](http://x)"
    assert s.jinja_finalize(3) == 3 and s.jinja_finalize("\x1b") == "\\x1b"
