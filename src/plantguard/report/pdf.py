"""The report as PDF: the HTML report (every finding expanded) printed by headless Chromium, in a
temporary directory, with a timeout and no network. Chromium is found on PATH (chromium,
chromium-browser, google-chrome) or named by $PLANTGUARD_CHROMIUM; without it the renderer says so
in one line (RenderError) and suggests the HTML report printed from a browser."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from plantguard.report.html import render_html
from plantguard.report.registry import Renderer, RenderError, register

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
ENV = "PLANTGUARD_CHROMIUM"
TIMEOUT_S = 180
NO_CHROMIUM = (f"--format pdf needs Chromium (chromium, chromium-browser or google-chrome on PATH, or ${ENV}); "
               "none was found: use --format html and print the report from a browser")
# headless, and nothing that would reach the network: proxy to nowhere, no background services
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--disable-default-apps", "--proxy-server=127.0.0.1:9",
                 "--proxy-bypass-list=<-loopback>", "--run-all-compositor-stages-before-draw")


def find_chromium() -> str | None:
    """The Chromium to print with: $PLANTGUARD_CHROMIUM when set (an executable file, or None),
    else the first of BROWSERS on PATH."""
    named = os.environ.get(ENV)
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def check_chromium() -> None:
    """Before the work: RenderError when there is no Chromium to print with."""
    if find_chromium() is None:
        raise RenderError(NO_CHROMIUM)


def html_to_pdf(html: str, chromium: str | None = None, timeout: float = TIMEOUT_S) -> bytes:
    """The PDF Chromium prints of this page (A4 or Letter as Chromium's locale says, our print CSS)."""
    exe = chromium or find_chromium()
    if exe is None:
        raise RenderError(NO_CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="plantguard-pdf-") as tmp:
        page, out, profile = Path(tmp, "report.html"), Path(tmp, "report.pdf"), Path(tmp, "profile")
        page.write_text(html, encoding="utf-8")
        cmd = [exe, *CHROMIUM_ARGS, f"--user-data-dir={profile}", f"--print-to-pdf={out}", page.as_uri()]
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=tmp, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise RenderError(f"{exe}: printing the report to PDF took more than {timeout:.0f} s") from None
        except OSError as exc:
            raise RenderError(f"{exe}: cannot run Chromium to print the report ({exc.strerror or exc})") from None
        data = out.read_bytes() if out.is_file() else b""
        if p.returncode != 0 or not data.startswith(b"%PDF"):
            last = (p.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
            raise RenderError(f"{exe}: Chromium did not print the report (exit {p.returncode}: {last[:200]})")
        return data


def render_pdf(contract: dict) -> bytes:
    return html_to_pdf(render_html(contract, all_open=True))


PDF = register(Renderer("pdf", "pdf", "application/pdf", render_pdf, ("assess",), file_only=True,
                        check=check_chromium))
