"""A firewall configuration file -> model.Ruleset: the one place that recognises a format (by the
file's content, not its name) and hands the file to that format's parser, imported by name
(plantguard.firewall.parsers.<name>.parse(path) -> Ruleset, the parser contract)."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

from plantguard.errors import InputError
from plantguard.firewall.model import Ruleset

MAX_BYTES = 32 * 1024 * 1024
# (parser module, how its files begin or what they hold), tried in this order
SIGNATURES = (
    ("nftables", re.compile(r'^\s*\{\s*"nftables"')),
    # the nft text form: its parser says to give the JSON form
    ("nftables", re.compile(r"^\s*table\s+(inet|ip|ip6|arp|bridge|netdev)\s+\S+\s*\{", re.MULTILINE)),
    ("pfsense", re.compile(r"<(pfsense|opnsense)\b")),
    ("fortios", re.compile(r"^\s*config firewall\b", re.MULTILINE)),
    ("iptables", re.compile(r"^(\*filter|\*nat|\*mangle|\*raw|-A \S+)", re.MULTILINE)),
    ("cisco", re.compile(r"^\s*(access-list|ip access-list|interface|hostname|object-group)\b", re.MULTILINE)),
)


class ConfigNotRead(InputError):
    """A file that is not a configuration this build reads (format unknown, no parser): one line
    naming the file. A parser's own errors (firewall/errors.py) pass through as they are."""


def detect(text: str) -> str | None:
    """The parser module for a configuration's text, or None."""
    for name, pattern in SIGNATURES:
        if pattern.search(text):
            return name
    return None


# `ipset save` output: the sets an iptables-save file's `-m set --match-set` rules name
IPSET_SAVE = re.compile(r"\A(\s*#[^\n]*\n)*\s*create\s+\S+\s+(hash|bitmap|list):")


def load_all(paths) -> list[Ruleset]:
    """Every configuration of `paths`; files of `ipset save` output among them are the sets of the
    iptables-save files given with them, not configurations of their own."""
    paths = [Path(p) for p in paths]
    heads = {p: _head(p) for p in paths}
    companions = [p for p in paths if IPSET_SAVE.match(heads[p])]
    configs = [p for p in paths if p not in companions]
    if companions and not any(detect(heads[p]) == "iptables" for p in configs):
        raise ConfigNotRead(f"{companions[0]}: `ipset save` output needs the iptables-save file whose rules "
                            "use its sets, given with it")
    return [load(p, companions) for p in configs]


def _head(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigNotRead(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MB, not a firewall configuration")
        return path.read_bytes()[:1024 * 1024].decode("utf-8", "replace")
    except OSError as exc:
        raise ConfigNotRead(f"{path}: cannot read the firewall configuration ({exc.strerror or exc})") from None


def load(path: str | Path, companions=()) -> Ruleset:
    """One configuration; `companions`: `ipset save` files for an iptables-save one."""
    path = Path(path)
    head = _head(path)
    name = detect(head)
    if name is None:
        raise ConfigNotRead(f"{path}: not a firewall configuration plantguard reads (iptables-save, "
                                  "nft -j list ruleset, Cisco IOS/ASA, FortiOS, pfSense/OPNsense config.xml)")
    try:
        parser = importlib.import_module(f"plantguard.firewall.parsers.{name}")
    except ImportError:
        raise ConfigNotRead(f"{path}: looks like a {name} configuration, but this plantguard has no "
                                  f"{name} parser") from None
    try:
        return parser.parse(path, companions) if name == "iptables" else parser.parse(path)
    except InputError:
        raise
    except ValueError as exc:
        if str(exc).startswith(str(path)):      # the parser's own one line, naming the file
            raise ConfigNotRead(str(exc)) from None
        raise ConfigNotRead(f"{path}: cannot parse the {name} configuration ({exc})") from None
    except (KeyError, IndexError, UnicodeError) as exc:
        raise ConfigNotRead(f"{path}: cannot parse the {name} configuration ({type(exc).__name__}: {exc})") from None
