"""The command line as data, read from the live Typer app: every command (nested groups
included), its help and its parameters. docs/cli.md and the man page docs/plantguard.1 are
written from it (plantguard.docs_gen), so they list exactly what `--help` shows."""
from __future__ import annotations

import enum
import inspect
import types
import typing
from dataclasses import dataclass, field

import typer

try:                            # Typer >= 0.2x carries its own copy of Click
    from typer import _click as click
except ImportError:             # older Typer runs on Click itself
    import click


@dataclass(frozen=True)
class Param:
    names: tuple[str, ...]       # "--site", "-o" ...; an argument's metavar alone
    kind: str                    # "argument" | "option"
    type: str                    # FLAG, PATH, html|md|json ..., TEXT, INTEGER ...
    help: str
    required: bool
    default: str | None          # as shown, or None when there is none
    many: bool                   # repeatable option, or an argument taking several values


@dataclass(frozen=True)
class Command:
    path: str                    # "plantguard site init"
    help: str
    params: tuple[Param, ...]
    subcommands: tuple[str, ...] = field(default=())


def commands(prog: str = "plantguard") -> list[Command]:
    """Every visible command of the app, depth first, in the order `--help` lists them."""
    from plantguard.cli import app
    root = typer.main.get_command(app)
    out: list[Command] = []
    _walk(root, prog, click.Context(root, info_name=prog), out)
    return out


def _walk(cmd, path: str, ctx, out: list[Command]) -> None:
    subs = []
    if hasattr(cmd, "list_commands"):         # a group (duck-typed: Typer's Click copy has no Group)
        subs = [n for n in cmd.list_commands(ctx) if not cmd.get_command(ctx, n).hidden]
    params = tuple(_param(p) for p in cmd.params if not getattr(p, "hidden", False) and p.name != "help")
    out.append(Command(path, _help(cmd), params, tuple(subs)))
    for name in subs:
        sub = cmd.get_command(ctx, name)
        _walk(sub, f"{path} {name}", click.Context(sub, info_name=name, parent=ctx), out)


def _help(cmd) -> str:
    text = inspect.cleandoc(cmd.help or cmd.short_help or "")
    return text.split("\f", 1)[0].strip()


def _param(p) -> Param:
    option = p.param_type_name == "option"
    names = tuple(p.opts + p.secondary_opts) if option else (p.name.upper(),)
    if option and p.is_flag:
        kind_text = "FLAG"
    else:
        kind_text = p.metavar or _type_text(p)
    many = bool(getattr(p, "multiple", False)) or p.nargs == -1
    return Param(names, "option" if option else "argument", kind_text,
                 " ".join((getattr(p, "help", None) or "").split()), bool(p.required), _default(p), many)


_NAMES = {"Path": "PATH", "str": "TEXT", "int": "INTEGER", "float": "NUMBER", "bool": "BOOLEAN"}


def _type_text(p) -> str:
    """What the value is: the choices, or the type's name (from the annotation in Typer >= 0.2x,
    which builds no Click type, or from the Click type in older Typer)."""
    descriptor = getattr(p, "type_descriptor", None)
    if descriptor is None:
        ptype = p.type
        return "|".join(map(str, ptype.choices)) if hasattr(ptype, "choices") else ptype.name.upper()
    ann = descriptor.annotation
    while typing.get_origin(ann) in (list, tuple, typing.Union, types.UnionType):
        ann = next(a for a in typing.get_args(ann) if a is not type(None))
    if typing.get_origin(ann) is typing.Literal:
        return "|".join(map(str, typing.get_args(ann)))
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "|".join(str(m.value) for m in ann)
    name = getattr(ann, "__name__", str(ann))
    return _NAMES.get(name, name.upper())


def _default(p) -> str | None:
    d = p.default
    if callable(d) or d is None or d == () or d == [] or (getattr(p, "is_flag", False) and not d):
        return None
    if isinstance(d, (list, tuple)):
        return ", ".join(map(str, d))
    return str(getattr(d, "value", d))
