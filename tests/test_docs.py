"""The docs say what the code does: generated pages equal what plantguard.docs_gen builds from
the declarations today."""
from __future__ import annotations

from pathlib import Path

import pytest

from plantguard import docs_gen

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", sorted(docs_gen.PAGES))
def test_generated_page_is_current(page):
    shipped = (DOCS / page).read_text(encoding="utf-8")
    assert shipped == docs_gen.PAGES[page](), f"docs/{page} is stale: run python -m plantguard.docs_gen"
