"""Reading composed YAML nodes into checked values (mappings, lists, text, numbers, booleans,
addresses, networks). Every problem is raised as a SiteError of one line naming the file, the
line and the field, e.g.
    site.yaml:7: zones[1].networks[0]: '10.10.2.0/33' is not an IP network
Scalars are read from their raw text, which sidesteps YAML 1.1 surprises (`08:00` as a base-60
number, `no` as a boolean)."""
from __future__ import annotations

import ipaddress
from typing import Iterable

import yaml

from plantguard.site.vocabulary import MAX_NODES


class SiteError(ValueError):
    """A site file problem, as one line: 'FILE:LINE: field: problem'."""


class _NodeReader:
    """The primitives of the validator: one typed read per node, counted against MAX_NODES."""

    def __init__(self, filename: str):
        self.fname = filename
        self.nodes = 0

    # -- primitives ----------------------------------------------------------------------------
    def fail(self, node, path: str, problem: str) -> SiteError:
        line = node.start_mark.line + 1 if node is not None and node.start_mark else 1
        where = f"{path}: " if path else ""
        return SiteError(f"{self.fname}:{line}: {where}{problem}")

    def _count(self, node) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, "", f"too many entries (more than {MAX_NODES:,})")

    def mapping(self, node, path: str, allowed: Iterable[str], required: Iterable[str] = ()):
        self._count(node)
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path, f"expected a mapping (key: value), found {_kind(node)}")
        allowed = tuple(allowed)
        out: dict[str, tuple] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise self.fail(knode, path, "keys must be plain names")
            key = knode.value
            sub = f"{path}.{key}" if path else key
            if key not in allowed:
                hint = _closest(key, allowed)
                raise self.fail(knode, sub, "unknown key" + (f" (did you mean '{hint}'?)" if hint else
                                                             f"; allowed keys: {', '.join(allowed)}"))
            if key in out:
                raise self.fail(knode, sub, f"duplicate key (first given on line {out[key][0].start_mark.line + 1})")
            out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                raise self.fail(node, path, f"missing required key '{key}'")
        return out

    def seq(self, node, path: str, allow_scalar: bool = False) -> list:
        self._count(node)
        if allow_scalar and isinstance(node, yaml.ScalarNode) and node.value != "":
            return [node]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, path, f"expected a list, found {_kind(node)}")
        return list(node.value)

    def text(self, node, path: str, allow_empty: bool = False, max_len: int = 1000) -> str:
        self._count(node)
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, f"expected a value, found {_kind(node)}")
        value = node.value.strip()
        if not value and not allow_empty:
            raise self.fail(node, path, "must not be empty")
        if len(value) > max_len:
            raise self.fail(node, path, f"is longer than {max_len} characters")
        return value

    def choice(self, node, path: str, choices: Iterable[str]) -> str:
        value = self.text(node, path).lower()
        choices = tuple(choices)
        if value not in choices:
            raise self.fail(node, path, f"'{node.value}' is not one of {', '.join(choices)}")
        return value

    def integer(self, node, path: str, lo: int, hi: int, what: str = "a whole number") -> int:
        value = self.text(node, path)
        try:
            n = int(value, 10)
        except ValueError:
            raise self.fail(node, path, f"'{value}' is not {what}") from None
        if not lo <= n <= hi:
            raise self.fail(node, path, f"{n} is not {what} between {lo} and {hi}")
        return n

    def boolean(self, node, path: str) -> bool:
        value = self.text(node, path).lower()
        if value in ("true", "yes", "on"):
            return True
        if value in ("false", "no", "off"):
            return False
        raise self.fail(node, path, f"'{node.value}' is not true or false")

    def network(self, node, path: str, strict: bool = True):
        value = self.text(node, path)
        try:
            return ipaddress.ip_network(value, strict=True)
        except ValueError:
            pass
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise self.fail(node, path, f"'{value}' is not an IP network") from None
        if strict:
            raise self.fail(node, path, f"'{value}' has host bits set (did you mean {net}?)")
        return net

    def address_or_network(self, node, path: str) -> str:
        value = self.text(node, path)
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        return str(self.network(node, path))

    def address(self, node, path: str) -> str:
        value = self.text(node, path)
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise self.fail(node, path, f"'{value}' is not an IP address") from None


def _kind(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node is None or node.tag.endswith(":null"):
        return "nothing"
    return f"'{node.value}'"


def _closest(word: str, choices: Iterable[str]) -> str | None:
    import difflib
    hit = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return hit[0] if hit else None
