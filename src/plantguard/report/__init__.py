"""Reports rendered from the assessment contract (ARCHITECTURE §5): HTML, Markdown, JSON, CSV, SARIF."""
from plantguard.report.render import FORMATS, render

__all__ = ["FORMATS", "render"]
