"""Documentation generated from the declarations (observation kinds, protocol specs, the typed
contract), so the docs cannot drift from the code: `python -m plantguard.docs_gen` rewrites them,
and tests/test_docs.py fails when a shipped page differs from what this module generates."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from plantguard.contract import json_schema
from plantguard.observation_kinds import KINDS, keys_of
from plantguard.protocols.registry import protocol_specs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _type_text(t) -> str:
    text = t.__name__ if isinstance(t, type) else str(t).replace("NoneType", "None")
    return text.replace(" | ", " or ")


def observations_md() -> str:
    """docs/observations.md: kind × keys × producing protocols × consuming stages."""
    producers = {k: sorted(s.name for s in protocol_specs() if k in s.observes) for k in KINDS}
    out = ["# Observation kinds", "",
           "Generated from `src/plantguard/observation_kinds.py` and the protocols' `SPEC.observes` by",
           "`python -m plantguard.docs_gen`; `tests/test_docs.py` keeps it equal. What a decoder may put",
           "in `Observation.data`, per kind: a key not listed here fails `tests/test_observation_kinds.py`.", "",
           "| kind | subject | produced by | read by |", "|---|---|---|---|"]
    for k, kind in KINDS.items():
        out.append(f"| `{k}` | {kind.subject} | {', '.join(producers[k]) or '—'} | "
                   f"{', '.join(f'`{c}`' for c in kind.consumers) or 'evidence only'} |")
    for k in KINDS:
        out += ["", f"## `{k}`", "", "| key | type | meaning |", "|---|---|---|"]
        for key, (t, meaning) in keys_of(k).items():
            out.append(f"| `{key}` | {_type_text(t)} | {meaning} |")
    return "\n".join(out) + "\n"


def contract_schema() -> str:
    """docs/contract.schema.json: the JSON Schema of `assess --format json`."""
    return json.dumps(json_schema(), indent=1, ensure_ascii=False) + "\n"


PAGES = {"observations.md": observations_md, "contract.schema.json": contract_schema}


def main(argv: list[str] | None = None) -> int:
    for name, build in PAGES.items():
        (DOCS / name).write_text(build(), encoding="utf-8")
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
