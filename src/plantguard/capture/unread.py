"""What could not be read, as one list for every output (stderr, the JSON contract's top-level
`warnings`, the HTML box and the Markdown section): the captures' counted warnings
(formats.ReadStats) summed by kind, then the run's counters of frames not decoded and of bounds
hit (layers.undecoded_kind, fragments, the flow-table, state, buffer, observation and asset caps
of budget.py). Nothing is estimated: every count is one a reader or the engine made.

run_warnings(captures, counters) -> [{"kind", "count", "captures", "text"}], in a fixed order:
capture kinds as first met, then the counters as listed in COUNTERS, then the per-kind ones by
key. `captures` names the captures a kind was counted in: every capture with it for a reader's
kind, the captures holding the link type for a not-decoded link type, and none for a count the
engine keeps over the whole run (an IP protocol, an EtherType or LLC id, a cap).
"""
from __future__ import annotations

from collections.abc import Iterable

from plantguard.capture.layers import (
    LINK_NAMES,
    TUNNEL,
    UNDECODED_ETHER,
    UNDECODED_IP,
    UNDECODED_LINK,
    UNDECODED_LLC,
    ethertype_name,
)

# a reader's warning kind (docs/robustness.md) -> what its count counts
CAPTURE_KINDS = {
    "empty": "empty files: nothing read",
    "no_packets": "captures with a valid header and no packets",
    "unreadable": "files that are no readable capture",
    "gzip": "gzip streams cut or corrupt part way (what decompressed before is kept)",
    "truncated": "captures cut short inside a header, record or block (the last record lost)",
    "corrupt_length": "records claiming an impossible length (the rest of the file skipped)",
    "corrupt_block": "corrupt or too short pcapng blocks",
    "corrupt_option": "pcapng options running past their block",
    "unknown_interface": "packet blocks naming an interface not described",
    "packet_overruns_block": "packet blocks longer than their block",
    "unknown_block": "pcapng blocks of a type the format does not define (skipped)",
    "implausible_timestamp": "packets with implausible timestamps (before 1990 or more than a day ahead)",
    "time_backwards": "packets earlier than the packet before them",
    "snaplen_cut": "packets cut by the snapshot length (captured length below the wire length)",
    "analysis_error": "captures whose analysis stopped at an internal error",
}

# a run counter -> what it counts (only counters that mean something was not read or kept)
COUNTERS = {
    "datagrams_incomplete": "IP datagrams given up: a fragment missing (timed out or cut by the capture's end)",
    "datagrams_dropped": "IP datagrams dropped over the reassembly budget",
    "flows_evicted": "flows folded into aggregates by the flow-table cap (--max-memory)",
    "states_evicted": "flows whose protocol state was dropped by the state cap (--max-memory)",
    "decoder_buffers_truncated": "unfinished PDUs dropped over the pending-bytes budget (--max-memory)",
    "stream_gaps": "TCP stream gaps: bytes never captured",
    "observations_dropped": "observations dropped over the observation cap (--max-memory)",
    "assets_dropped": "addresses left out of the inventory by the asset cap (--max-memory)",
    "decode_errors": "packets whose protocol decoder raised",
}


def _get(c, key: str, default=None):
    return c.get(key, default) if isinstance(c, dict) else getattr(c, key, default)


def run_warnings(captures: Iterable, counters: dict[str, int]) -> list[dict]:
    """The run's warnings by kind (see the module doc); captures are CaptureStats or their dicts."""
    captures = list(captures)
    out: dict[str, dict] = {}
    for c in captures:
        for kind, n in (_get(c, "warning_counts") or {}).items():
            if not n:
                continue
            w = out.setdefault(kind, {"kind": kind, "count": 0, "captures": [],
                                      "text": CAPTURE_KINDS.get(kind, kind.replace("_", " "))})
            w["count"] += n
            w["captures"].append(_get(c, "path"))
    for key, text in COUNTERS.items():
        if counters.get(key):
            out[key] = {"kind": key, "count": counters[key], "captures": [], "text": text}
    for key in sorted(counters):
        n = counters[key]
        if not n or key in out:
            continue
        if key.startswith(UNDECODED_LINK):
            lt = int(key[len(UNDECODED_LINK):])
            text = f"frames of link type {lt} ({LINK_NAMES.get(lt, 'unknown')}) not decoded: their hosts are missing"
            held = [_get(c, "path") for c in captures if lt in (_get(c, "linktypes") or ())]
            out[key] = {"kind": key, "count": n, "captures": held, "text": text}
        elif key.startswith(UNDECODED_IP):
            out[key] = {"kind": key, "count": n, "captures": [],
                        "text": f"packets of IP protocol {key[len(UNDECODED_IP):]} not decoded past the IP header"}
        elif key.startswith((UNDECODED_ETHER, UNDECODED_LLC)):
            out[key] = {"kind": key, "count": n, "captures": [],
                        "text": f"frames of {ethertype_name(key)} not decoded: no module reads them"}
        elif key.startswith(TUNNEL):
            out[key] = {"kind": key, "count": n, "captures": [],
                        "text": f"packets in {key[len(TUNNEL):]} tunnels not unwrapped: the hosts inside are missing"}
    return list(out.values())


def line(w: dict) -> str:
    """One warning as a line for a person: the count, what it counts, where."""
    where = ""
    if w["captures"]:
        more = len(w["captures"]) - 3
        where = " (in " + ", ".join(w["captures"][:3]) + (f" and {more:,} more" if more > 0 else "") + ")"
    return f"{w['count']:,} {w['text']}{where}"
