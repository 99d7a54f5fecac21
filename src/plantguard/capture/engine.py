"""The packet engine entry point. analyze() turns captures into an AnalysisResult.
(Columnar two-tier implementation pending; for now the reference path.)"""
from __future__ import annotations

from plantguard.capture.reference import analyze_reference


def analyze(paths, progress=None):
    return analyze_reference(paths, progress)
