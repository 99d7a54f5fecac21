"""The project's own scripts (tools/, benchmarks/) loaded as modules, so tests call their
functions instead of spawning them."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script(rel: str):
    """The module of ROOT/rel, registered in sys.modules under its file name (dataclasses and
    pickling in the script need that)."""
    path = ROOT / rel
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
