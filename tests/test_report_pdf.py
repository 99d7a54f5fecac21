"""`plantguard assess --format pdf` on real shared captures: Chromium prints the report, no page is
blank (pdftoppm's PNG of each page, decoded here), and every finding's title and every evidence
detail the report lists is in the PDF's text (pdftotext). Without Chromium: one line, exit 2, before
any work. And the Wireshark filters the report gives each evidence row, run by tshark on the
capture, select exactly the evidence's frames."""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import shared_path
from support.browser import _missing

from plantguard.report.context import MAX_EVIDENCE_SHOWN
from plantguard.report.display_filter import (
    capture_filters,
    conversation_filter,
    frames_filter,
)

STATUSES = ("fail", "suppressed", "pass")


def cli(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("PLANTGUARD_DB",)}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=e, check=False)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        _missing(f"{tool} is not installed (Debian: apt-get install -y "
                 f"{'poppler-utils' if tool.startswith('pdf') else tool})")
    return path


def png_gray_rows(data: bytes) -> list[bytes]:
    """The pixel rows of an 8-bit PNG (gray, RGB or RGBA), unfiltered; enough for pdftoppm's."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 1
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return rows


def is_blank(png: Path) -> bool:
    """An all-white page."""
    return all(min(r) >= 250 for r in png_gray_rows(png.read_bytes()))


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> tuple[Path, dict]:
    """(PDF, contract) of `plantguard assess --format pdf` on the shared zeek captures."""
    need("chromium")
    d = tmp_path_factory.mktemp("pdf")
    caps = shared_path("pcaps/zeek")
    p = cli("assess", caps, "-f", "pdf", "-q", cwd=d)
    assert p.returncode == 0, p.stderr[-2000:]
    p = cli("assess", caps, "-f", "json", "-o", d / "r.json", "-q", cwd=d)
    assert p.returncode == 0, p.stderr[-2000:]
    return d / "plantguard-report.pdf", json.loads((d / "r.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_pdf_has_no_blank_page(printed, tmp_path):
    pdf, _ = printed
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run([need("pdftoppm"), "-png", "-r", "20", "-gray", str(pdf), str(tmp_path / "page")], check=True,
                   timeout=300)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) > 5
    blank = [p.name for p in pages if is_blank(p)]
    assert blank == []
    assert not is_blank(pages[-1])          # the last page too (where an overflow would leave a blank)


BLANK_PDF = (b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
             b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
             b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]>> endobj\n"
             b"trailer <</Root 1 0 R>>\n%%EOF\n")


def test_the_blank_page_check_sees_a_blank_page(tmp_path):
    (tmp_path / "blank.pdf").write_bytes(BLANK_PDF)
    subprocess.run([need("pdftoppm"), "-png", "-r", "20", "-gray", str(tmp_path / "blank.pdf"), str(tmp_path / "b")],
                   check=True, timeout=60, capture_output=True)
    assert is_blank(next(tmp_path.glob("b*.png")))


@pytest.mark.slow
def test_pdf_holds_every_finding_and_its_evidence(printed):
    pdf, contract = printed
    text = squash(subprocess.run([need("pdftotext"), "-raw", str(pdf), "-"], capture_output=True, text=True,
                                 check=True, timeout=300).stdout)
    findings = [f for f in contract["findings"] if f["status"] in STATUSES]
    assert len(findings) > 50
    for f in findings:
        assert squash(f["title"]) in text, f["title"]
        for e in f["evidence"][:MAX_EVIDENCE_SHOWN]:
            assert squash(e["detail"]) in text, (f["title"], e["detail"])
        for _, flt in capture_filters(f["evidence"]):
            assert squash(flt) in text, flt


def test_an_unprintable_report_is_one_line_and_exit_2(tmp_path):
    """No Chromium (PLANTGUARD_CHROMIUM names a missing file; PATH holds no browser): refused before
    the capture is read, so even a capture that does not exist is not reached."""
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python3")
    env = {"PLANTGUARD_CHROMIUM": str(tmp_path / "no-such-chromium"), "PATH": str(bare)}
    p = cli("assess", tmp_path / "no-such.pcap", "-f", "pdf", cwd=tmp_path, env=env)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("plantguard: error: --format pdf needs Chromium")
    assert "--format html" in lines[0] and "print" in lines[0]
    assert not list(tmp_path.glob("*.pdf"))
    p = cli("demo", "--out", tmp_path / "demo", "-f", "pdf", cwd=tmp_path, env=env)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr


# --------------------------------------------------------------------------- display filters
def tshark_frames(capture: str, flt: str) -> list[int]:
    out = subprocess.run([need("tshark"), "-n", "-r", capture, "-Y", flt, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, (flt, out.stderr[-500:])
    return [int(x) for x in out.stdout.split()]


@pytest.fixture(scope="module")
def zeek_contract(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("json")
    p = cli("assess", shared_path("pcaps/zeek"), "-f", "json", "-o", d / "r.json", "-q", cwd=d)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads((d / "r.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_each_capture_filter_selects_exactly_the_evidence_frames(zeek_contract):
    checked = 0
    for f in zeek_contract["findings"]:
        for capture, flt in capture_filters(f["evidence"]):
            want = sorted({e["frame"] for e in f["evidence"] if e.get("capture") == capture and e.get("frame")})
            assert tshark_frames(capture, flt) == want, (f["title"], flt)
            checked += 1
        if checked >= 40:
            break
    assert checked >= 40


def test_row_and_conversation_filters_on_a_real_capture(zeek_contract):
    f = next(f for f in zeek_contract["findings"] if f["check"] == "credentials.default"
             and len(set(f["assets"])) == 2 and (f.get("detail") or {}).get("port"))
    e = f["evidence"][0]
    assert tshark_frames(e["capture"], frames_filter([e["frame"]])) == [e["frame"]]
    conv = conversation_filter(f["assets"], f["detail"]["port"])
    got = tshark_frames(e["capture"], conv)
    assert e["frame"] in got and got           # the conversation holds the evidence frame


def test_filters_are_built_from_numbers_and_addresses_only():
    assert frames_filter([3, 1, 3, "7", None, True, -2]) == "frame.number in {1, 3}"
    assert frames_filter([9]) == "frame.number == 9" and frames_filter(["x"]) == ""
    assert conversation_filter(["10.0.0.1", "10.0.0.2"], 502) == \
        "ip.addr == 10.0.0.1 && ip.addr == 10.0.0.2 && (tcp.port == 502 || udp.port == 502)"
    assert conversation_filter(["fe80::1", "FE80::2"]) == "ipv6.addr == fe80::1 && ipv6.addr == fe80::2"
    assert conversation_filter(["10.0.0.1", "10.0.0.1 || frame"]) == ""       # not an address: no filter
    assert conversation_filter(["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == ""   # not one conversation
    assert conversation_filter(["10.0.0.1", "fe80::1"]) == ""
    assert conversation_filter(["10.0.0.1", "10.0.0.2"], "502) || (1") == "ip.addr == 10.0.0.1 && ip.addr == 10.0.0.2"
