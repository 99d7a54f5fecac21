"""Product families: which line a device belongs to, from its order number or its name.

Advisories often name a family only ("SIMATIC S7-300 CPU family", "MicroLogix 1400
Controllers"); a device reports its exact model. These rules connect the two. Facts used:
Siemens order-number prefixes (6ES7 3.. = S7-300, 6ES7 21. = S7-1200, ...), Rockwell
catalogue prefixes (1756 = ControlLogix, 1769 = CompactLogix, 1766 = MicroLogix 1400, ...),
Omron model prefixes (CJ2M-CPU.. = CJ series, NJ501-.. = NJ/NX series, CP1L-.. = CP1L),
Beckhoff's runtime name (TwinCAT),
ABB Relion IED types (REL670 / RED670 = Relion 670 series, RE.650 = Relion 650 series),
CODESYS runtime product names ("CODESYS Control for Linux SL" = CODESYS Control for Linux),
Mitsubishi CPU model names (FX5U-32MT/ES = MELSEC iQ-F, R04CPU / R08SFCPU = MELSEC iQ-R,
Q03UDECPU = MELSEC Q, L02CPU = MELSEC L).

`asset_families` gives the families advisory matching compares; `identity_family` the one
family the inventory names a device by ("SIMATIC S7-300", "CompactLogix 5370"), with the
identity key it read it from."""
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
    # the compact line as advisories name it ("MELSEC iQ-F Series", "MELSEC iQ-F, iQ-R Series")
    "MELSEC iQ-F": r"\bmelsec\s+iq-f\b",
    "MELSEC L": r"\bmelsec[- ]l\b|\bmelsec-q/l\b",
    # Omron: the lines as advisories name them ("Omron PLC CJ series", "SYSMAC NJ/NX Series") and
    # the model prefixes FINS Controller Data Read reports ("CP1L-EL20DR-D", "CJ2M-CPU31")
    "CJ series": r"\bcj\s?-?series\b",
    "CS series": r"\bcs\s?-?series\b",
    "NJ/NX series": r"\bnj\s?/\s?nx\b|\bn[jx]\s?-?series\b",
    "NX1P2": r"\bnx1p2\b",
    "CJ1": r"\bcj1[a-z]?\b",
    "CJ2H": r"\bcj2h\b",
    "CJ2M": r"\bcj2m\b",
    "CS1": r"\bcs1[a-z]?\b",
    "CP1E": r"\bcp1e\b",
    "CP1H": r"\bcp1h\b",
    "CP1L": r"\bcp1l\b",
    "CP2E": r"\bcp2e\b",
    # Beckhoff: advisories name the runtime ("TwinCAT: 3.1 Build 4022.4 or prior"); ADS
    # discovery and ReadDeviceInfo name the same runtime and its version
    "TwinCAT": r"\btwincat\b",
    # ABB Relion protection and control IEDs: advisories name the series ("Relion 670 series"),
    # an IED's MMS Identify its product type ("REL670", "RED670")
    "Relion 650": r"\brelion\s?650\b",
    "Relion 670": r"\brelion\s?670\b",
    # CODESYS V3 runtimes: advisories name the runtime product ("CODESYS Control for Linux",
    # "CODESYS Control Win V3"); the name service reply gives the device name with an edition
    # suffix ("CODESYS Control for Linux SL", "CODESYS Control Win V3 x64")
    "CODESYS Control for Linux": r"\bcodesys\s+control\s+for\s+linux\b",
    "CODESYS Control for Raspberry Pi": r"\bcodesys\s+control\s+for\s+raspberry\s?pi\b",
    "CODESYS Control for BeagleBone": r"\bcodesys\s+control\s+for\s+beaglebone\b",
    "CODESYS Control for IOT2000": r"\bcodesys\s+control\s+for\s+iot\s?2000\b",
    "CODESYS Control for PFC100": r"\bcodesys\s+control\s+for\s+pfc\s?100\b",
    "CODESYS Control for PFC200": r"\bcodesys\s+control\s+for\s+pfc\s?200\b",
    "CODESYS Control Win": r"\bcodesys\s+control\s+win\b",
    "CODESYS Control RTE": r"\bcodesys\s+control\s+rte\b",
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
    # Omron CPU models name their line only by prefix: CJ2M-CPU31 is a CJ, NJ501-1500 an NJ
    (r"^\s*cj[12][a-z]?-", ("CJ series",)),
    (r"^\s*cs1[a-z]?-", ("CS series",)),
    (r"^\s*n[jx]\d{1,3}[a-z]?\d?-|^\s*nx1p2-", ("NJ/NX series",)),
    # ABB Relion IED types: RE + application letter + series (REL670 line distance, RED650 ...)
    (r"^\s*re[a-z]650\b", ("Relion 650",)),
    (r"^\s*re[a-z]670\b", ("Relion 670",)),
    # Mitsubishi CPU model names as MELSOFT / SLMP "Read CPU model name" report them: FX5U-32MT/ES,
    # FX5UC-..: iQ-F; R04CPU, R08SFCPU, R16PCPU, R12CCPU-V: iQ-R; Q03UDECPU, Q06HCPU: Q; L02CPU: L
    (r"^\s*fx5[a-z]{0,2}-", ("MELSEC iQ-F",)),
    (r"^\s*r\d{1,3}[a-z]{0,4}cpu\b", ("MELSEC iQ-R",)),
    (r"^\s*q\d{2,3}[a-z]{0,5}cpu\b", ("MELSEC Q",)),
    (r"^\s*l\d{2}[a-z]{0,4}cpu\b", ("MELSEC L",)),
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


# The inventory's name of a family (the product line as its maker writes it).
FAMILY_NAMES = {
    "S7-300": "SIMATIC S7-300", "S7-400": "SIMATIC S7-400", "S7-1200": "SIMATIC S7-1200",
    "S7-1500": "SIMATIC S7-1500", "ET 200S": "SIMATIC ET 200S", "ET 200SP": "SIMATIC ET 200SP",
    "ET 200 CPU": "SIMATIC ET 200 CPU", "MELSEC Q": "MELSEC Q series",
}
# Narrower lines than advisory matching distinguishes, named from the catalogue number alone
# (Rockwell: 1769-L16ER..L36ERM are CompactLogix 5370 L1/L2/L3, the ...ERMS ones Compact
# GuardLogix 5370; 5069-L3.. CompactLogix 5380, 5069-L4.. 5480; 1756-L6.S/L7.S/L8.S GuardLogix).
# The older 1769-L31 / L32E / L35E stay plain "CompactLogix".
_LINE_RULES: list[tuple[re.Pattern, str]] = [(re.compile(p), f) for p, f in [
    (r"^1769-l3[0-7]erm?s", "Compact GuardLogix 5370"),
    (r"^1769-l(?:1[689]|2[47]|3[0-6])erm?(?![a-z0-9])", "CompactLogix 5370"),
    (r"^5069-l3\d{2,3}erm?s", "Compact GuardLogix 5380"),
    (r"^5069-l3\d{2,3}", "CompactLogix 5380"),
    (r"^5069-l4\d{2,3}", "CompactLogix 5480"),
    (r"^1756-l6\ds", "GuardLogix 5560"),
    (r"^1756-l7\ds", "GuardLogix 5570"),
    (r"^1756-l8\ds", "GuardLogix 5580"),
]]
# identity keys that may carry an order / catalogue number, and those that name the product
_ORDER_KEYS = ("order_number", "product", "model", "module")
_TEXT_KEYS = ("product", "model", "module", "description")
_CATALOGUE = re.compile(r"^\s*(\d{4}-[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z])?)", re.I)


def family_name(family: str) -> str:
    return FAMILY_NAMES.get(family, family)


def identity_family(identity: dict) -> tuple[str, str] | None:
    """(family, identity key it was read from) of a device: from its order / catalogue number
    first, then from the names it gives itself; the line the device's first rule names, kept
    only when advisory matching would call it that too (or narrower). None when no rule fits."""
    for key in _ORDER_KEYS:
        number = _order_like(identity.get(key), key)
        if number:
            n = normalise_order_number(number)
            for pat, fam in _LINE_RULES:
                if pat.search(n):
                    return fam, key
    for key in _ORDER_KEYS:
        number = _order_like(identity.get(key), key)
        if not number:
            continue
        fams = asset_families([number], [])
        if fams:
            n = normalise_order_number(number)
            ordered = [f for pat, names in _ORDER_RULES if pat.search(n) for f in names]
            return family_name(next((f for f in ordered if f in fams), min(fams))), key
    for key in _TEXT_KEYS:
        text = identity.get(key)
        if not isinstance(text, str) or not text.strip():
            continue
        fams = asset_families([], [text])
        if fams:
            ordered = [f for pat, names in _CPU_RULES if pat.search(text) for f in names]
            ordered += sorted(families_in_text(text))
            return family_name(next((f for f in ordered if f in fams), min(fams))), key
    return None


def _order_like(value, key: str) -> str | None:
    """The order or catalogue number in an identity value: order_number as it is, a product /
    model / module only when it starts with a catalogue number ("1769-L33ER/A LOGIX5333ER")."""
    if not isinstance(value, str) or not value.strip():
        return None
    if key == "order_number":
        return value.strip()
    m = _CATALOGUE.match(value)
    return m.group(1) if m else None
