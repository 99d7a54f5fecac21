"""The docs build: `mkdocs build --strict` (every link and anchor resolved, every page of docs/ in
the nav of mkdocs.yml) succeeds into a temporary folder and holds the generated reference pages,
and the generated man page renders with groff without a warning."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _needed(what: str, available: bool) -> None:
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing (CI installs it: pyproject.toml test extra, .ci/run)")
        pytest.skip(f"{what} is not installed")


def test_mkdocs_strict_build_succeeds(tmp_path):
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        _needed("mkdocs", False)
    out = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    for page in ("index", "first-hour", "checks", "site-file", "contract", "cli"):
        html = out / ("index.html" if page == "index" else f"{page}/index.html")
        assert html.is_file(), f"{page} missing from the built site"
    assert "services.insecure" in (out / "checks" / "index.html").read_text(encoding="utf-8")
    for static in ("contract.schema.json", "openapi.json", "plantguard.1"):
        assert (out / static).is_file(), f"{static} is not published with the site"


def test_man_page_renders_without_warnings():
    _needed("groff", shutil.which("groff") is not None)
    run = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-bcu", str(ROOT / "docs" / "plantguard.1")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and not run.stderr, run.stderr
    assert "plantguard assess" in run.stdout and "fail" in run.stdout
