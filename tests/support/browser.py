"""A real browser for the console's tests: Playwright for Python driving the Debian `chromium`
package (no browser download), 1366×768, trusting exactly the test server's certificate (its public
key pinned with --ignore-certificate-errors-spki-list, not every certificate error ignored), every
request the pages make logged, and a full-page screenshot of each page visited kept under
test-artifacts/console/ at the repo root. Without Playwright or Chromium the test skips; under CI
it fails."""
from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "test-artifacts" / "console"
VIEWPORT = {"width": 1366, "height": 768}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _missing(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        _missing("Chromium is not installed (Debian: apt-get install -y chromium)")
    return path


def spki_pin(cert_pem: Path) -> str:
    """base64 sha256 of the certificate's SubjectPublicKeyInfo, as Chromium's pin list wants it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Console:
    """Pages of one browser on one server origin: each page's requests logged, screenshots numbered."""

    def __init__(self, browser, origin: str, artefacts: Path):
        self.browser, self.origin, self.artefacts = browser, origin.rstrip("/"), artefacts
        self.requests: list[str] = []
        self.shots: list[Path] = []

    def new_page(self):
        context = self.browser.new_context(viewport=VIEWPORT, base_url=self.origin)
        page = context.new_page()
        page.on("request", lambda r: self.requests.append(r.url))
        return page

    def visit(self, page, path: str, name: str):
        """Go to `path` and keep its screenshot; the answer's status is returned."""
        response = page.goto(path)
        self.shot(page, name)
        return response.status if response else None

    def shot(self, page, name: str) -> Path:
        path = self.artefacts / f"{len(self.shots) + 1:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def foreign_requests(self) -> list[str]:
        """Requests to anywhere but this server (there must be none: the console works offline)."""
        return [u for u in self.requests if not (u == self.origin or u.startswith(self.origin + "/"))]


@contextmanager
def console_browser(origin: str, server_cert: Path, artefacts: Path = ARTEFACTS):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    exe = chromium_path()
    if artefacts.exists():
        shutil.rmtree(artefacts)
    artefacts.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe,
                                    args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(server_cert)}"])
        try:
            yield Console(browser, origin, artefacts)
        finally:
            browser.close()
