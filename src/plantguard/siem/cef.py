"""ArcSight Common Event Format (CEF:0): a pipe-separated header and key=value extensions, one
event per line. Escaping as the CEF specification says: in the header `\\` and `|` take a
backslash; in extension values `\\` and `=` take one, and CR/LF are written `\\r`/`\\n`. Any
other character a device could use to break the line or a terminal (NUL, ESC, bidi overrides, lone
surrogates) becomes a visible escape first. Extension keys are CEF dictionary names (cef_keys.json
lists them); custom strings use csN with their csNLabel."""
from __future__ import annotations

from plantguard import __version__
from plantguard.siem.events import Event
from plantguard.siem.spec import Format
from plantguard.util.sanitize import clip, visible

SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
MAX_NAME = 512
MAX_VALUE = 4000


def header_field(v) -> str:
    return clip(visible(v), MAX_NAME).replace("\\", "\\\\").replace("|", "\\|")


def extension_value(v) -> str:
    s = clip(visible(v, keep="\r\n"), MAX_VALUE)
    return (s.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n"))


def extensions(e: Event) -> list[tuple[str, object]]:
    """The extension pairs of an event, in a fixed order (None values are left out)."""
    src, dst = e.source, e.destination
    pairs = [("externalId", e.id), ("cat", e.kind), ("act", e.action), ("outcome", e.outcome),
             ("rt", round(e.time * 1000)), ("msg", e.message),
             ("dvchost", e.observer.host or None), ("deviceExternalId", e.observer.name),
             ("src", src and src.ip), ("smac", src and src.mac), ("spt", src and src.port),
             ("shost", src and src.name),
             ("dst", dst and dst.ip), ("dmac", dst and dst.mac), ("dpt", dst and dst.port),
             ("dhost", dst and dst.name)]
    if e.network:
        pairs += [("proto", e.network.transport), ("app", e.network.protocol)]
    if e.end_time is not None:
        pairs += [("start", round(e.time * 1000)), ("end", round(e.end_time * 1000))]
    custom = [("site", e.site),
              ("attack", ",".join(e.attack) or None),
              ("controls", "; ".join(f"{fw}: {', '.join(ids)}" for fw, ids in e.rule.controls)
               if e.rule and e.rule.controls else None),
              ("evidence", " ".join(f"{x.capture or '-'}#{x.frame if x.frame is not None else '-'}"
                                    for x in e.evidence) or None),
              ("practice", e.rule.practice if e.rule and e.rule.practice else None),
              ("device", " ".join(p for p in (e.device.vendor, e.device.product, e.device.firmware) if p) or None
               if e.device else None)]
    n = 0
    for label, value in custom:
        if value is not None:
            n += 1
            pairs += [(f"cs{n}Label", label), (f"cs{n}", value)]
    pairs += [("cn1Label", "sequence"), ("cn1", e.seq)]
    if e.network and e.network.packets is not None:
        pairs += [("cn2Label", "packets"), ("cn2", e.network.packets), ("cn3Label", "bytes"), ("cn3", e.network.bytes)]
    return [(k, v) for k, v in pairs if v is not None and v != ""]


def render(e: Event) -> str:
    signature = e.rule.id if e.rule else (e.action or e.kind)
    head = "|".join(["CEF:0", "plantguard", "plantguard", __version__, header_field(signature),
                     header_field(e.message), str(SEVERITY[e.severity])])
    ext = " ".join(f"{k}={extension_value(v)}" for k, v in extensions(e))
    return f"{head}|{ext}"


FORMAT = Format("cef", render, "text/plain", "ArcSight Common Event Format, one event per line")
