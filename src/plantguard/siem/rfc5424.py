"""RFC 5424 syslog messages. `message(e, body)` is the header every syslog sink sends (PRI from
the severity, RFC 3339 time, the observer's host, APP-NAME plantguard, MSGID the event kind);
the `rfc5424` format itself puts the event's fields in one structured-data element
`[plantguard@32473 ...]` and its message text in MSG (UTF-8, with the BOM RFC 5424 asks for).

32473 is the private enterprise number RFC 5612 reserves for documentation: a site with its own
PEN replaces it (SD_ID). PARAM-VALUEs escape `"`, `\\` and `]` (RFC 5424 §6.3.3); header fields
are printable US-ASCII without spaces, of bounded length (§6)."""
from __future__ import annotations

from plantguard.siem.events import Event
from plantguard.siem.spec import Format
from plantguard.siem.text import ascii_token, plain
from plantguard.util.timefmt import iso

SD_ID = "plantguard@32473"
FACILITY = 4                       # security/authorization messages
# plantguard severity -> syslog severity (2 critical, 3 error, 4 warning, 5 notice, 6 informational)
SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
BOM = "\ufeff"


def message(e: Event, body: str, sd: str = "-") -> str:
    """The syslog message: header, structured data and MSG (body; none when empty)."""
    pri = FACILITY * 8 + SEVERITY[e.severity]
    head = " ".join((f"<{pri}>1", iso(e.time) or "-", ascii_token(e.observer.host, 255), "plantguard", "-",
                     ascii_token(e.kind, 32), sd))
    return f"{head} {body}" if body else head


def param_value(v) -> str:
    return plain(v).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def params(e: Event) -> list[tuple[str, object]]:
    src, dst = e.source, e.destination
    pairs = [("id", e.id), ("kind", e.kind), ("seq", e.seq), ("severity", e.severity), ("site", e.site),
             ("observer", e.observer.name), ("action", e.action), ("outcome", e.outcome),
             ("rule", e.rule and e.rule.id), ("title", e.rule and e.rule.title),
             ("attack", ",".join(e.attack) or None)]
    for side, p in (("src", src), ("dst", dst)):
        if p:
            pairs += [(f"{side}Ip", p.ip), (f"{side}Mac", p.mac), (f"{side}Port", p.port), (f"{side}Name", p.name)]
    if e.rule:
        pairs += [(f"controls.{fw}", ",".join(ids)) for fw, ids in e.rule.controls]
    pairs += [("evidence", f"{x.capture or '-'}#{x.frame if x.frame is not None else '-'}") for x in e.evidence]
    return [(k, v) for k, v in pairs if v is not None and v != ""]


def param_name(k: str) -> str:
    """An SD-NAME: 1..32 printable US-ASCII but = ] " (a framework key may come from a foreign file)."""
    return "".join("_" if ch in '=]"' else ch for ch in ascii_token(k, 32))


def structured_data(e: Event) -> str:
    body = " ".join(f'{param_name(k)}="{param_value(v)}"' for k, v in params(e))
    return f"[{SD_ID} {body}]"


def render(e: Event) -> str:
    return message(e, BOM + plain(e.message), structured_data(e))


FORMAT = Format("rfc5424", render, "text/plain", "RFC 5424 syslog with structured data")
