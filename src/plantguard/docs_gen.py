"""Documentation generated from the declarations (observation kinds, protocol specs, the typed
contract, the checks' metadata, the site-file schema, the command line), so the docs cannot drift
from the code: `python -m plantguard.docs_gen` rewrites them,
and tests/test_docs.py fails when a shipped page differs from what this module generates."""
from __future__ import annotations

import inspect
import json
import re
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from plantguard.contract import json_schema
from plantguard.observation_kinds import KINDS, keys_of
from plantguard.protocols.registry import protocol_specs

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE_SITE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"


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


def _cell(text) -> str:
    """Text fit for one Markdown table cell: one line, '|' escaped, and '<', '>', '&' and '*' shown
    as written (our own declarations, but a help text may say <FILE> or a*b)."""
    text = " ".join(str(text).split())
    for ch, esc in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("*", "\\*"), ("|", "\\|")):
        text = text.replace(ch, esc)
    return text


def _code_text(text) -> str:
    """Text for a code span in a table cell: one line, '|' escaped (entities would show as typed)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _generated_by(*sources: str) -> str:
    return (f"Generated from {', '.join(f'`{s}`' for s in sources)} by `python -m plantguard.docs_gen`; "
            "`tests/test_docs.py` keeps it equal.")


def _doc_paragraph(obj) -> str:
    """The first paragraph of an object's docstring, on one line."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


# -- docs/checks.md ---------------------------------------------------------------------------
_FRAMEWORK_COLUMNS = (("iec62443-3-3", "IEC 62443-3-3"), ("nist-800-53r5", "NIST SP 800-53 Rev. 5"),
                      ("nist-800-82r3-ot", "NIST SP 800-82 Rev. 3 (OT overlay)"),
                      ("iso27001-2022", "ISO/IEC 27001:2022"))


def _controls_of(meta, catalog) -> list[tuple[str, list[str]]]:
    """(framework title, "ID title" per control) for each framework the check gives evidence for;
    800-82 lists the check's 800-53 controls that the OT overlay keeps."""
    out = []
    for fw, title in _FRAMEWORK_COLUMNS:
        if fw == "nist-800-82r3-ot":
            ids = [c for c in meta.controls.get("nist-800-53r5", ()) if catalog.in_ot_overlay(c)]
            known = "nist-800-53r5"
        else:
            ids, known = list(meta.controls.get(fw, ())), fw
        if ids:
            out.append((title, [_titled(catalog, known, c) for c in ids]))
    return out


def _titled(catalog, fw: str, cid: str) -> str:
    ctl = catalog.control(fw, cid)
    return f"{cid} {ctl.title}" if ctl is not None else cid


def _needs(meta) -> str:
    needs = [what for flag, what in ((meta.needs_site, "a site file (`--site`)"),
                                     (meta.needs_store, "the store with imported intelligence (`intel import`, `--db`)"))
             if flag]
    return " and ".join(needs) or "the captures alone"


def checks_md() -> str:
    """docs/checks.md: every registered check with its metadata, grouped by practice."""
    from plantguard.checks.practices import PRACTICES
    from plantguard.checks.registry import all_checks
    from plantguard.compliance import load_catalog
    catalog = load_catalog()
    checks = all_checks()
    out = ["# Check catalogue", "",
           _generated_by("src/plantguard/checks/", "src/plantguard/data/compliance/"),
           "Every check `plantguard assess` runs: what it looks at, the severity of a FAIL, the controls",
           "it gives evidence for and what it needs. A check that cannot decide on the input is listed",
           "under *not run* in the report, with the reason.", "",
           "| check | title | severity | practice | needs |", "|---|---|---|---|---|"]
    for meta, _fn in checks:
        out.append(f"| [`{meta.id}`](#{_anchor(meta.id)}) | {_cell(meta.title)} | {meta.severity} | "
                   f"{_cell(PRACTICES[meta.practice][0])} | {_cell(_needs(meta))} |")
    for meta, fn in checks:
        looks = " ".join(x for x in (_doc_paragraph(sys.modules[fn.__module__]), _doc_paragraph(fn)) if x)
        out += ["", f"## `{meta.id}`", "", f"**{_cell(meta.title)}**", "",
                "| | |", "|---|---|",
                f"| severity of a fail | {meta.severity} |",
                (f"| practice | {_cell(PRACTICES[meta.practice][0])} (`{meta.practice}`): "
                 f"{_cell(PRACTICES[meta.practice][1])} |"),
                f"| looks at | {_cell(looks)} (`src/{fn.__module__.replace('.', '/')}.py`) |",
                f"| needs | {_cell(_needs(meta))} |",
                f"| why it matters | {_cell(meta.risk)} |",
                f"| remediation | {_cell(meta.remediation)} |"]
        out += [f"| {title} | {_cell('; '.join(ids))} |" for title, ids in _controls_of(meta, catalog)]
        if meta.attack:
            out.append(f"| MITRE ATT&CK for ICS | {_cell('; '.join(_titled(catalog, 'attack-ics', t) for t in meta.attack))} |")
        out.append(f"| roadmap | {_cell(meta.action)} (effort {meta.effort}, {_cell(meta.owner)}) |")
    return "\n".join(out) + "\n"


def _anchor(title: str) -> str:
    """The heading id MkDocs (Python-Markdown toc) gives `## `title``."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


# -- docs/site-file.md ------------------------------------------------------------------------
def _schema_type(s: dict) -> str:
    if "enum" in s:
        return " \\| ".join(f"`{v if not isinstance(v, bool) else str(v).lower()}`" for v in s["enum"])
    if "anyOf" in s and "type" not in s:
        if {"type": "string"} in s["anyOf"]:
            return "string"             # the alternatives only narrow a string (conduit allow entries)
        return " or ".join(dict.fromkeys(_schema_type(x) for x in s["anyOf"]))
    t = s.get("type", "any")
    if t == "array":
        return f"list of {_schema_type(s['items'])}"
    if t == "object":
        return "mapping"
    return "date (YYYY-MM-DD)" if s.get("format") == "date" else t


def _schema_rows(props: dict, required: list, prefix: str, rows: list) -> None:
    for key, s in props.items():
        path = f"{prefix}{key}"
        default = s.get("default")
        rows.append(f"| `{path}` | {_schema_type(s)} | {'yes' if key in required else ''} | "
                    f"{'' if default is None else f'`{json.dumps(default)}`'} | {_cell(s.get('description', ''))} |")
        item = s.get("items", s)
        if item.get("type") == "object" and "properties" in item:
            _schema_rows(item["properties"], item.get("required", []), f"{path}{'[]' if 'items' in s else ''}.", rows)


def site_file_md() -> str:
    """docs/site-file.md: every key of the site file from its JSON Schema, and the example file."""
    from plantguard.site import site_schema
    from plantguard.site.vocabulary import ASSET_ROLES, ATTESTATION_IDS, protocol_names
    schema = site_schema()
    rows: list[str] = []
    _schema_rows(schema["properties"], schema.get("required", []), "", rows)
    out = ["# The site file", "",
           _generated_by("src/plantguard/site/schema.py", "src/plantguard/site/vocabulary.py", "examples/site.yaml"),
           "The site file tells `plantguard assess --site site.yaml` what the plant should look like: its",
           "zones and conduits, egress rules, engineering stations, inventory, maintenance windows and",
           "attestations. Every key is optional; `plantguard site init` drafts one from traffic and",
           "`plantguard site check` validates one (a mistake is one line: `FILE:LINE: field: problem`).",
           "The same schema is shipped for editors as `src/plantguard/data/site.schema.json`.", "",
           "## Keys", "", "`[]` marks the entries of a list.", "",
           "| key | type | required | default | description |", "|---|---|---|---|---|", *rows, "",
           "`allow` entries of a conduit: `tcp/PORT`, `udp/PORT`, `tcp/LOW-HIGH`, `any`, or one of these",
           "protocol names (a name matches the protocol whatever the port; when no protocol is",
           "recognised, its usual ports): " + ", ".join(f"`{n}`" for n in sorted(protocol_names())) + ".", "",
           "Asset roles: " + ", ".join(f"`{r}`" for r in ASSET_ROLES) + ".", "",
           "Attestation IDs: " + ", ".join(f"`{a}`" for a in ATTESTATION_IDS) + ".", "",
           "## Example", "", "`examples/site.yaml`:", "", "```yaml",
           EXAMPLE_SITE.read_text(encoding="utf-8").rstrip("\n"), "```"]
    return "\n".join(out) + "\n"


# -- docs/contract.md -------------------------------------------------------------------------
def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """The models reachable from `root`, in the order its fields name them."""
    seen: list[type[BaseModel]] = []

    def visit(ann) -> None:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if ann not in seen:
                seen.append(ann)
                for f in ann.model_fields.values():
                    visit(f.annotation)
            return
        for a in typing.get_args(ann):
            visit(a)
    visit(root)
    return seen


def _ann_text(ann) -> str:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return f"[{ann.__name__}](#{ann.__name__.lower()})"
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin in (list, tuple, set):
        return f"list of {_ann_text(args[0])}" if args else "list"
    if origin is dict:
        return f"map {_ann_text(args[0])} → {_ann_text(args[1])}" if args else "map"
    if args and origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if args:
        return " or ".join(_ann_text(a) for a in args)
    if ann is type(None):
        return "null"
    if ann is typing.Any:
        return "any"
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
        getattr(ann, "__name__", str(ann)), getattr(ann, "__name__", str(ann)))


def contract_md() -> str:
    """docs/contract.md: one table per model of the JSON contract (`assess --format json`)."""
    from plantguard.contract import Assessment
    out = ["# The JSON contract", "",
           _generated_by("src/plantguard/contract.py"),
           "What `plantguard assess --format json` writes, one table per record, starting from the",
           "document itself. The machine-readable form is the JSON Schema",
           "[`contract.schema.json`](contract.schema.json). The contract only grows: fields are added,",
           "never renamed or removed. A record marked *open* may carry keys besides those listed."]
    for model in _models(Assessment):
        extra = model.model_config.get("extra")
        out += ["", f"## {model.__name__}", ""]
        if model.__doc__:
            out += [_doc_paragraph(model), ""]
        if extra == "allow":
            out += ["*open*: other keys pass through unchanged.", ""]
        out += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
        for name, f in model.model_fields.items():
            key = f.alias or name
            required = f.is_required()
            if required:
                default = ""
            elif f.default_factory is not None:
                default = f"`{json.dumps(f.default_factory())}`"
            else:
                default = f"`{json.dumps(f.default)}`"
            out.append(f"| `{key}` | {_ann_text(f.annotation)} | {'yes' if required else ''} | {default} | "
                       f"{_cell(f.description or '')} |")
    return "\n".join(out) + "\n"


# -- docs/cli.md and docs/plantguard.1 ---------------------------------------------------------
def _param_names(p) -> str:
    return ", ".join(f"`{n}`" for n in p.names)


def cli_md() -> str:
    """docs/cli.md: every command of the Typer app with its arguments and options."""
    from plantguard.cli.command_tree import commands
    cmds = commands()
    out = ["# Command-line reference", "", _generated_by("src/plantguard/cli/"),
           "The same text is in the man page [`plantguard.1`](plantguard.1) (`man ./docs/plantguard.1`)",
           "and, per command, in `plantguard COMMAND --help`.", "",
           "Exit codes: 0 fine, 1 findings at or above `--fail-on` (or an SBOM that is not complete), 2 a",
           "usage or input error (one line on stderr), 130 interrupted."]
    for c in cmds:
        level = "#" * min(2 + c.path.count(" ") - 1, 4) if c.path.count(" ") else "##"
        out += ["", f"{level} `{c.path}`", "", c.help or ""]
        if c.subcommands:
            out += ["", "Commands: " + ", ".join(f"`{s}`" for s in c.subcommands) + "."]
        if c.params:
            out += ["", "| argument or option | value | required | default | help |", "|---|---|---|---|---|"]
            for p in c.params:
                value = p.type + (" (repeatable)" if p.many and p.kind == "option" else " ..." if p.many else "")
                out.append(f"| {_param_names(p)} | {_cell(value)} | {'yes' if p.required else ''} | "
                           f"{'' if p.default is None else f'`{_code_text(p.default)}`'} | {_cell(p.help)} |")
    return "\n".join(l.rstrip() for l in out) + "\n"


def _roff(text: str) -> str:
    """Text safe in a roff line: backslashes, hyphens and a leading dot or quote escaped, and
    characters beyond ASCII written as groff's \\[uXXXX] (a man page has no declared encoding)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    return "\\&" + text if text[:1] in (".", "'") else text


def man_page() -> str:
    """docs/plantguard.1: the man page, from the same command data as docs/cli.md."""
    from plantguard import __version__
    from plantguard.cli.command_tree import commands
    cmds = commands()
    out = [f'.TH PLANTGUARD 1 "" "plantguard {__version__}" "User Commands"', ".SH NAME",
           "plantguard \\- " + _roff(cmds[0].help.removeprefix("plantguard: ")), ".SH SYNOPSIS",
           ".B plantguard", "\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]", ".SH DESCRIPTION",
           _roff("plantguard is passive: inventory and assess never send a packet. Exit codes: 0 fine, 1 findings "
                 "at or above --fail-on, 2 a usage or input error, 130 interrupted."), ".SH COMMANDS"]
    for c in cmds[1:]:
        out += [f".SS {_roff(c.path)}", _roff(c.help or "")]
        for p in c.params:
            names = ", ".join(f"\\fB{_roff(n)}\\fR" if p.kind == "option" else f"\\fI{_roff(n)}\\fR" for n in p.names)
            value = "" if p.type == "FLAG" or p.kind == "argument" else f" \\fI{_roff(p.type)}\\fR"
            extra = [w for w, on in (("required", p.required), ("repeatable", p.many and p.kind == "option")) if on]
            if p.default is not None:
                extra.append(f"default: {p.default}")
            help_text = p.help + (f" ({'; '.join(extra)})" if extra else "")
            out += [".TP", names + value, _roff(help_text) if help_text else "\\&"]
    out += [".SH SEE ALSO", _roff("The documentation in docs/ (mkdocs build writes it as a site).")]
    return "\n".join(out) + "\n"


# -- docs/probe-catalogue.md ------------------------------------------------------------------
def probe_catalogue_md() -> str:
    """Every probe query and every operation the validator lets leave, from their declarations."""
    from plantguard.probe.catalogue import CATALOGUE, FORM, SILENT
    from plantguard.probe.queries import all_queries, short_name
    from plantguard.protocols.registry import spec_of
    out = ["# Probe catalogue", "", _generated_by("src/plantguard/probe/queries/", "src/plantguard/probe/catalogue.py"),
           "", "`plantguard probe` sends only these queries, and the validator lets a frame leave only when",
           "plantguard's own passive decoder reads nothing in it but the operations listed for its protocol",
           "below (code and name as the decoder reports them). How the probe stays safe:",
           "[probe.md](probe.md).", "", "## Queries", "",
           "| query | --protocols | transport | what it asks | what it can learn |", "|---|---|---|---|---|"]
    for q in all_queries():
        where = f"{q.transport}/{q.port}" if q.port else f"layer 2 (EtherType 0x{q.ethertype:04X})"
        out.append(f"| `{q.id}` | {short_name(q.protocol)} | {where} | {_cell(q.title)} | {_cell(q.reads)} |")
    out += ["", "## Operations allowed to leave", "",
            "| protocol | code | operation | further test |", "|---|---|---|---|"]
    for proto, entries in sorted(CATALOGUE.items()):
        title = spec_of(proto).title
        for e in entries:
            test = _doc_paragraph(e.detail) if e.detail else ""
            out.append(f"| {_cell(title)} | `{_code_text(e.code)}` | {_cell(e.name)} | {_cell(test)} |")
    out += ["", "Frames with no operation that may still leave (connection set-up), and frames whose form is",
            "checked beyond the decoder:", ""]
    for proto, fn in sorted({**SILENT, **FORM}.items()):
        out.append(f"- {spec_of(proto).title}: {_doc_paragraph(fn)}")
    return "\n".join(out) + "\n"


PAGES = {"observations.md": observations_md, "contract.schema.json": contract_schema, "api.md": api_md,
         "openapi.json": openapi_json, "checks.md": checks_md, "site-file.md": site_file_md,
         "contract.md": contract_md, "cli.md": cli_md, "plantguard.1": man_page,
         "probe-catalogue.md": probe_catalogue_md}


def shipped_site_schema() -> str:
    """src/plantguard/data/site.schema.json: the site-file schema shipped for editors (it lists the
    protocol names, so a new protocol module changes it)."""
    from plantguard.site import site_schema
    return json.dumps(site_schema(), indent=1, ensure_ascii=False) + "\n"


# generated files that ship inside the package rather than in docs/
SHIPPED = {Path(__file__).resolve().parent / "data" / "site.schema.json": shipped_site_schema}


def main(argv: list[str] | None = None) -> int:
    for name, build in PAGES.items():
        (DOCS / name).write_text(build(), encoding="utf-8")
        print(f"wrote docs/{name}")
    for path, build in SHIPPED.items():
        path.write_text(build(), encoding="utf-8")
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
