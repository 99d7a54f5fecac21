"""Product families: which line a device belongs to, from its order number or its name.

Advisories often name a family only ("SIMATIC S7-300 CPU family", "MicroLogix 1400
Controllers"); a device reports its exact model. These rules connect the two. Facts used:
Siemens order-number prefixes (6ES7 3.. = S7-300, 6ES7 21. = S7-1200, ...), Rockwell
catalogue prefixes (1756 = ControlLogix, 1769 = CompactLogix, 1766 = MicroLogix 1400, ...)."""
from __future__ import annotations

import re

# family -> pattern that names it in advisory or device text
FAMILY_TEXT: dict[str, re.Pattern] = {name: re.compile(p, re.I) for name, p in {
    "S7-300": r"\bs7-?300\b",
    "S7-400": r"\bs7-?400(?:h)?\b",
    "S7-1200": r"\bs7-?1200\b",
    "S7-1500": r"\bs7-?1500\b",
    "ET 200S": r"\bet\s?200\s?s\b",
    "ET 200SP": r"\bet\s?200\s?sp\b",
    "ET 200 CPU": r"\bet\s?200\s?(?:cpus?|[a-z]{0,2}\s?cpu)\b",
    "SCALANCE X-200": r"\bscalance\s+x-?2\d\d\b|\bscalance\s+x-?200\b",
    "SCALANCE X-300": r"\bscalance\s+x-?3\d\d\b|\bscalance\s+x-?300\b",
    "ControlLogix": r"\bcontrollogix\b",
    "ControlLogix 5550": r"\bcontrollogix\s?5550\b",
    "ControlLogix 5560": r"\bcontrollogix\s?5560\b",
    "ControlLogix 5570": r"\bcontrollogix\s?5570\b",
    "ControlLogix 5580": r"\bcontrollogix\s?5580\b",
    "CompactLogix": r"\bcompactlogix\b",
    "GuardLogix": r"\bguardlogix\b",
    "MicroLogix 1100": r"\bmicrologix\s?1100\b",
    "MicroLogix 1200": r"\bmicrologix\s?1200\b",
    "MicroLogix 1400": r"\bmicrologix\s?1400\b",
    "SLC 500": r"\bslc\s?-?500\b",
    "PLC-5": r"\bplc-?5\b",
    "Stratix": r"\bstratix\b",
    "PanelView Plus": r"\bpanelview\s+plus\b",
    "Modicon M340": r"\bm340\b",
    "Modicon M580": r"\bm580\b",
    "Modicon M221": r"\bm221\b",
    "MELSEC iQ-R": r"\bmelsec\s+iq-r\b",
    "MELSEC Q": r"\bmelsec[- ]q\b",
}.items()}

# (regex on the normalised order/catalogue number, families)
_ORDER_RULES: list[tuple[re.Pattern, tuple[str, ...]]] = [(re.compile(p), f) for p, f in [
    (r"^6[ea][sg][17]3\d\d", ("S7-300",)),          # 6ES7 3xx / SIPLUS 6AG1 3xx
    (r"^6[ea][sg][17]4\d\d", ("S7-400",)),
    (r"^6[ea][sg][17]21\d", ("S7-1200",)),
    (r"^6[ea][sg][17]5\d\d", ("S7-1500",)),
    (r"^6[ea][sg][17]151", ("ET 200S", "ET 200 CPU", "S7-300")),
    (r"^6[ea][sg][17]15[45]", ("ET 200SP",)),
    (r"^6gk52\d\d", ("SCALANCE X-200",)),
    (r"^6gk53\d\d", ("SCALANCE X-300",)),
    (r"^1756-", ("ControlLogix",)),
    (r"^1756-l5\d", ("ControlLogix 5550",)),
    (r"^1756-l6\d", ("ControlLogix 5560",)),
    (r"^1756-l7\d", ("ControlLogix 5570",)),
    (r"^1756-l8\d", ("ControlLogix 5580",)),
    (r"^1769-", ("CompactLogix",)),
    (r"^1768-", ("CompactLogix",)),
    (r"^1766-", ("MicroLogix 1400",)),
    (r"^1763-", ("MicroLogix 1100",)),
    (r"^1762-", ("MicroLogix 1200",)),
    (r"^1747-", ("SLC 500",)),
    (r"^1785-", ("PLC-5",)),
    (r"^1783-", ("Stratix",)),
    (r"^2711p-", ("PanelView Plus",)),
]]

# Siemens CPU names: "CPU 315-2 PN/DP" is an S7-300, "CPU 1214C" an S7-1200, ...
_CPU_RULES = [(re.compile(p, re.I), f) for p, f in [
    (r"\bcpu\s?31\d[a-z]*(?:-\d)?\b", ("S7-300",)),
    (r"\bcpu\s?41\d[a-z]*(?:-\d)?\b", ("S7-400",)),
    (r"\bcpu\s?12\d\d[a-z]*\b", ("S7-1200",)),
    (r"\bcpu\s?15\d\d[a-z]*\b", ("S7-1500",)),
    (r"\bim\s?151-8", ("ET 200S", "ET 200 CPU", "S7-300")),
    (r"\blogix\s?55\d\d\b", ("ControlLogix",)),
    (r"\blogix\s?556\d\b", ("ControlLogix 5560",)),
    (r"\blogix\s?557\d\b", ("ControlLogix 5570",)),
]]


def normalise_order_number(text: str | None) -> str:
    """"6ES7 315-2EH14-0AB0" -> "6es7315-2eh14-0ab0" (spaces dropped, lower case)."""
    return re.sub(r"\s+", "", str(text or "")).lower()


def most_specific(fams: set[str]) -> set[str]:
    """Drop a family when a narrower one of the same line is named ("ControlLogix" when
    "ControlLogix 5560" is there), so a 5560 never meets a 5570-only advisory through the line."""
    return {f for f in fams if not any(g != f and g.startswith(f + " ") for g in fams)}


def families_in_text(text: str) -> set[str]:
    return most_specific({name for name, pat in FAMILY_TEXT.items() if pat.search(text or "")})


def asset_families(order_numbers, texts) -> set[str]:
    """Families a device belongs to, from its order/catalogue numbers and its product texts."""
    out: set[str] = set()
    for o in order_numbers:
        n = normalise_order_number(o)
        for pat, fams in _ORDER_RULES:
            if pat.search(n):
                out.update(fams)
    for t in texts:
        if not t:
            continue
        out |= families_in_text(t)
        for pat, fams in _CPU_RULES:
            if pat.search(t):
                out.update(fams)
    return most_specific(out)
