"""Change tickets and the one decision whether a PLC change was authorised by one.

A ticket names controllers (addresses, networks or asset names), the stations allowed to change
them (addresses), a window (aware datetimes, both ends included) and the operations it covers.
Operations are the words of change management, mapped onto the operation categories the
decoders emit (model.OP_CATEGORIES):

    write    -> write      (data points, outputs, set-points)
    program  -> program    (block / logic download, upload, delete)
    mode     -> control    (run / stop / restart)
    firmware -> firmware
    config   -> config     (IP, communication, time settings)

A ticket with no operations covers all five.

Tickets are read from a YAML or JSON file (a list of tickets) or imported from a CSV export of a
change-management system (ServiceNow-like columns). A bad entry is one TicketError line naming
FILE:LINE and the field, never a traceback."""
from __future__ import annotations

import csv
import io
import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Iterable

from plantguard.errors import InputError
from plantguard.util.timefmt import iso

OPERATIONS = {"write": "write", "program": "program", "mode": "control", "firmware": "firmware",
              "config": "config"}
CATEGORY_OPERATION = {v: k for k, v in OPERATIONS.items()}
MAX_FILE_BYTES = 16 * 1024 * 1024      # a ticket file past this is refused, not read
MAX_TICKETS = 100_000
MAX_TARGETS = 256                      # controllers or stations per ticket
MAX_ID = 120


class TicketError(InputError):
    """A ticket file or value that cannot be used: one line, 'FILE:LINE: field: problem'."""


@dataclass(frozen=True)
class Ticket:
    id: str
    plcs: tuple[str, ...]               # addresses, networks (CIDR) or asset names
    stations: tuple[str, ...]           # addresses
    start: datetime                     # aware
    end: datetime                       # aware; the window includes both ends
    operations: frozenset[str] = frozenset()   # keys of OPERATIONS; empty: all
    source: str = ""                    # where it came from (file, cli)

    def __post_init__(self):
        nets, names = [], set()
        for p in self.plcs:
            net = _network(p)
            if net is None:
                names.add(p.strip().lower())
            else:
                nets.append(net)
        object.__setattr__(self, "_nets", tuple(nets))
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_stations", frozenset(str(ipaddress.ip_address(s)) for s in self.stations))

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(OPERATIONS[o] for o in (self.operations or OPERATIONS))

    def covers_plc(self, address: str | None, names: Iterable[str] = ()) -> bool:
        addr = _address(address)
        if addr is not None and any(addr.version == n.version and addr in n for n in self._nets):
            return True
        return any(n.strip().lower() in self._names for n in names if n)

    def covers_station(self, address: str | None) -> bool:
        addr = _address(address)
        return addr is not None and str(addr) in self._stations

    def window_text(self) -> str:
        return f"{_t(self.start)}..{_t(self.end)}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "plcs": list(self.plcs), "stations": list(self.stations),
                "from": _t(self.start), "to": _t(self.end), "operations": sorted(self.operations)}


@dataclass
class Change:
    """One aggregated PLC change: every operation of one name and category a station sent one
    controller over one protocol, from first to last."""
    station: str
    controller: str
    protocol: str
    operation: str
    category: str
    count: int = 0
    first: float | None = None
    last: float | None = None
    controller_names: tuple[str, ...] = ()      # the controller's asset names, for tickets naming it
    evidence: list = field(default_factory=list)   # (capture, frame, time, detail), a few


@dataclass(frozen=True)
class Verdict:
    authorised: bool
    ticket: str | None
    reason: str


def verdict(change: Change, tickets: Iterable[Ticket]) -> Verdict:
    """Whether the change was authorised by a ticket: one that names its controller and station,
    covers its operation, and whose window holds every time of the change (first and last).
    A change spread over two tickets' windows is authorised by neither."""
    what = f"{change.operation} ({change.category})"
    plc = [t for t in tickets if t.covers_plc(change.controller, change.controller_names)]
    if not plc:
        return Verdict(False, None, f"no change ticket for {change.controller}")
    station = [t for t in plc if t.covers_station(change.station)]
    if not station:
        t = plc[0]
        return Verdict(False, None, f"ticket {t.id} for {change.controller} is for station "
                                    f"{', '.join(t.stations) or 'none'}, not {change.station}")
    ops = [t for t in station if change.category in t.categories]
    if not ops:
        t = station[0]
        return Verdict(False, None, f"ticket {t.id} covers {', '.join(sorted(t.operations))}, not {what}")
    first = change.first if change.first is not None else change.last
    last = change.last if change.last is not None else first
    if first is None:
        return Verdict(False, None, f"{what} has no time to place in a ticket window")
    for t in ops:
        if t.start.timestamp() <= first and last <= t.end.timestamp():
            return Verdict(True, t.id, f"under ticket {t.id} ({t.window_text()})")
    return Verdict(False, None, _outside(change, ops, first, last))


def _outside(change: Change, tickets: list[Ticket], first: float, last: float) -> str:
    """Why no window held the change, said of the ticket nearest to holding it."""
    n = change.count
    for t in tickets:                   # opened in the window, went on past its close
        if t.start.timestamp() <= first <= t.end.timestamp():
            return f"the last of {n} at {_t(last)}, after ticket {t.id} closed at {_t(t.end)}"
    t = min(tickets, key=lambda t: min(abs(t.start.timestamp() - first), abs(t.end.timestamp() - first)))
    lead = f"the first of {n}" if n > 1 else "the change"
    if first < t.start.timestamp():
        return f"{lead} at {_t(first)}, before ticket {t.id} opened at {_t(t.start)}"
    return f"{lead} at {_t(first)}, after ticket {t.id} closed at {_t(t.end)}"


def _t(v) -> str:
    ts = v.timestamp() if isinstance(v, datetime) else v
    return (iso(ts) or "?").replace(".000000Z", "Z")


# -- values ---------------------------------------------------------------------------------------

def _network(text: str):
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _address(text):
    try:
        return ipaddress.ip_address(str(text).strip()) if text else None
    except ValueError:
        return None


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@ -]{0,119}$")


def parse_time(value: Any, tz: tzinfo | None = None) -> datetime:
    """An ISO 8601 time (a datetime YAML read is taken as is); without an offset it is in tz, and
    with no tz it is refused (a window must say which clock it means)."""
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, str) and value.strip():
        s = value.strip()
        try:
            t = datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in "zZ" else s)
        except ValueError:
            raise ValueError(f"{s[:40]!r} is not an ISO 8601 time (2024-04-14T02:00:00+02:00)") from None
    else:
        raise ValueError("a time is missing")
    if t.tzinfo is None:
        if tz is None:
            raise ValueError(f"{_t_naive(t)} has no UTC offset (add Z or +HH:MM, or name the zone with --tz)")
        t = t.replace(tzinfo=tz)
    return t.astimezone(timezone.utc)


def _t_naive(t: datetime) -> str:
    return t.isoformat(sep=" ")


def parse_window(text: str, tz: tzinfo | None = None) -> tuple[datetime, datetime]:
    """'FROM..TO' as two aware datetimes, FROM before TO."""
    if not isinstance(text, str) or text.count("..") != 1:
        raise ValueError("a window is FROM..TO (2024-04-14T02:00Z..2024-04-14T06:00Z)")
    a, b = text.split("..")
    start, end = parse_time(a, tz), parse_time(b, tz)
    return _ordered(start, end)


def _ordered(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if end <= start:
        raise ValueError(f"the window ends ({_t(end)}) before it starts ({_t(start)})")
    return start, end


def parse_list(value: Any, separators: str = r"[,;\s]+") -> list[str]:
    """A list, or one text of items separated by commas, semicolons, newlines or spaces (names
    of configuration items may hold spaces: parse_plcs splits on commas, semicolons and newlines)."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else re.split(separators, str(value))
    out = []
    for v in items:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise ValueError(f"{str(v)[:40]!r} is not a text")
        s = str(v).strip()
        if s:
            out.append(s)
    if len(out) > MAX_TARGETS:
        raise ValueError(f"more than {MAX_TARGETS} entries")
    return out


def parse_plcs(value: Any) -> tuple[str, ...]:
    out = []
    for p in parse_list(value, r"[,;\n]+"):
        if _network(p) is None and not _NAME.match(p):
            raise ValueError(f"{p[:40]!r} is neither an address, a network nor an asset name")
        out.append(str(_network(p)) if "/" in p else p)
    if not out:
        raise ValueError("names no controller")
    return tuple(out)


def parse_stations(value: Any) -> tuple[str, ...]:
    out = []
    for s in parse_list(value):
        a = _address(s)
        if a is None:
            raise ValueError(f"{s[:40]!r} is not an address")
        out.append(str(a))
    if not out:
        raise ValueError("names no station")
    return tuple(out)


def parse_operations(value: Any) -> frozenset[str]:
    ops = {o.lower() for o in parse_list(value)}
    bad = sorted(ops - OPERATIONS.keys())
    if bad:
        raise ValueError(f"unknown operation {bad[0][:20]!r} (known: {', '.join(OPERATIONS)})")
    return frozenset(ops)


def parse_id(value: Any) -> str:
    s = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not s or not _NAME.match(s) or len(s) > MAX_ID:
        raise ValueError(f"{str(value)[:40]!r} is not a ticket id (letters, digits, - _ . : /)")
    return s


def make_ticket(id, plcs, stations, window=None, start=None, end=None, operations=None,
                source: str = "", tz: tzinfo | None = None, where=lambda key: key) -> Ticket:
    """A Ticket from loose values; a bad value raises TicketError(where(field) + ': ' + problem)."""
    def field_(key, fn, *a):
        try:
            return fn(*a)
        except ValueError as exc:
            raise TicketError(f"{where(key)}: {exc}") from None
    tid = field_("id", parse_id, id)
    p = field_("plcs", parse_plcs, plcs)
    s = field_("stations", parse_stations, stations)
    if window is not None:
        t0, t1 = field_("window", parse_window, window, tz)
    else:
        t0 = field_("from", parse_time, start, tz)
        t1 = field_("to", parse_time, end, tz)
        t0, t1 = field_("to", _ordered, t0, t1)
    ops = field_("operations", parse_operations, operations)
    return Ticket(tid, p, s, t0, t1, ops, source)


# -- files ----------------------------------------------------------------------------------------

def load_tickets(path: str | Path, tz: tzinfo | None = None) -> list[Ticket]:
    """The tickets of a YAML / JSON file (a list of tickets) or a CSV export (by its suffix)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return import_csv(p, tz)
    text = _read(p)
    return parse_ticket_file(text, str(p), tz)


def _read(p: Path) -> str:
    """The file's text; a FIFO (the open would wait for a writer for ever), a device or a
    directory is refused before it is opened."""
    import stat

    from plantguard.capture.sources import file_kind
    try:
        mode = os.stat(p).st_mode
        if not stat.S_ISREG(mode):
            raise TicketError(f"{p}: cannot read ({file_kind(mode)}, not a regular file)")
        with open(p, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TicketError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise TicketError(f"{p}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise TicketError(f"{p}:{line}: not UTF-8 text") from None


_KEYS = {"id": ("id", "ticket", "number"), "plcs": ("plcs", "plc", "controllers", "controller"),
         "stations": ("stations", "station"), "window": ("window",), "from": ("from", "start"),
         "to": ("to", "end"), "operations": ("operations", "operation", "ops")}
_KEY_OF = {alias: key for key, aliases in _KEYS.items() for alias in aliases}


def parse_ticket_file(text: str, filename: str, tz: tzinfo | None = None) -> list[Ticket]:
    """Tickets from YAML or JSON text: a list of mappings (or {tickets: [...]})."""
    import yaml
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise TicketError(f"{filename}:{line}: invalid YAML/JSON: {getattr(exc, 'problem', None) or 'unreadable'}") from None
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        inner = [v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "tickets"]
        if not inner:
            raise TicketError(f"{filename}:{root.start_mark.line + 1}: tickets: expected a list of tickets")
        root = inner[0]
    if not isinstance(root, yaml.SequenceNode):
        raise TicketError(f"{filename}:{root.start_mark.line + 1}: expected a list of tickets")
    if len(root.value) > MAX_TICKETS:
        raise TicketError(f"{filename}:1: more than {MAX_TICKETS} tickets")
    loader = yaml.SafeLoader("")
    out = []
    for node in root.value:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode):
            raise TicketError(f"{filename}:{line}: a ticket is a mapping (id, plcs, stations, window, operations)")
        values, lines = {}, {}
        for k, v in node.value:
            key = _KEY_OF.get(str(k.value).strip().lower()) if isinstance(k, yaml.ScalarNode) else None
            if key is None:
                raise TicketError(f"{filename}:{k.start_mark.line + 1}: {str(k.value)[:40]}: unknown key "
                                  f"(known: {', '.join(_KEYS)})")
            try:
                values[key] = loader.construct_object(v, deep=True)
            except yaml.YAMLError:
                raise TicketError(f"{filename}:{v.start_mark.line + 1}: {key}: unreadable value") from None
            lines[key] = v.start_mark.line + 1
        where = lambda key, line=line, lines=lines: f"{filename}:{lines.get(key, line)}: {key}"
        for need in ("id", "plcs", "stations"):
            if need not in values:
                raise TicketError(f"{where(need)}: missing")
        if "window" not in values and not ("from" in values and "to" in values):
            raise TicketError(f"{where('window')}: missing (window: FROM..TO, or from: and to:)")
        out.append(make_ticket(values["id"], values["plcs"], values["stations"], values.get("window"),
                               values.get("from"), values.get("to"), values.get("operations"),
                               source=filename, tz=tz, where=where))
    return out


# CSV columns, normalised (lower case, runs of other characters as one '_'), by what they hold
CSV_COLUMNS = {
    "id": ("number", "change_number", "change_request", "ticket", "ticket_number", "change", "id"),
    "plcs": ("cmdb_ci", "configuration_item", "cmdb_ci_name", "ci", "affected_ci", "plc", "plcs",
             "controller", "controllers", "asset"),
    "from": ("start_date", "planned_start", "planned_start_date", "work_start", "start", "window_start", "from"),
    "to": ("end_date", "planned_end", "planned_end_date", "work_end", "end", "window_end", "to"),
    "stations": ("station", "stations", "engineering_station", "u_station", "u_engineering_station",
                 "workstation", "source_station", "source_ip"),
    "operations": ("operations", "u_operations", "operation"),
    "state": ("state", "status"),
}
CLOSED_STATES = frozenset({"cancelled", "canceled", "rejected", "withdrawn"})
MAX_CSV_ROWS = 100_000


def _norm(h: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (h or "").strip().lower()).strip("_")


def import_csv(path: str | Path, tz: tzinfo | None = None) -> list[Ticket]:
    """Tickets from a change-management CSV export: one row per ticket and configuration item;
    rows of one number are one ticket (their items and stations joined, their windows equal).
    Rows whose state is cancelled, rejected or withdrawn authorise nothing and are left out."""
    p = Path(path)
    text = _read(p)
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows, None)
    except csv.Error as exc:
        raise TicketError(f"{p}:1: not CSV ({exc})") from None
    if not header:
        return []
    norm = [_norm(h) for h in header]
    col: dict[str, int] = {}
    for key, names in CSV_COLUMNS.items():
        for name in names:
            if name in norm:
                col[key] = norm.index(name)
                break
    labels = {k: header[i].strip() for k, i in col.items()}
    for need in ("id", "plcs", "from", "to", "stations"):
        if need not in col:
            raise TicketError(f"{p}:1: no column for {need} (one of: {', '.join(CSV_COLUMNS[need])})")
    merged: dict[str, list] = {}      # id -> [ticket, line]
    for row in _rows(rows, p):
        line = rows.line_num
        if not any(c.strip() for c in row):
            continue
        if line > MAX_CSV_ROWS + 1:
            raise TicketError(f"{p}:{line}: more than {MAX_CSV_ROWS} rows")
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        if "state" in col and row[col["state"]].strip().lower() in CLOSED_STATES:
            continue
        where = lambda key, line=line: f"{p}:{line}: {labels.get(key, key)}"
        t = make_ticket(row[col["id"]], row[col["plcs"]], row[col["stations"]], None,
                        row[col["from"]], row[col["to"]],
                        row[col["operations"]] if "operations" in col else None, source=str(p), tz=tz, where=where)
        seen = merged.get(t.id)
        if seen is None:
            merged[t.id] = [t, line]
            continue
        prev, first_line = seen
        if (prev.start, prev.end, prev.operations) != (t.start, t.end, t.operations):
            raise TicketError(f"{where('from')}: ticket {t.id} has another window or operations on line {first_line}")
        merged[t.id][0] = Ticket(t.id, _union(prev.plcs, t.plcs), _union(prev.stations, t.stations),
                                 t.start, t.end, t.operations, t.source)
    return [t for t, _ in merged.values()]


def _rows(rows, p: Path):
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise TicketError(f"{p}:{rows.line_num}: not CSV ({exc})") from None
        yield row


def _union(a: tuple, b: tuple) -> tuple:
    out = list(a) + [x for x in b if x not in a]
    if len(out) > MAX_TARGETS:
        raise TicketError(f"ticket lists more than {MAX_TARGETS} controllers or stations")
    return tuple(out)
