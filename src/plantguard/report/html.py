"""Self-contained HTML report: one file, inline CSS, SVG and our own script (templates/report.js:
filter, search and sort the findings, copy Wireshark filters, print every finding), no external
resources, and a Content-Security-Policy that allows nothing else (default-src 'none'; the script
by its sha256 only), so even an injected script would not run. Jinja2 autoescaping is on for
everything and every {{ value }} passes util.sanitize.html_text first (control characters made
visible); the SVG is built with the same escaped text (zones_svg). Jinja2 is imported when a
report is rendered, not when the format is listed."""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from plantguard.compliance.catalog import ATTACK_NOTICE
from plantguard.report import context as cx
from plantguard.report.registry import Renderer, register
from plantguard.report.zones_svg import render_svg, zone_graph
from plantguard.util.sanitize import jinja_finalize

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup


@lru_cache(maxsize=1)
def _env() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined
    env = Environment(loader=PackageLoader("plantguard.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=jinja_finalize)
    env.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    return env


@lru_cache(maxsize=1)
def _css() -> Markup:
    from markupsafe import Markup
    # our own stylesheet: trusted, and it must not be entity-escaped inside <style>
    return Markup(resources.files("plantguard.report").joinpath("templates", "report.css").read_text(encoding="utf-8").replace("</", ""))


@lru_cache(maxsize=1)
def _script() -> tuple[Markup, str]:
    """Our own script, and the CSP source that allows exactly it (its sha256)."""
    from markupsafe import Markup
    js = resources.files("plantguard.report").joinpath("templates", "report.js").read_text(encoding="utf-8")
    if "</" in js:      # it would end the <script> element early
        raise ValueError("report.js must not contain '</'")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return Markup(js), f"sha256-{digest}"


def render_html(contract: dict, *, all_open: bool = False) -> str:
    """The report; with all_open every finding is expanded (for print, where no one can click)."""
    ctx = cx.build(contract)
    graph = zone_graph(contract)
    script, script_hash = _script()
    return _env().get_template("report.html.j2").render(
        c=ctx, graph=graph, zones_svg=render_svg(graph), css=_css(), attack_notice=ATTACK_NOTICE,
        severities=cx.SEVERITY_ORDER[:4], status_words=cx.STATUS_WORDS, script=script, script_hash=script_hash,
        all_open=all_open)


HTML = register(Renderer("html", "html", "text/html", render_html, ("assess",)))
