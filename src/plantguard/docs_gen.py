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


def _api_app():
    from plantguard.server.app import Central, create_app
    return create_app(Central(engine=None, ca_cert="", ca_key=""))


def route_permissions() -> list[tuple[str, str, str | None, str]]:
    """(method, path, permission or None, summary) of every API route, in the app's order."""
    from plantguard.server.api.common import Require
    from plantguard.server.app import api_routes

    def permission(dependant) -> str | None:
        for d in dependant.dependencies:
            if isinstance(d.call, Require):
                return d.call.permission
            found = permission(d)
            if found:
                return found
        return None
    return [(m, r.path, permission(r.dependant), r.summary or "") for r in api_routes() for m in sorted(r.methods)]


def api_md() -> str:
    """docs/api.md: every REST route with the permission it declares and the roles that hold it."""
    from plantguard.server import roles
    out = ["# Central server REST API", "",
           "Generated from the routes of `plantguard server run` and `src/plantguard/server/roles.py` by",
           "`python -m plantguard.docs_gen`; `tests/test_docs.py` keeps it equal. The full description is",
           "[`openapi.json`](openapi.json) (also served at `/openapi.json`). See [`central.md`](central.md).", "",
           "| method | path | permission | roles | what |", "|---|---|---|---|---|"]
    for method, path, perm, summary in route_permissions():
        if not path.startswith("/api/"):
            continue                  # the console's pages: docs/central.md
        if perm is None:
            who, perm_text = f"anyone: {roles.PUBLIC.get(path, 'NOT DECLARED')}", "public"
        else:
            who = ", ".join(r for r in roles.ALL_ROLES if roles.allows(r, perm))
            perm_text = f"`{perm}`"
        out.append(f"| {method} | `{path}` | {perm_text} | {who} | {summary} |")
    out += ["", "## Permissions", "", "| permission | lowest role | meaning |", "|---|---|---|"]
    out += [f"| `{p.name}` | {p.role} | {p.description} |" for p in roles.PERMISSIONS.values()]
    return "\n".join(out) + "\n"


def openapi_json() -> str:
    """docs/openapi.json: the OpenAPI document the server publishes."""
    return json.dumps(_api_app().openapi(), indent=1, ensure_ascii=False) + "\n"


PAGES = {"observations.md": observations_md, "contract.schema.json": contract_schema, "api.md": api_md,
         "openapi.json": openapi_json}


def main(argv: list[str] | None = None) -> int:
    for name, build in PAGES.items():
        (DOCS / name).write_text(build(), encoding="utf-8")
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
