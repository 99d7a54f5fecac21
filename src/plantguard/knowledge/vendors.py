"""Vendor names as advisories, CPEs and devices spell them, folded to one key per company.

"Rockwell Automation", "Allen-Bradley", "Rockwell Automation/Allen-Bradley" and the CPE vendor
"rockwellautomation" are one company; matching compares these keys, never raw strings."""
from __future__ import annotations

import re
from functools import lru_cache

# canonical key -> (display name, aliases as they appear in advisories, CPEs and device identities)
_VENDORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rockwell": ("Rockwell Automation", ("rockwell automation", "allen-bradley", "allen bradley",
                                         "rockwellautomation", "rockwell", "rockwell automation inc",
                                         "rockwell automation/allen-bradley", "a-b", "ab")),
    "siemens": ("Siemens", ("siemens", "siemens ag", "siemens energy", "siemens industry")),
    "schneider": ("Schneider Electric", ("schneider electric", "schneider-electric", "schneider",
                                         "schneider electric software", "modicon", "telemecanique",
                                         "schneider electric se", "aveva software")),
    "mitsubishi": ("Mitsubishi Electric", ("mitsubishi electric", "mitsubishielectric",
                                           "mitsubishi electric corporation", "mitsubishi")),
    "ge": ("GE", ("general electric", "general electric (ge)", "ge", "ge digital", "ge vernova",
                  "ge grid solutions", "ge intelligent platforms", "ge fanuc")),
    "phoenix-contact": ("Phoenix Contact", ("phoenix contact", "phoenixcontact", "innominate",
                                            "innominate security technologies", "phoenix_contact")),
    "codesys": ("CODESYS", ("codesys", "3s-smart software solutions", "3s", "3s-smart",
                            "3s smart software solutions",
                            # as CODESYS V3 runtimes spell it in their name service reply
                            "3s - smart software solutions")),
    "hitachi-energy": ("Hitachi Energy", ("hitachi energy", "hitachienergy", "abb power grids")),
    "abb": ("ABB", ("abb", "abb ltd")),
    "moxa": ("Moxa", ("moxa", "moxa inc", "moxa technologies")),
    "omron": ("Omron", ("omron", "omron corporation")),
    "wago": ("WAGO", ("wago", "wago kontakttechnik")),
    "honeywell": ("Honeywell", ("honeywell", "honeywell international")),
    # Niagara: advisories name Tridium; BACnet vendor 36 is "Tridium Inc."; Fox hellos say brandId
    # "vykon", Tridium's own brand of Niagara (other OEM brands are their own companies)
    "tridium": ("Tridium", ("tridium", "tridium inc", "vykon")),
    "delta-electronics": ("Delta Electronics", ("delta electronics", "deltaww", "delta electronics inc")),
    "beckhoff": ("Beckhoff", ("beckhoff", "beckhoff automation")),
    # Rosemount is an Emerson brand (HART manufacturer 0x26; advisories say "Emerson Rosemount ...")
    "emerson": ("Emerson", ("emerson", "emerson electric", "emerson process management", "rosemount",
                            "emerson rosemount")),
    "hirschmann": ("Belden Hirschmann", ("hirschmann", "belden", "belden hirschmann",
                                         "hirschmann automation and control")),
    "prosoft": ("ProSoft Technology", ("prosoft technology", "prosoft")),
    "yokogawa": ("Yokogawa", ("yokogawa", "yokogawa electric")),
    "bosch": ("Bosch Rexroth", ("bosch rexroth", "bosch")),
    "unitronics": ("Unitronics", ("unitronics",)),
    "advantech": ("Advantech", ("advantech", "advantech co")),
    "cisco": ("Cisco", ("cisco", "cisco systems")),
    "fortinet": ("Fortinet", ("fortinet",)),
}

# CIP / EtherNet/IP vendor IDs seen in identity objects (ODVA registry facts).
CIP_VENDOR_IDS = {1: "rockwell", 0x0135: "prosoft", 0x002C: "omron", 0x0028: "wago",
                  0x0030: "phoenix-contact", 0x0108: "beckhoff", 0x00A1: "schneider"}

_SUFFIXES = re.compile(r"\b(inc|llc|ltd|gmbh|ag|co|corp|corporation|company|s\.?a|se|plc|kg|"
                       r"limited|international|technologies|group)\b\.?")

_ALIAS: dict[str, str] = {}
for _key, (_display, _aliases) in _VENDORS.items():
    _ALIAS[_key] = _key
    for _a in _aliases:
        _ALIAS[_a] = _key


def _clean(name: str) -> str:
    s = name.lower().replace("_", " ").replace("\u00a0", " ")
    s = re.sub(r"[,.;:]", " ", s)
    s = re.sub(r"\s+", " ", s).strip()
    return s


@lru_cache(maxsize=4096)
def vendor_key(name: str | None) -> str | None:
    """One key per company; None for an empty name. Unknown vendors keep their cleaned name."""
    if not name or not str(name).strip():
        return None
    s = _clean(str(name))
    if s in _ALIAS:
        return _ALIAS[s]
    stripped = re.sub(r"\s+", " ", _SUFFIXES.sub(" ", s)).strip()
    if stripped in _ALIAS:
        return _ALIAS[stripped]
    # "Rockwell Automation/Allen-Bradley", "PHOENIX CONTACT, Innominate": any known part names it
    for part in re.split(r"\s*(?:/|\band\b|&|\(|\))\s*", s):
        part = part.strip()
        if part in _ALIAS:
            return _ALIAS[part]
    # a known alias at the start ("Siemens Healthineers" stays distinct only if listed)
    for alias, key in _ALIAS.items():
        if len(alias) >= 4 and (stripped == alias or stripped.startswith(alias + " ")):
            return key
    return stripped or s


def vendor_keys(name: str | None) -> set[str]:
    """All companies a multi-vendor label names ("General Electric (GE) and Emerson")."""
    if not name:
        return set()
    keys = {vendor_key(name)}
    for part in re.split(r"\s+and\s+|\s*/\s*|\s*&\s*|,\s*", str(name)):
        k = vendor_key(part) if part.strip() else None
        if k in _VENDORS:      # only parts that name a known company ("LLC" names none)
            keys.add(k)
    keys.discard(None)
    return keys  # type: ignore[return-value]


def display_name(key: str | None) -> str | None:
    if key is None:
        return None
    return _VENDORS[key][0] if key in _VENDORS else key.title()


def vendor_from_identity(identity: dict) -> str | None:
    """The vendor key a device identity names (vendor text first, then a CIP vendor ID)."""
    key = vendor_key(identity.get("vendor"))
    if key:
        return key
    vid = identity.get("vendor_id")
    try:
        vid = int(str(vid), 0) if vid is not None else None
    except ValueError:
        vid = None
    return CIP_VENDOR_IDS.get(vid) if vid is not None else None
