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


def load(path: str | Path) -> Ruleset:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigNotRead(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MB, not a firewall configuration")
        head = path.read_bytes()[:1024 * 1024].decode("utf-8", "replace")
    except OSError as exc:
        raise ConfigNotRead(f"{path}: cannot read the firewall configuration ({exc.strerror or exc})") from None
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
        return parser.parse(path)
    except InputError:
        raise
    except (ValueError, KeyError, IndexError, UnicodeError) as exc:
        raise ConfigNotRead(f"{path}: cannot parse the {name} configuration ({type(exc).__name__}: {exc})") from None
