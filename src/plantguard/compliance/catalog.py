"""Load the shipped control catalogs and mapping pairs (data/compliance/*.csv) once per process."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

# framework key -> display title (keys are the ones checks use in Finding.controls)
FRAMEWORKS: dict[str, str] = {
    "iec62443-3-3": "IEC 62443-3-3:2013 system security requirements",
    "nist-800-53r5": "NIST SP 800-53 Rev. 5 controls",
    "nist-800-82r3-ot": "NIST SP 800-82 Rev. 3 OT overlay (800-53 controls for OT)",
    "iso27001-2022": "ISO/IEC 27001:2022 Annex A controls",
    "attack-ics": "MITRE ATT&CK for ICS techniques",
}
SHORT_NAMES = {"iec62443-3-3": "62443", "nist-800-53r5": "800-53", "iso27001-2022": "ISO",
               "attack-ics": "ATT&CK"}
ATTACK_NOTICE = ("MITRE ATT&CK for ICS data \u00a9 The MITRE Corporation. This work is reproduced and "
                 "distributed with the permission of The MITRE Corporation.")


@dataclass(frozen=True)
class Control:
    framework: str
    id: str
    title: str
    group: str = ""                      # FR / family / theme / tactics
    flags: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Mapping:
    src_fw: str
    src_id: str
    dst_fw: str
    dst_id: str
    relationship: str
    source: str


class Catalog:
    """Controls per framework (in catalog order) plus the published mapping pairs."""

    def __init__(self, controls: dict[str, dict[str, Control]], mitigations: dict[str, str],
                 technique_mitigations: dict[str, tuple[str, ...]], mappings: list[Mapping]):
        self.controls = controls
        self.mitigations = mitigations                    # M08xx -> name
        self.technique_mitigations = technique_mitigations  # T08xx -> (M08xx, ...)
        self.mappings = mappings
        self._by_src: dict[tuple[str, str], list[Mapping]] = {}
        self._by_dst: dict[tuple[str, str], list[Mapping]] = {}
        for m in mappings:
            self._by_src.setdefault((m.src_fw, m.src_id), []).append(m)
            self._by_dst.setdefault((m.dst_fw, m.dst_id), []).append(m)

    def control(self, fw: str, cid: str) -> Control | None:
        return self.controls.get(fw, {}).get(cid)

    def has(self, fw: str, cid: str) -> bool:
        if fw == "attack-ics":
            return cid in self.controls["attack-ics"] or cid in self.mitigations
        return cid in self.controls.get(fw, {})

    def ot_baselines(self, nist_id: str) -> tuple[str, ...]:
        c = self.control("nist-800-53r5", nist_id)
        if not c or not c.flags.get("in_ot_overlay"):
            return ()
        return tuple(lvl for lvl, k in (("LOW", "ot_low"), ("MOD", "ot_mod"), ("HIGH", "ot_high"))
                     if c.flags.get(k))

    def in_ot_overlay(self, nist_id: str) -> bool:
        c = self.control("nist-800-53r5", nist_id)
        return bool(c and c.flags.get("in_ot_overlay"))

    def mapped_from(self, fw: str, cid: str) -> list[Mapping]:
        return self._by_src.get((fw, cid), [])

    def mapped_to(self, fw: str, cid: str) -> list[Mapping]:
        return self._by_dst.get((fw, cid), [])

    def one_hop(self, fw: str, cid: str, target: str) -> list[tuple[str, str]]:
        """Controls of `target` reachable from (fw, cid) through one published statement, with the
        path in words: the NIST OLIR 800-53 <-> ISO pairs, or an ATT&CK mitigation whose labels
        cite both controls."""
        out: dict[str, str] = {}
        if {fw, target} == {"nist-800-53r5", "iso27001-2022"}:
            edges = self.mapped_from(fw, cid) if fw == "nist-800-53r5" else self.mapped_to(fw, cid)
            for m in edges:
                other = m.dst_id if fw == "nist-800-53r5" else m.src_id
                out[other] = f"via {SHORT_NAMES[fw]} {cid}, NIST OLIR"
        elif {fw, target} == {"nist-800-53r5", "iec62443-3-3"}:
            mits: dict[str, set[str]] = {}
            for m in self.mapped_to(fw, cid):
                if m.src_fw == "attack-ics":
                    for m2 in self.mapped_from("attack-ics", m.src_id):
                        if m2.dst_fw == target:
                            mits.setdefault(m2.dst_id, set()).add(m.src_id)
            for other, ms in mits.items():
                out[other] = f"via {SHORT_NAMES[fw]} {cid}, ATT&CK {'/'.join(sorted(ms))} labels"
        return [(k, v) for k, v in out.items() if self.has(target, k)]


_SR = re.compile(r"^SR\s*(\d+)\s*\.\s*(\d+)$", re.I)
_NIST = re.compile(r"^([A-Z]{2})-0*(\d+)(?:\s*\(0*(\d+)\))?$")
_ISO = re.compile(r"^(?:A\.?\s*)?([5-8])\.(\d+)$", re.I)


def normalize_id(fw: str, cid: str) -> str:
    """Tolerate the usual spellings a check author may use ("SR2.1", "ac-3", "8.2")."""
    s = " ".join(str(cid).split())
    if fw == "iec62443-3-3":
        m = _SR.match(s)
        return f"SR {int(m.group(1))}.{int(m.group(2))}" if m else s
    if fw in ("nist-800-53r5", "nist-800-82r3-ot"):
        m = _NIST.match(s.upper())
        return (f"{m.group(1)}-{int(m.group(2))}" + (f"({int(m.group(3))})" if m.group(3) else "")) if m else s
    if fw == "iso27001-2022":
        m = _ISO.match(s)
        return f"A.{m.group(1)}.{int(m.group(2))}" if m else s
    if fw == "attack-ics":
        return s.upper()
    return s


def _rows(name: str) -> list[dict[str, str]]:
    ref = resources.files("plantguard").joinpath("data", "compliance", name)
    with ref.open("r", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    controls: dict[str, dict[str, Control]] = {k: {} for k in ("iec62443-3-3", "nist-800-53r5",
                                                               "iso27001-2022", "attack-ics")}
    for r in _rows("iec62443_3_3.csv"):
        controls["iec62443-3-3"][r["id"]] = Control("iec62443-3-3", r["id"], r["title"],
                                                    f"{r['fr']} {r['fr_title']}")
    for r in _rows("nist_800_53r5.csv"):
        flags = {k: r[k] == "Y" for k in ("low", "mod", "high", "in_ot_overlay", "ot_low", "ot_mod",
                                           "ot_high", "ot_org_wide", "ot_discussion")}
        flags.update(parent=r["parent"], ot_added=r["ot_added"], ot_removed=r["ot_removed"])
        controls["nist-800-53r5"][r["id"]] = Control("nist-800-53r5", r["id"], r["title"],
                                                     f"{r['family']} {r['family_title']}", flags)
    for r in _rows("iso27001_2022.csv"):
        controls["iso27001-2022"][r["id"]] = Control("iso27001-2022", r["id"], r["title"], r["theme"])
    for r in _rows("attack_ics_techniques.csv"):
        controls["attack-ics"][r["id"]] = Control("attack-ics", r["id"], r["name"], r["tactics"])
    mitigations = {r["id"]: r["name"] for r in _rows("attack_ics_mitigations.csv")}
    tm: dict[str, list[str]] = {}
    for r in _rows("attack_ics_technique_mitigations.csv"):
        tm.setdefault(r["technique"], []).append(r["mitigation"])
    mappings = [Mapping(r["src_fw"], r["src_id"], r["dst_fw"], r["dst_id"], r["relationship"], r["source"])
                for r in _rows("mappings.csv")]
    return Catalog(controls, mitigations, {k: tuple(v) for k, v in tm.items()}, mappings)
