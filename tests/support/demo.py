"""The demo plant's assessment contract, made as tests/test_demo_assessment.py makes it, but
without vulnerability intelligence from whatever ./plantguard.db or $PLANTGUARD_DB holds."""
from __future__ import annotations

from pathlib import Path

import pytest


def demo_contract(tmp: Path) -> dict:
    from plantguard.assess import run_assessment
    from plantguard.capture.engine import analyze
    from plantguard.demo import build_demo
    from plantguard.site import load_site
    pcap, site = build_demo(tmp)
    with pytest.MonkeyPatch.context() as m:
        m.chdir(tmp)
        m.delenv("PLANTGUARD_DB", raising=False)
        return run_assessment(analyze([pcap]), load_site(site), db=None)
