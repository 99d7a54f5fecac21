"""Reports rendered from the assessment contract (ARCHITECTURE §5): HTML, Markdown, JSON, CSV, SARIF,
and the inventory and patch-plan outputs; report.registry lists every format."""
from typing import Any

from plantguard.report.render import formats, render

__all__ = ["FORMATS", "formats", "render"]


def __getattr__(name: str) -> Any:
    if name == "FORMATS":       # read from the registry each time (renderers can be added at run time)
        return formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
