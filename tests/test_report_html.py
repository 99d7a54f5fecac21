"""The HTML report: self-contained (one script, our own, allowed by its hash), escaped, well-formed,
the zones picture right, and rendered in headless Chromium without console errors and with every
key section in the DOM."""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from plantguard.report import render
from plantguard.report.zones_svg import zone_graph

SAMPLE = Path(__file__).parent / "fixtures" / "contract_sample.json"
SCRIPT = '<script>alert("pwned")</script>'
SECTIONS = ("summary", "roadmap", "zones", "findings", "assets", "compliance")


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def hostile(sample: dict) -> dict:
    c = copy.deepcopy(sample)
    c["assets"][0]["identity"]["name"] = SCRIPT
    c["assets"][1]["identity"]["product"] = '"><img src=x onerror=alert(1)>'
    c["findings"][0]["title"] = SCRIPT
    c["findings"][0]["evidence"][0]["detail"] = "</td></tr></table>" + SCRIPT
    c["zones"][0]["name"] = "ctl<script>z</script>"
    c["flows"][0]["app"] = "<svg onload=alert(1)>"
    c["site"] = "</title>" + SCRIPT
    c["notes"] = ["<style>body{display:none}</style>"]
    return c


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(html)
    return p.tags


def test_sections_and_plain_words_first(sample):
    html = render(sample, "html")
    ids = [a.get("id") for _, a in tags_of(html) if a.get("id")]
    for s in (*SECTIONS, "patch-plan"):
        assert s in ids
    # the plain summary and the actions come before the technical detail
    assert ids.index("summary") < ids.index("roadmap") < ids.index("zones") < ids.index("findings") \
        < ids.index("assets") < ids.index("compliance")
    assert "9 problems need attention (1 critical, 5 high, 2 medium, 1 low)" in html
    assert "Change factory-default passwords on plant devices" in html
    assert "Telnet login user &#39;admin&#39;, password &#39;ad***&#39; (vendor default) accepted" in html
    assert "48211" in html and "2024-03-04 08:14:03 UTC" in html
    assert "Authenticator management" in html and "SR 1.5" in html
    assert "CVE-2020-15782" in html                              # patch plan
    assert "The MITRE Corporation" in html


def own_script(html: str) -> str:
    """The report's one script (there must be exactly one, with no attributes)."""
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 1 and scripts[0][0] == "", [a for a, _ in scripts]
    return scripts[0][1]


def test_self_contained_no_scripts_no_external_resources(sample):
    html = render(sample, "html")
    tags = tags_of(html)
    assert not [t for t, _ in tags if t in ("link", "iframe", "object", "embed", "img")]
    # the one script is ours, byte for byte, and the CSP allows exactly it by its hash
    script = own_script(html)
    ours = (Path(__file__).parents[1] / "src/plantguard/report/templates/report.js").read_text(encoding="utf-8")
    assert script == ours and "innerHTML" not in script and "eval(" not in script
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in html
    assert not [a for _, a in tags if "src" in a or any(k.startswith("on") for k in a)]
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    hrefs = [a["href"] for _, a in tags if "href" in a]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    assert re.findall(r"https?://[^\s\"'<]+", html) == ["http://www.w3.org/2000/svg"]   # the SVG namespace only
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_attacker_strings_are_inert(sample):
    html = render(hostile(sample), "html")
    tags = tags_of(html)
    assert [t for t, _ in tags if t in ("script", "img")] == ["script"]     # our own, the last tag
    assert tags[-1][0] == "script" and own_script(html) == own_script(render(sample, "html"))
    assert not [a for _, a in tags if any(k.startswith("on") for k in a)]
    assert [t for t, _ in tags].count("style") == 1 and [t for t, _ in tags].count("svg") == 1
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;" in html
    assert "ctl&lt;script&gt;z&lt;/script&gt;" in html            # inside the SVG too
    assert "<title>Security assessment: &lt;/title&gt;&lt;script&gt;" in html
    assert html.count("<title") == html.count("</title>")
    svg = re.search(r"<svg .*?</svg>", html, flags=re.S).group(0)
    ET.fromstring(svg)                                             # still well-formed XML


def test_zone_graph_marks_violations(sample):
    g = zone_graph(sample)
    edges = {(e["src"], e["dst"]): e for e in g["edges"]}
    assert {k for k, e in edges.items() if e["violation"]} == {("office", "control"), ("sensing", "dmz"),
                                                               ("sensing", "internet")}
    assert not edges[("control", "sensing")]["violation"] and edges[("control", "sensing")]["label"] == "snmp, telnet"
    assert not edges[("office", "dmz")]["violation"]
    assert edges[("sensing", "dmz")]["packets"] == 12044
    assert {z["name"] for z in g["zones"]} == {"control", "sensing", "office", "dmz", "internet"}
    html = render(sample, "html")
    svg = ET.fromstring(re.search(r"<svg .*?</svg>", html, flags=re.S).group(0))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f".//{ns}g[@class='zone']")) == 5
    assert len(svg.findall(f".//{ns}g[@class='edge violation']")) == 3
    assert len(svg.findall(f".//{ns}g[@class='edge ok']")) == 2


def test_zone_graph_without_site_uses_asset_zones_and_addresses():
    c = {"assets": [{"ip": "10.0.0.1", "zone": "plc-net"}, {"ip": "10.0.1.1", "zone": "hmi-net"}],
         "flows": [{"src": "10.0.1.1", "dst": "10.0.0.1", "app": "modbus", "packets": 5},
                   {"src": "10.0.0.1", "dst": "8.8.8.8", "proto": "udp", "port": 53, "packets": 2},
                   {"src": "10.0.0.1", "dst": "192.168.9.9", "proto": "tcp", "port": 80, "packets": 1},
                   {"src": "10.0.0.1", "dst": "10.0.0.1", "app": "loop", "packets": 1}],
         "findings": [{"check": "egress.internet", "status": "fail", "assets": ["10.0.0.1", "8.8.8.8"]}]}
    g = zone_graph(c)
    edges = {(e["src"], e["dst"]): e for e in g["edges"]}
    assert set(edges) == {("hmi-net", "plc-net"), ("plc-net", "internet"), ("plc-net", "(no zone)")}
    assert edges[("plc-net", "internet")]["violation"] and edges[("plc-net", "internet")]["label"] == "udp/53"
    assert not edges[("hmi-net", "plc-net")]["violation"]
    ET.fromstring(re.search(r"<svg .*?</svg>", render(c, "html"), flags=re.S).group(0))


def test_many_zones_and_flows_stay_bounded():
    zones = [{"name": f"z{i}", "kind": ["it", "dmz", "ot-control", "ot-sensing", "guest"][i % 5],
              "networks": [f"10.{i}.0.0/16"], "vlans": []} for i in range(25)]
    flows = [{"src": f"10.{i}.0.1", "dst": f"10.{j}.0.1", "app": "x", "packets": i * j}
             for i in range(25) for j in range(25) if i != j]
    c = {"zones": zones, "flows": flows}
    g = zone_graph(c)
    assert g["edges_total"] == 600 and len(g["edges"]) == 40
    html = render(c, "html")
    assert "showing 40 of 600 zone pairs" in html
    ET.fromstring(re.search(r"<svg .*?</svg>", html, flags=re.S).group(0))


# --------------------------------------------------------------------------- headless Chromium
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")


def run_chromium(page: Path, *extra: str) -> tuple[str, list[str]]:
    """(dumped DOM, console lines) of a page loaded in headless Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                            *extra, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    return p.stdout, console


def test_chromium_console_capture_works(tmp_path):
    # proves the check below would see a script error if the report had one
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedThing();</script></body></html>")
    _, console = run_chromium(bad, "--dump-dom")
    assert any("Uncaught ReferenceError" in ln for ln in console)


@pytest.mark.parametrize("which", ["sample", "hostile", "empty"])
def test_report_in_headless_chromium(tmp_path, sample, which):
    contract = {"sample": sample, "hostile": hostile(sample), "empty": {}}[which]
    page = tmp_path / f"{which}.html"
    page.write_text(render(contract, "html"), encoding="utf-8")
    dom, console = run_chromium(page, "--dump-dom")
    assert console == [], console
    for s in SECTIONS:
        assert f'id="{s}"' in dom
    if which != "empty":
        assert "<svg" in dom and 'class="edge violation"' in dom and "Devices seen (9)" in dom
    assert dom.lower().count("<script") == 1                   # ours; nothing injected ran or was added
    if which == "hostile":
        assert "&lt;script&gt;alert(\"pwned\")&lt;/script&gt;" in dom
        assert "<img" not in dom


def test_screenshot_renders(tmp_path, sample):
    page = tmp_path / "r.html"
    page.write_text(render(sample, "html"), encoding="utf-8")
    shot = tmp_path / "r.png"
    _, console = run_chromium(page, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert console == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000   # a real picture, not a blank page
