"""The one error a firewall configuration ends a command with: the file, the line, and why."""
from __future__ import annotations

from plantguard.errors import InputError


class FirewallConfigError(InputError):
    """A configuration that cannot be read at all (binary, hostile XML, a line beyond reason).
    Lines a parser merely does not model are not errors: they become model.Unsupported."""

    def __init__(self, path: str, line: int | None, why: str) -> None:
        self.path, self.line, self.why = str(path), line, why
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {why}")
