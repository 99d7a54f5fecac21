"""Self-contained HTML report: one file, inline CSS and SVG, no scripts, no external resources,
and a Content-Security-Policy that allows none (default-src 'none'), so even an injected script
would not run. Jinja2 autoescaping is on for everything and every {{ value }} passes
util.sanitize.html_text first (control characters made visible); the SVG is built with the same
escaped text (zones_svg). Jinja2 is imported when a report is rendered, not when the format is
listed."""
from __future__ import annotations

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


def render_html(contract: dict) -> str:
    ctx = cx.build(contract)
    graph = zone_graph(contract)
    return _env().get_template("report.html.j2").render(
        c=ctx, graph=graph, zones_svg=render_svg(graph), css=_css(), attack_notice=ATTACK_NOTICE,
        severities=cx.SEVERITY_ORDER[:4], status_words=cx.STATUS_WORDS)


HTML = register(Renderer("html", "html", "text/html", render_html, ("assess",)))
