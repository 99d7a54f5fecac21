"""Every table a command prints goes through here: a Rich table for a person at a terminal, and
tab-separated columns otherwise (`plantguard inventory x | cut -f1`): a header line, one row a
line, never folded at 80 columns, never cut. Cells are made safe once, here: controls and escapes
made visible (util.sanitize.terminal), so in TSV a tab or line break from a device is written
as \\x09 or \\x0a and a row stays one line. NO_COLOR (https://no-color.org) turns colours off;
FORCE_COLOR makes Rich treat the output as a terminal (Rich's own rules)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from plantguard.util.sanitize import terminal


@dataclass(frozen=True)
class Column:
    name: str
    no_wrap: bool = False       # addresses, ids, times: never split across lines on a terminal
    min_width: int | None = None    # a column of MACs and names: the MAC stays whole
    justify: str = "left"


def console(file=None):
    """A Rich console for standard output (or `file`) that honours NO_COLOR."""
    from rich.console import Console
    return Console(file=file, no_color=bool(os.environ.get("NO_COLOR")) or None, highlight=False)


def is_terminal(file=None) -> bool:
    return console(file).is_terminal


def tsv_cell(v: Any) -> str:
    """One TSV cell: terminal-safe, a tab or line break (a device's, or a multi-line cell's)
    escaped, so that the row is one line and the columns stay the columns."""
    if isinstance(v, (tuple, list)):
        v = " ".join(str(x) for x in v if x not in (None, ""))
    return terminal(v)      # a tab, CR or LF is a control character: written as \\x09, \\x0d, \\x0a


def tsv(columns: Sequence[Column | str], rows: Iterable[Sequence[Any]]) -> str:
    head = "\t".join(tsv_cell(c.name if isinstance(c, Column) else c) for c in columns)
    return "".join([head + "\n", *("\t".join(tsv_cell(v) for v in row) + "\n" for row in rows)])


def rich_table(columns: Sequence[Column | str], rows: Iterable[Sequence[Any]], title: str | None = None):
    """The Rich table: every cell shown literally (rich.text.Text, never markup); a tuple cell is
    one line per element; cells fold rather than being cut."""
    from rich.table import Table
    from rich.text import Text
    t = Table(title=terminal(title) if title else None, header_style="bold cyan")   # NO_COLOR: bold only
    for c in columns:
        c = c if isinstance(c, Column) else Column(c)
        t.add_column(terminal(c.name), no_wrap=c.no_wrap, min_width=c.min_width, overflow="fold", justify=c.justify)
    for row in rows:
        t.add_row(*(Text("\n".join(terminal(x) for x in v if x not in (None, "")) if isinstance(v, (tuple, list))
                         else terminal("" if v is None else v)) for v in row))
    return t


def render(columns: Sequence[Column | str], rows: Iterable[Sequence[Any]], title: str | None = None,
           file=None) -> str:
    """The table as text for standard output (or `file`): Rich at a terminal, else TSV (the
    title, a line for a person, is left out of TSV)."""
    rows = list(rows)
    con = console(file)
    if not con.is_terminal:
        return tsv(columns, rows)
    with con.capture() as captured:
        con.print(rich_table(columns, rows, title))
    return captured.get()


def show(columns: Sequence[Column | str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """Print the table on standard output."""
    sys.stdout.write(render(columns, rows, title))
    sys.stdout.flush()
