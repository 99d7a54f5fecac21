#!/usr/bin/env python3
"""Build plantguard's compliance catalog (src/plantguard/data/compliance/*.csv) from the team's
reference tables in shared/data/compliance/derived/.

Only identifiers, short titles, baseline flags and mapping pairs are written: never descriptive
text (some upstream outlines are AGPL or paraphrase copyrighted standards). The product ships the
built files; this script documents how they were made and lets anyone rebuild them.

    python tools/build_data/compliance_catalog.py [--src DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SRC = Path(os.environ.get("PLANTGUARD_SHARED_DATA", ROOT.parent / "shared" / "data")) \
    / "compliance" / "derived"
DEFAULT_OUT = ROOT / "src" / "plantguard" / "data" / "compliance"

MAX_TITLE = 120   # a short title, never a paragraph


def read(src: Path, name: str) -> list[dict]:
    with open(src / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write(out: Path, name: str, fields: list[str], rows: list[dict]) -> None:
    with open(out / name, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"{name}: {len(rows)} rows")


def short(title: str) -> str:
    t = " ".join((title or "").split())
    if len(t) > MAX_TITLE:
        raise SystemExit(f"title too long to be a short title: {t[:60]}...")
    return t


def flag(v: str) -> str:
    return "Y" if (v or "").strip().upper() == "Y" else ""


def sr_key(sr: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", sr))


def nist_key(cid: str) -> tuple:
    m = re.fullmatch(r"([A-Z]{2})-(\d+)(?:\((\d+)\))?", cid)
    return (m.group(1), int(m.group(2)), int(m.group(3) or 0)) if m else (cid, 0, 0)


def build_62443(src: Path) -> list[dict]:
    rows = [{"id": r["sr_id"], "fr": r["fr"], "fr_title": short(r["fr_title"]), "title": short(r["title"])}
            for r in read(src, "iec62443_3_3_sr.csv")]
    return sorted(rows, key=lambda r: sr_key(r["id"]))


def build_80053(src: Path) -> list[dict]:
    overlay = {r["control_id"]: r for r in read(src, "nist_800_82r3_ot_overlay.csv")}
    rows = []
    for r in read(src, "nist_800_53r5_controls.csv"):
        if flag(r["withdrawn"]):
            continue
        o = overlay.get(r["control_id"], {})
        rows.append({
            "id": r["control_id"], "family": r["family"], "family_title": short(r["family_title"]),
            "parent": r["parent_id"], "title": short(r["title"]),
            "low": flag(r["b_low"]), "mod": flag(r["b_moderate"]), "high": flag(r["b_high"]),
            # in an OT baseline (or org-wide PM); rows the overlay removed everywhere are not
            "in_ot_overlay": "Y" if any(flag(o.get(k)) for k in ("low", "mod", "high", "org_wide")) else "",
            "ot_low": flag(o.get("low")), "ot_mod": flag(o.get("mod")), "ot_high": flag(o.get("high")),
            "ot_org_wide": flag(o.get("org_wide")), "ot_discussion": flag(o.get("ot_discussion")),
            "ot_added": (o.get("added_in") or "").replace(",", "|"),
            "ot_removed": (o.get("removed_in") or "").replace(",", "|"),
        })
    missing = set(overlay) - {r["id"] for r in rows}
    if missing:
        raise SystemExit(f"overlay IDs not in the active 800-53 catalog: {sorted(missing)}")
    return sorted(rows, key=lambda r: nist_key(r["id"]))


def build_iso(src: Path) -> list[dict]:
    rows = [{"id": r["control_id"], "theme": r["theme"], "title": short(r["title"])}
            for r in read(src, "iso27001_2022_annexA.csv")]
    return sorted(rows, key=lambda r: sr_key(r["id"]))


def build_attack(src: Path) -> tuple[list[dict], list[dict], list[dict]]:
    tech = [{"id": r["technique_id"], "name": short(r["name"]), "tactics": r["tactics"]}
            for r in read(src, "attack_ics_techniques.csv")]
    mit = [{"id": r["mitigation_id"], "name": short(r["name"])} for r in read(src, "attack_ics_mitigations.csv")]
    pairs = sorted({(r["technique_id"], r["mitigation_id"]) for r in read(src, "attack_ics_technique_mitigation.csv")})
    tm = [{"technique": t, "mitigation": m} for t, m in pairs]
    return sorted(tech, key=lambda r: r["id"]), sorted(mit, key=lambda r: r["id"]), tm


FW_OF_SOURCE = {"IEC62443-3-3": "iec62443-3-3", "NIST-800-53r5": "nist-800-53r5"}


def build_mappings(src: Path, sr_ids: set, nist_ids: set, iso_ids: set, mit_ids: set) -> list[dict]:
    """Published pairs only: ATT&CK mitigation labels (-> 62443-3-3 SR, -> 800-53r5) and the NIST
    OLIR informative reference 800-53r5 -> ISO 27001:2022 (Annex A controls only)."""
    out: set[tuple] = set()
    for r in read(src, "attack_ics_mitigation_controls.csv"):
        fw = FW_OF_SOURCE.get(r["framework"])
        if not fw:
            continue   # 62443-4-2 CRs and the one Rev.4-only label are outside the shipped catalog
        out.add(("attack-ics", r["mitigation_id"], fw, r["control_id"], "label", "MITRE ATT&CK for ICS v14 mitigation labels"))
    for r in read(src, "map_nist_800_53r5_to_iso27001_2022.csv"):
        if r["dst_id"].startswith("A."):
            out.add(("nist-800-53r5", r["src_id"], "iso27001-2022", r["dst_id"], r["relationship"],
                     "NIST OLIR SP 800-53r5 to ISO/IEC 27001:2022"))
    known = {"iec62443-3-3": sr_ids, "nist-800-53r5": nist_ids, "iso27001-2022": iso_ids, "attack-ics": mit_ids}
    bad = [p for p in out if p[1] not in known[p[0]] or p[3] not in known[p[2]]]
    if bad:
        raise SystemExit(f"mapping pairs naming unknown IDs: {sorted(bad)[:10]}")
    fields = ("src_fw", "src_id", "dst_fw", "dst_id", "relationship", "source")
    return [dict(zip(fields, p)) for p in sorted(out)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    if not a.src.is_dir():
        print(f"source tables not found: {a.src}", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    sr = build_62443(a.src)
    nist = build_80053(a.src)
    iso = build_iso(a.src)
    tech, mit, tm = build_attack(a.src)
    maps = build_mappings(a.src, {r["id"] for r in sr}, {r["id"] for r in nist}, {r["id"] for r in iso},
                          {r["id"] for r in mit})
    write(a.out, "iec62443_3_3.csv", ["id", "fr", "fr_title", "title"], sr)
    write(a.out, "nist_800_53r5.csv", list(nist[0]), nist)
    write(a.out, "iso27001_2022.csv", ["id", "theme", "title"], iso)
    write(a.out, "attack_ics_techniques.csv", ["id", "name", "tactics"], tech)
    write(a.out, "attack_ics_mitigations.csv", ["id", "name"], mit)
    write(a.out, "attack_ics_technique_mitigations.csv", ["technique", "mitigation"], tm)
    write(a.out, "mappings.csv", ["src_fw", "src_id", "dst_fw", "dst_id", "relationship", "source"], maps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
