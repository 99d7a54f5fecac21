"""Wireshark display filters for a finding's evidence: the exact frames (`frame.number`) of one
capture, and, when the finding is about two addresses, the conversation between them. Built only
from validated numbers and addresses, so no device text can reach a filter a person pastes into
Wireshark."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any


def frame_number(v: Any) -> int | None:
    """A frame number (1-based int), or None for anything else."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def frames_filter(frames: Iterable[Any]) -> str:
    """`frame.number == 12` for one frame, `frame.number in {12, 15, 99}` for several (sorted, once
    each; commas, which Wireshark 4.0 needs and later versions accept); empty without a valid frame."""
    numbers = sorted({n for n in map(frame_number, frames) if n is not None})
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f"frame.number == {numbers[0]}"
    return "frame.number in {" + ", ".join(map(str, numbers)) + "}"


def capture_filters(evidence: Iterable[Any]) -> list[tuple[str, str]]:
    """(capture, filter selecting every evidence frame of it), one per capture in first-seen order."""
    by_capture: dict[str, list[int]] = {}
    for e in evidence:
        if not isinstance(e, dict):
            continue
        n = frame_number(e.get("frame"))
        capture = e.get("capture") if isinstance(e.get("capture"), str) else ""
        if n is not None:
            by_capture.setdefault(capture, []).append(n)
    return [(cap, frames_filter(ns)) for cap, ns in by_capture.items()]


def _address(v: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(v.strip()) if isinstance(v, str) else None
    except ValueError:
        return None


def conversation_filter(assets: Iterable[Any], port: Any = None) -> str:
    """`ip.addr == a && ip.addr == b` (ipv6.addr for IPv6; one address when both are the same), with
    `(tcp.port == p || udp.port == p)` for a valid port; empty unless the finding names exactly two
    addresses of one family (anything else is not one conversation)."""
    addrs = [a for a in (_address(x) for x in assets) if a is not None]
    if len(addrs) != 2 or addrs[0].version != addrs[1].version:
        return ""
    field = "ip.addr" if addrs[0].version == 4 else "ipv6.addr"
    parts = [f"{field} == {a.compressed}" for a in dict.fromkeys(addrs)]
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        parts.append(f"(tcp.port == {port} || udp.port == {port})")
    return " && ".join(parts)
