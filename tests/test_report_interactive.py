"""The HTML report's own script in a real browser (Playwright driving the Debian chromium): reports
made by the real command line on real captures (shared zeek captures) and on the demo plant. The
severity, practice, device, zone and check filters and the search show exactly the findings the
contract says they should, with "N of M findings shown"; sort reorders; the same works when the
findings are grouped in incidents; printing shows every finding whatever the filters; the Wireshark
filter of an evidence row is copied and, run by tshark on its capture, selects exactly the
evidence's frames. Also: 10,000 findings (real ones replicated) stay correct, and the figures of
a filter change are kept in test-artifacts/report/."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import shared_path
from support.browser import CHROMIUM_ARGS, _missing, chromium_path

from plantguard.report import render

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = REPO / "test-artifacts" / "report"
STATUSES = ("fail", "suppressed", "pass")
pytestmark = pytest.mark.slow


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PLANTGUARD_DB",)}
    p = subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, text=True,
                       timeout=300, cwd=cwd, env=env, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


@pytest.fixture(scope="module")
def zeek(tmp_path_factory) -> tuple[Path, dict]:
    """(HTML report, contract) of `plantguard assess` on the shared zeek captures."""
    d = tmp_path_factory.mktemp("zeek")
    caps = shared_path("pcaps/zeek")
    cli("assess", caps, "-f", "json", "-o", d / "r.json", "-q", cwd=d)
    cli("assess", caps, "-o", d / "r.html", "-q", cwd=d)
    return d / "r.html", json.loads((d / "r.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    """(HTML report, contract) of `plantguard demo`."""
    d = tmp_path_factory.mktemp("demo")
    cli("demo", "--out", d / "html", cwd=d)
    cli("demo", "--out", d / "json", "-f", "json", cwd=d)
    return d / "html" / "plantguard-report.html", json.loads((d / "json" / "plantguard-report.json").read_text())


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    exe = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def opened(browser, report: Path):
    """A page showing `report`; every console error, page error and request is recorded and
    checked on the way out (no error; nothing loaded but the file itself)."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = ctx.new_page()
    problems, requests = [], []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    try:
        yield page
    finally:
        ctx.close()
    assert problems == [], problems
    assert requests == [report.as_uri()], requests


def shown(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f.get("status") in STATUSES]


def visible_ids(page) -> list[str]:
    """The ids of the findings on screen, in document order."""
    return page.eval_on_selector_all(".finding", "els => els.filter(e => e.offsetParent !== null).map(e => e.id)")


def titles_of(page, ids: list[str]) -> Counter:
    return Counter(page.eval_on_selector_all(".finding", "(els, ids) => els.filter(e => ids.includes(e.id))"
                                             ".map(e => e.querySelector('summary').textContent)", ids))


def expect(page, contract: dict, keep) -> None:
    """The findings on screen are exactly the contract's findings `keep` accepts (by title), and the
    count line says so."""
    everything = shown(contract["findings"])
    wanted = [f for f in everything if keep(f)]
    ids = visible_ids(page)
    assert page.text_content(".filter-count") == f"{len(wanted)} of {len(everything)} findings shown"
    assert len(ids) == len(wanted)
    seen = titles_of(page, ids)
    for f in wanted:        # each title once per finding that has it (the summary adds its badges)
        assert sum(n for t, n in seen.items() if t.endswith(" " + f["title"])) >= 1, f["title"]
    assert sum(seen.values()) == len(wanted)


def choose(page, name: str, value: str) -> None:
    page.select_option(f"#finding-filters select[name={name}]", value)


def search(page, text: str) -> None:
    box = page.locator("#finding-filters input[name=q]")
    box.fill("")
    box.press_sequentially(text, delay=20)            # keystrokes, as a person types
    # the search waits for typing to pause (data-pending meanwhile), then applies once
    page.wait_for_function("() => !document.querySelector('#finding-filters').dataset.pending", timeout=5000)


def _natural(s: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


# --------------------------------------------------------------------------- filters on real reports
def test_filters_search_and_sort_on_real_captures(browser, zeek):
    report, contract = zeek
    findings = shown(contract["findings"])
    devices = Counter(a for f in findings for a in dict.fromkeys(f["assets"]))
    busiest = devices.most_common(1)[0][0]
    with opened(browser, report) as page:
        assert page.is_visible("#finding-filters")                   # the script showed the controls
        expect(page, contract, lambda f: True)
        choose(page, "severity", "critical")
        expect(page, contract, lambda f: f["severity"] == "critical")
        choose(page, "severity", "")
        choose(page, "practice", "default-credentials")
        expect(page, contract, lambda f: f["practice"] == "default-credentials")
        choose(page, "severity", "high")                             # filters combine
        expect(page, contract, lambda f: f["practice"] == "default-credentials" and f["severity"] == "high")
        page.click("#finding-filters button[type=reset]")
        page.wait_for_timeout(50)
        expect(page, contract, lambda f: True)
        choose(page, "device", busiest)
        expect(page, contract, lambda f: busiest in f["assets"])
        choose(page, "device", "")
        choose(page, "status", "pass")
        expect(page, contract, lambda f: f["status"] == "pass")
        assert page.is_hidden("#findings-fail") and page.is_visible("#findings-pass")   # an empty group hides
        choose(page, "status", "")
        choose(page, "check", "crypto.weak-tls")
        expect(page, contract, lambda f: f["check"] == "crypto.weak-tls")
        choose(page, "check", "")
        search(page, "leak_test")                                    # a capture's name: its evidence rows
        expect(page, contract, lambda f: any("leak_test" in (e.get("capture") or "") for e in f["evidence"]))
        search(page, "SNMP community")                               # every word must be there
        expect(page, contract, lambda f: "snmp" in f["title"].lower() and "community" in f["title"].lower())
        search(page, "")
        expect(page, contract, lambda f: True)
        # sort: incidents by their first finding in the order, the findings within each incident too
        def grouped(attr):
            rows = page.eval_on_selector_all(
                "#findings-fail .finding", f"els => els.map(e => [e.dataset.incident, e.dataset.{attr}])")
            groups: dict[str, list[str]] = {}
            for incident, value in rows:
                groups.setdefault(incident, []).append(value)
            assert len(groups) == len({i for i, _ in rows}) and list(groups) == list(dict.fromkeys(i for i, _ in rows))
            return list(groups.values())

        def sorted_by(groups, key):
            return (all(g == sorted(g, key=key) for g in groups)
                    and [key(min(g, key=key)) for g in groups] == sorted(key(min(g, key=key)) for g in groups))

        choose(page, "sort", "device")
        devices = [[d.split(" ")[0] for d in g] for g in grouped("device")]
        assert sorted_by(devices, _natural) and len({d for g in devices for d in g}) > 5
        choose(page, "sort", "check")
        assert sorted_by(grouped("check"), _natural)
        choose(page, "sort", "severity")
        order = ("critical", "high", "medium", "low", "info")
        assert sorted_by(grouped("severity"), order.index)


def test_filters_on_the_demo_plant_with_zones(browser, demo):
    report, contract = demo
    zone_of = {a["ip"]: a["zone"] for a in contract["assets"] if a.get("zone")}
    zones = Counter(zone_of[a] for f in shown(contract["findings"]) for a in set(f["assets"]) if a in zone_of)
    assert zones, "the demo plant's findings name devices in zones"
    zone = zones.most_common(1)[0][0]
    with opened(browser, report) as page:
        expect(page, contract, lambda f: True)
        choose(page, "zone", zone.replace(" ", "_"))
        expect(page, contract, lambda f: any(zone_of.get(a) == zone for a in f["assets"]))
        choose(page, "zone", "")
        worst = next(s for s in ("critical", "high", "medium") if any(f["severity"] == s for f in contract["findings"]))
        choose(page, "severity", worst)
        expect(page, contract, lambda f: f["severity"] == worst)


# --------------------------------------------------------------------------- incidents
def grouped_in_incidents(html: str) -> str:
    """The report with consecutive findings of one check wrapped in `.incident` elements, as the
    incident view marks them up (class, data-incident, data-severity of the worst finding)."""
    order = ("critical", "high", "medium", "low", "info")
    pattern = re.compile(r'\s*<details class="finding [^>]*>.*?</details>', re.DOTALL)
    out, pos, n = [], 0, 0
    blocks = list(pattern.finditer(html))
    i = 0
    while i < len(blocks):
        check = re.search(r'data-check="([^"]*)"', blocks[i].group(0)).group(1)
        j = i
        while j + 1 < len(blocks) and blocks[j + 1].start() == blocks[j].end() \
                and re.search(r'data-check="([^"]*)"', blocks[j + 1].group(0)).group(1) == check:
            j += 1
        sevs = [re.search(r'data-severity="([^"]*)"', b.group(0)).group(1) for b in blocks[i:j + 1]]
        n += 1
        out.append(html[pos:blocks[i].start()])
        out.append(f'<details class="incident" open data-incident="inc-{n}" data-severity="{min(sevs, key=order.index)}">'
                   f"<summary>{check}</summary>")
        out += [b.group(0) for b in blocks[i:j + 1]]
        out.append("</details>")
        pos = blocks[j].end()
        i = j + 1
    out.append(html[pos:])
    return "".join(out)


def test_incidents_hide_when_nothing_matches_and_count_what_does(browser, zeek, tmp_path):
    report, contract = zeek
    page_file = tmp_path / "incidents.html"
    page_file.write_text(grouped_in_incidents(report.read_text(encoding="utf-8")), encoding="utf-8")
    with opened(browser, page_file) as page:
        incidents = page.eval_on_selector_all(".incident", "els => els.length")
        assert incidents > 5
        expect(page, contract, lambda f: True)
        assert page.eval_on_selector_all(".incident-count", "els => els.map(e => e.textContent).join('')") == ""
        choose(page, "severity", "high")
        expect(page, contract, lambda f: f["severity"] == "high")
        state = page.eval_on_selector_all(".incident", """els => els.map(e => ({
            hidden: e.hidden, total: e.querySelectorAll('.finding').length,
            high: e.querySelectorAll('.finding[data-severity=high]').length,
            count: e.querySelector('.incident-count').textContent}))""")
        for s in state:
            assert s["hidden"] == (s["high"] == 0)
            if s["high"] and s["high"] < s["total"]:
                assert s["count"] == f"{s['high']} of {s['total']} findings match"
        assert any(s["hidden"] for s in state) and any(not s["hidden"] for s in state)
        members = "els => Object.fromEntries(els.map(e => [e.dataset.incident, [...e.querySelectorAll('.finding')].map(f => f.id).sort()]))"
        before = page.eval_on_selector_all(".incident", members)
        choose(page, "sort", "device")          # incidents move whole, keeping their findings
        assert page.eval_on_selector_all(".incident", members) == before
        # each incident sorts by the first device of its findings that comes first
        keys = page.eval_on_selector_all("#findings-fail > .incident", "els => els.map(e => "
                                         "[...e.querySelectorAll('.finding')].map(f => f.dataset.device.split(' ')[0]))")
        firsts = [min(k, key=_natural) for k in keys]
        assert firsts == sorted(firsts, key=_natural) and len(keys) > 5


# --------------------------------------------------------------------------- print and copy
def test_printing_shows_every_finding_whatever_the_filters(browser, zeek, tmp_path):
    if not shutil.which("pdftotext"):
        _missing("pdftotext is not installed (Debian: apt-get install -y poppler-utils)")
    report, contract = zeek
    with opened(browser, report) as page:
        choose(page, "severity", "critical")
        assert len(visible_ids(page)) == sum(f["severity"] == "critical" for f in shown(contract["findings"]))
        closed = page.eval_on_selector_all("details.finding", "els => els.filter(e => !e.open).length")
        assert closed > 10
        pdf = tmp_path / "printed.pdf"
        page.pdf(path=str(pdf))                 # Chromium's printing: beforeprint, print CSS, afterprint
        assert page.eval_on_selector_all("details.finding", "els => els.filter(e => !e.open).length") == closed
        assert len(visible_ids(page)) == sum(f["severity"] == "critical" for f in shown(contract["findings"]))
    text = squash(subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True,
                                 check=True).stdout)
    for f in shown(contract["findings"]):
        assert squash(f["title"])[:60] in text, f["title"]
        for e in f["evidence"][:20]:
            assert squash(e["detail"])[:40] in text, e["detail"]


def squash(s: str) -> str:
    """Text without its white space: PDF lines break anywhere."""
    return re.sub(r"\s+", "", s)


def test_copy_button_copies_the_frames_filter(browser, zeek):
    report, _ = zeek
    ctx = browser.new_context()
    ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    try:
        page.goto(report.as_uri())
        # a reader opens the incident and the finding holding the first evidence row
        page.evaluate("""() => { for (let d = document.querySelector('table.evidence').closest('details'); d;
                                     d = d.parentElement.closest('details')) { d.open = true; } }""")
        row = page.locator("table.evidence tbody tr").first
        want = row.locator("code.dfilter").text_content()
        assert re.fullmatch(r"frame\.number == \d+", want)
        row.locator("button.copy").click()
        page.wait_for_function("() => document.querySelector('table.evidence button.copy').textContent !== 'Copy'")
        label = page.locator("table.evidence button.copy").first.text_content()
        if label == "Copied":
            got = page.evaluate("() => navigator.clipboard.readText()")
        else:                                   # the fallback: the text selected, for Ctrl+C
            got = page.evaluate("() => window.getSelection().toString()")
        assert got == want
    finally:
        ctx.close()


# --------------------------------------------------------------------------- 10,000 findings
def big_contract(contract: dict, n: int = 10_000) -> dict:
    """The real contract with its real findings replicated to `n`, each copy on other devices."""
    c = copy.deepcopy(contract)
    base = [f for f in contract["findings"] if f["status"] == "fail"]
    out = []
    for i in range(n):
        f = copy.deepcopy(base[i % len(base)])
        k = i // len(base)
        f["assets"] = [f"10.{k // 250}.{k % 250}.{j + 1}" for j, _ in enumerate(f["assets"])] or [f"10.9.9.{k % 250}"]
        f["title"] = f"{f['title']} #{i}"
        out.append(f)
    c["findings"] = out
    return c


def test_ten_thousand_findings_filter_correctly(browser, zeek, tmp_path):
    _, contract = zeek
    big = big_contract(contract)
    page_file = tmp_path / "big.html"
    page_file.write_text(render(big, "html"), encoding="utf-8")
    figures = {"findings": 10_000, "html_bytes": page_file.stat().st_size}
    with opened(browser, page_file) as page:
        assert page.text_content(".filter-count") == "10000 of 10000 findings shown"
        # one filter change, timed in the page: the event handler and the layout it causes
        figures["severity_change_ms"] = page.evaluate("""() => {
            const s = document.querySelector('#finding-filters select[name=severity]');
            const t = performance.now();
            s.value = 'critical'; s.dispatchEvent(new Event('change', {bubbles: true}));
            document.body.offsetHeight;
            return performance.now() - t; }""")
        critical = sum(f["severity"] == "critical" for f in big["findings"])
        assert page.text_content(".filter-count") == f"{critical} of 10000 findings shown"
        assert len(visible_ids(page)) == critical
        choose(page, "severity", "")
        search(page, "#9999")
        assert page.text_content(".filter-count") == "1 of 10000 findings shown"
        figures["search_ms"] = page.evaluate("""() => {
            const q = document.querySelector('#finding-filters input[name=q]');
            const f = document.querySelector('#finding-filters');
            const t = performance.now();
            q.value = 'snmp'; f.dispatchEvent(new Event('submit', {cancelable: true}));
            document.body.offsetHeight;
            return performance.now() - t; }""")
        figures["sort_device_ms"] = page.evaluate("""() => {
            const s = document.querySelector('#finding-filters select[name=sort]');
            const t = performance.now();
            s.value = 'device'; s.dispatchEvent(new Event('change', {bubbles: true}));
            document.body.offsetHeight;
            return performance.now() - t; }""")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / "ten-thousand-findings.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(figures)


def test_without_javascript_every_finding_shows_and_no_dead_control(browser, zeek):
    report, contract = zeek
    ctx = browser.new_context(java_script_enabled=False)
    page = ctx.new_page()
    try:
        page.goto(report.as_uri())
        assert len(visible_ids(page)) == len(shown(contract["findings"]))
        assert page.is_hidden("#finding-filters") and not page.locator("button.copy:visible").count()
        assert page.locator("code.dfilter:visible").count() >= 1    # the filters are there to select (open findings)
    finally:
        ctx.close()
