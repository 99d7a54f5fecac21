"""Best-effort reading of a free-text device description (LLDP system description, SNMP
sysDescr, CDP software version): vendor, product, firmware, hardware, order number, OS.
Only what the text plainly says is returned; unknown parts are left out."""
from __future__ import annotations

import re

# Vendor names as they appear in descriptions -> the name we report.
_VENDORS = (
    ("siemens", "Siemens"), ("cisco", "Cisco"), ("hirschmann", "Hirschmann"),
    ("belden", "Belden"), ("moxa", "Moxa"), ("phoenix contact", "Phoenix Contact"),
    ("schneider", "Schneider Electric"), ("rockwell", "Rockwell Automation"),
    ("allen-bradley", "Rockwell Automation"), ("westermo", "Westermo"), ("ruggedcom", "Siemens"),
    ("scalance", "Siemens"), ("simatic", "Siemens"), ("juniper", "Juniper Networks"),
    ("hewlett-packard", "HP"), ("hp procurve", "HP"), ("aruba", "Aruba"), ("dell", "Dell"),
    ("netgear", "Netgear"), ("d-link", "D-Link"), ("mikrotik", "MikroTik"), ("fortinet", "Fortinet"),
    ("fortigate", "Fortinet"), ("smc", "SMC Networks"), ("wago", "WAGO"), ("beckhoff", "Beckhoff"),
    ("b&r", "B&R"), ("abb", "ABB"), ("honeywell", "Honeywell"), ("emerson", "Emerson"),
    ("yokogawa", "Yokogawa"), ("mitsubishi", "Mitsubishi Electric"), ("omron", "Omron"),
    ("advantech", "Advantech"), ("lantronix", "Lantronix"), ("digi ", "Digi International"),
    ("sixnet", "Red Lion"), ("red lion", "Red Lion"), ("n-tron", "Red Lion"),
)
_VENDOR_RE = re.compile(r"(?<![\w-])(" + "|".join(re.escape(k) for k, _ in _VENDORS) + r")(?![\w-])",
                        re.IGNORECASE)
_VENDOR_MAP = dict(_VENDORS)

_TOKEN = r"([0-9A-Za-z][\w.\-()/]*[\w)])"
_FIRMWARE_RES = (
    re.compile(r"\bFW\s*[:=]\s*" + _TOKEN),            # Siemens "FW: V4.02"
    re.compile(r"\bSW\s*[:=]\s*" + _TOKEN),            # Hirschmann "SW: L2P-09.0.00"
    re.compile(r"\bfirmware\s*(?:version)?\s*[:=]?\s*" + _TOKEN, re.IGNORECASE),
    re.compile(r"\bVersion\s*[:=]?\s*" + _TOKEN, re.IGNORECASE),   # Cisco "Version 12.2(25)FX,"
    re.compile(r"(?<![\w.])[vV](\d+(?:\.\d+)+[\w.\-]*)"),          # "v3.20"
)
_HARDWARE_RE = re.compile(r"\bHW\s*[:=]\s*([\w.\-]+)")
# Siemens order numbers (MLFB), e.g. 6GK5 212-2BB00-2AA3, 6ES7 315-2EH14-0AB0
_ORDER_RE = re.compile(r"\b(6[A-Z]{2}\d\s?\d{3}-?[0-9A-Z]{5}-?[0-9A-Z]{4})\b")
_PRODUCT_RES = (
    re.compile(r"\b(SCALANCE\s+[A-Z]{1,3}-?\d[\w\-]*)"),
    re.compile(r"\b(RUGGEDCOM\s+[A-Z]{2,4}\d[\w\-]*)"),
    re.compile(r"\b(SIMATIC\s+S7-\d{3,4}[\w\-]*)"),
    re.compile(r"\b(CPU\s+\d{3}[\w\-/ ]*?)(?:,|$)"),
)


def _strip_v(version: str) -> str:
    """'V4.02' -> '4.02' (a leading v before a digit is a prefix, not part of the number)."""
    if len(version) > 1 and version[0] in "vV" and version[1].isdigit():
        return version[1:]
    return version


def parse_description(text: str | None) -> dict:
    """{vendor, product, firmware, hardware, order_number, os} found in `text` (subset)."""
    out: dict = {}
    if not text:
        return out
    text = text[:1024]
    m = _VENDOR_RE.search(text)
    if m:
        out["vendor"] = _VENDOR_MAP[m.group(1).lower()]
    for rx in _FIRMWARE_RES:
        m = rx.search(text)
        if m:
            out["firmware"] = _strip_v(m.group(1).rstrip(".,"))
            break
    m = _HARDWARE_RE.search(text)
    if m:
        out["hardware"] = m.group(1)
    m = _ORDER_RE.search(text)
    if m:
        out["order_number"] = m.group(1)
    for rx in _PRODUCT_RES:
        m = rx.search(text)
        if m:
            out["product"] = m.group(1).strip()
            break
    low = text.lower()
    if "cisco ios" in low or "internetwork operating system" in low or "ios (tm)" in low:
        out["os"] = "Cisco IOS"
    elif low.startswith("linux") or " linux " in low:
        out["os"] = "Linux"
    elif "windows" in low:
        out["os"] = "Windows"
    elif "vxworks" in low:
        out["os"] = "VxWorks"
    return out
