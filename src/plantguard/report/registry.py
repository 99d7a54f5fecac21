"""Which output formats exist: every renderer is declared beside its render function and
registered here; the report entry point and the command line's `--format` choices and file
extensions come from this one list.

A renderer serves one or more targets, the command outputs it can render:
  "assess"     the assessment contract (dict)                -> str or bytes (plantguard assess, demo)
  "inventory"  a report.inventory.InventoryReport            -> str   (plantguard inventory)
  "plan"       the patch plan (list of dicts, plan.patching)  -> str   (plantguard intel plan)

    register(Renderer("toy", "txt", "text/plain", render_toy, ("assess",)))

makes `plantguard assess --format toy` work. A renderer whose output is not for a terminal (a web
page, a PDF) says file_only: the command then writes plantguard-report.EXT unless -o says otherwise.
One that needs something the machine may lack gives a `check` the command calls before the work;
it and `render` raise RenderError with one line for the user. The built-in renderers are loaded on first use and
listed in BUILTIN_MODULES order; renderers registered by other code follow, in registration order.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

TARGETS = ("assess", "inventory", "plan")
TARGET_WORDS = {"assess": "report", "inventory": "inventory", "plan": "patch plan"}

# the modules that declare the built-in renderers, in the order the formats are offered
BUILTIN_MODULES = (
    "plantguard.report.html",
    "plantguard.report.markdown",
    "plantguard.report.render",
    "plantguard.report.sarif",
    "plantguard.report.tabular",
    "plantguard.report.pdf",
    "plantguard.report.inventory_table",
    "plantguard.report.inventory",
    "plantguard.report.inventory_csv",
    "plantguard.report.patch_plan",
)


class RenderError(Exception):
    """A report that cannot be rendered here (e.g. no Chromium for the PDF): one line for the user."""


@dataclass(frozen=True)
class Renderer:
    name: str                       # the --format value
    extension: str                  # file extension, without the dot
    media_type: str
    render: Callable[[Any], str | bytes]    # the target's document -> the output text (or bytes)
    targets: tuple[str, ...]        # which command outputs it serves (TARGETS)
    file_only: bool = False         # not for a terminal: written to a file by default
    check: Callable[[], None] | None = None     # raises RenderError when it cannot render here

    def __post_init__(self) -> None:
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        object.__setattr__(self, "targets", targets)
        if not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"renderer name must be lower case, not {self.name!r}")
        unknown = [t for t in targets if t not in TARGETS]
        if unknown or not targets:
            raise ValueError(f"renderer {self.name!r}: targets must be among {', '.join(TARGETS)}, not {targets!r}")
        if not callable(self.render):
            raise TypeError(f"renderer {self.name!r}: render is not callable")


_registry: dict[tuple[str, str], Renderer] = {}     # (target, name) -> renderer, in registration order
_state = {"loaded": False, "loading": False}


def register(renderer: Renderer) -> Renderer:
    """Add a renderer for each of its targets; returns it. A name already taken for a target
    by a different renderer is an error (registering the same renderer again is not)."""
    for target in renderer.targets:
        taken = _registry.get((target, renderer.name))
        if taken is not None and taken != renderer:
            raise ValueError(f"a {TARGET_WORDS[target]} format {renderer.name!r} is already registered")
    for target in renderer.targets:
        _registry[(target, renderer.name)] = renderer
    return renderer


def unregister(name: str, target: str | None = None) -> None:
    """Remove the renderer `name` for `target` (for every target when None)."""
    for key in [k for k in _registry if k[1] == name and target in (None, k[0])]:
        del _registry[key]


def renderers(target: str) -> tuple[Renderer, ...]:
    """The renderers for `target`: built-ins first (BUILTIN_MODULES order), then the others."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    _load_builtins()
    found = [r for (t, _), r in _registry.items() if t == target]
    return tuple(sorted(found, key=_rank))      # stable: registration order within a module


def names(target: str) -> tuple[str, ...]:
    return tuple(r.name for r in renderers(target))


def renderer(name: str, target: str) -> Renderer:
    """The renderer `name` for `target`; ValueError naming the choices when there is none."""
    found = {r.name: r for r in renderers(target)}
    if name not in found:
        raise ValueError(f"unknown {TARGET_WORDS[target]} format {name!r}; choose one of {', '.join(found)}")
    return found[name]


def _rank(r: Renderer) -> int:
    module = getattr(r.render, "__module__", None)
    return BUILTIN_MODULES.index(module) if module in BUILTIN_MODULES else len(BUILTIN_MODULES)


def _load_builtins() -> None:
    """Import the modules that declare the built-in renderers (once; an import error is raised)."""
    if _state["loaded"] or _state["loading"]:
        return
    _state["loading"] = True
    try:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _state["loaded"] = True
    finally:
        _state["loading"] = False
