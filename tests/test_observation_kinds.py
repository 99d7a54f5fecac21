"""Decoders say only what observation_kinds.py declares: every key of every Observation seen on
the shared captures and the demo plant is declared for its kind, with a matching type, and every
kind a protocol emits is in its SPEC.observes; each declared reader really reads that kind."""
from __future__ import annotations

import types
import typing
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import SHARED_DATA, shared_path
from plantguard.capture.engine import analyze
from plantguard.observation_kinds import KINDS, keys_of
from plantguard.protocols.registry import spec_of

SRC = Path(__file__).resolve().parents[1] / "src" / "plantguard"
SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")


def _accepts(t, value) -> bool:
    allowed = typing.get_args(t) if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union else (t,)
    allowed = tuple(type(None) if a is None else a for a in allowed)
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


@pytest.fixture(scope="module")
def seen():
    shared_path("pcaps")
    caps = sorted(p for p in (SHARED_DATA / "pcaps").rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    found = defaultdict(dict)          # kind -> key -> (value, proto, capture)
    emitted = defaultdict(set)         # proto -> kinds
    for p in caps:
        for o in analyze([str(p)]).observations:
            emitted[o.proto].add(o.kind)
            for k, v in o.data.items():
                found[o.kind].setdefault((k, type(v)), (v, o.proto, p.name))
    return found, emitted


@pytest.mark.slow
def test_every_observed_key_is_declared_with_its_type(seen):
    found, _ = seen
    problems = []
    for kind, items in found.items():
        declared = keys_of(kind)
        for (key, _t), (value, proto, cap) in items.items():
            if key not in declared:
                problems.append(f"{kind}.{key} (from {proto} in {cap}) is not declared")
            elif not _accepts(declared[key][0], value):
                problems.append(f"{kind}.{key}={value!r} (from {proto} in {cap}) is not {declared[key][0]}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_emitted_kind_is_in_the_protocols_spec(seen):
    _, emitted = seen
    for proto, kinds in emitted.items():
        assert kinds <= set(spec_of(proto).observes), (proto, kinds - set(spec_of(proto).observes))


def test_declared_readers_read_their_kind():
    for kind in KINDS.values():
        for module in kind.consumers:
            text = (SRC / (module.replace(".", "/") + ".py")).read_text()
            assert f'"{kind.name}"' in text, (kind.name, module)
