"""The shipped compliance catalog: counts, IDs, OT overlay flags and mapping pairs, checked against
the team's reference tables (shared/data/compliance) and the framework structures."""
from __future__ import annotations

import csv
import filecmp
import subprocess
import sys
from pathlib import Path

from conftest import shared_path
from plantguard.compliance import load_catalog, normalize_id
from plantguard.compliance.attestations import ATTESTATIONS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "plantguard" / "data" / "compliance"


def test_catalog_sizes_match_the_framework_structures():
    cat = load_catalog()
    assert len(cat.controls["iec62443-3-3"]) == 51
    assert len(cat.controls["iso27001-2022"]) == 93
    assert len(cat.controls["nist-800-53r5"]) == 1007      # active items of catalog 5.0.1
    assert len(cat.controls["attack-ics"]) == 81
    assert len(cat.mitigations) == 52
    per_fr = {}
    for c in cat.controls["iec62443-3-3"].values():
        fr = c.group.split()[0]
        per_fr[fr] = per_fr.get(fr, 0) + 1
    assert per_fr == {"FR1": 13, "FR2": 12, "FR3": 9, "FR4": 3, "FR5": 4, "FR6": 2, "FR7": 8}
    themes = {}
    for c in cat.controls["iso27001-2022"].values():
        themes[c.group] = themes.get(c.group, 0) + 1
    assert themes == {"Organizational": 37, "People": 8, "Physical": 14, "Technological": 34}


def test_ot_overlay_baseline_counts():
    cat = load_catalog()
    nist = cat.controls["nist-800-53r5"]
    counts = {lvl: sum(1 for cid in nist if lvl in cat.ot_baselines(cid)) for lvl in ("LOW", "MOD", "HIGH")}
    # SP 800-82r3 Table 22: OT-LOW 159, OT-MOD 303, OT-HIGH 386 (PM org-wide items are separate)
    assert counts == {"LOW": 159, "MOD": 303, "HIGH": 386}
    assert sum(1 for cid in nist if cat.in_ot_overlay(cid)) == 420
    assert cat.ot_baselines("AC-17(9)") == ("LOW", "MOD", "HIGH")      # added by the overlay
    assert nist["AC-17(9)"].flags["ot_added"] == "LOW|MOD|HIGH"
    assert not cat.in_ot_overlay("SC-41")                               # removed by the overlay
    assert nist["SC-41"].flags["ot_removed"] == "LOW|MOD|HIGH"
    assert cat.ot_baselines("SC-10") == ()
    assert nist["SC-10"].flags["mod"] and nist["SC-10"].flags["high"]  # still in 800-53B itself
    assert cat.in_ot_overlay("PM-1") and nist["PM-1"].flags["ot_org_wide"]


def test_titles_are_short_and_match_reference():
    cat = load_catalog()
    assert cat.control("iec62443-3-3", "SR 1.5").title == "Authenticator management"
    assert cat.control("iec62443-3-3", "SR 5.1").group == "FR5 Restricted data flow"
    assert cat.control("nist-800-53r5", "IA-2").title == "Identification and Authentication (organizational Users)"
    assert cat.control("iso27001-2022", "A.8.22").title == "Segregation of networks"
    assert cat.control("attack-ics", "T0812").title == "Default Credentials"
    assert cat.mitigations["M0804"] == "Human User Authentication"
    for fw in cat.controls.values():
        for c in fw.values():
            assert 0 < len(c.title) <= 120, c


def test_every_mapping_id_exists_in_the_catalog():
    cat = load_catalog()
    assert cat.mappings
    for m in cat.mappings:
        assert cat.has(m.src_fw, m.src_id), m
        assert cat.has(m.dst_fw, m.dst_id), m
    for t, ms in cat.technique_mitigations.items():
        assert t in cat.controls["attack-ics"]
        assert all(m in cat.mitigations for m in ms)


def test_mitre_labels_and_olir_pairs_are_present():
    pairs = {(m.src_fw, m.src_id, m.dst_fw, m.dst_id) for m in load_catalog().mappings}
    assert ("attack-ics", "M0804", "iec62443-3-3", "SR 1.1") in pairs
    assert ("attack-ics", "M0804", "nist-800-53r5", "IA-2") in pairs
    assert ("attack-ics", "M0927", "iec62443-3-3", "SR 1.5") in pairs
    assert ("nist-800-53r5", "IA-2", "iso27001-2022", "A.5.16") in pairs
    assert not any(p[3][0].isdigit() for p in pairs if p[2] == "iso27001-2022")  # clauses dropped


def test_every_attestation_control_exists():
    cat = load_catalog()
    for aid, a in ATTESTATIONS.items():
        assert a["title"]
        for fw, ids in a["controls"].items():
            for cid in ids:
                assert cat.has(fw, cid), (aid, fw, cid)


def test_normalize_id_spellings():
    assert normalize_id("iec62443-3-3", "SR2.1") == "SR 2.1"
    assert normalize_id("iec62443-3-3", "sr 1.13") == "SR 1.13"
    assert normalize_id("nist-800-53r5", "ac-02(01)") == "AC-2(1)"
    assert normalize_id("nist-800-53r5", "SC-7 (5)") == "SC-7(5)"
    assert normalize_id("iso27001-2022", "8.22") == "A.8.22"
    assert normalize_id("iso27001-2022", "A.5.15") == "A.5.15"
    assert normalize_id("attack-ics", "t0812") == "T0812"
    assert normalize_id("nist-800-53r5", "garbage<>") == "garbage<>"


def test_one_hop_paths():
    cat = load_catalog()
    assert ("A.5.16", "via 800-53 IA-2, NIST OLIR") in cat.one_hop("nist-800-53r5", "IA-2", "iso27001-2022")
    hop = dict(cat.one_hop("iec62443-3-3", "SR 5.1", "nist-800-53r5"))
    assert set(hop) == {"AC-3", "SC-7"}
    assert hop["SC-7"] == "via 62443 SR 5.1, ATT&CK M0935/M0937 labels"
    assert dict(cat.one_hop("iso27001-2022", "A.8.5", "nist-800-53r5"))   # reverse OLIR
    assert cat.one_hop("iec62443-3-3", "SR 5.1", "iso27001-2022") == []    # two hops: not followed


def _reference_rows(name):
    with open(shared_path(f"compliance/derived/{name}"), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_catalog_agrees_with_reference_tables_field_by_field():
    cat = load_catalog()
    for r in _reference_rows("iec62443_3_3_sr.csv"):
        c = cat.control("iec62443-3-3", r["sr_id"])
        assert c.title == r["title"] and c.group.startswith(r["fr"] + " ")
    for r in _reference_rows("iso27001_2022_annexA.csv"):
        c = cat.control("iso27001-2022", r["control_id"])
        assert (c.title, c.group) == (r["title"], r["theme"])
    overlay = {r["control_id"]: r for r in _reference_rows("nist_800_82r3_ot_overlay.csv")}
    for r in _reference_rows("nist_800_53r5_controls.csv"):
        c = cat.control("nist-800-53r5", r["control_id"])
        if r["withdrawn"] == "Y":
            assert c is None
            continue
        assert c.title == r["title"]
        assert (c.flags["low"], c.flags["mod"], c.flags["high"]) == tuple(r[k] == "Y" for k in ("b_low", "b_moderate", "b_high"))
        o = overlay.get(r["control_id"])
        assert cat.ot_baselines(r["control_id"]) == (tuple(l for l, k in (("LOW", "low"), ("MOD", "mod"), ("HIGH", "high")) if o[k] == "Y") if o else ())


def test_build_script_reproduces_shipped_files(tmp_path):
    src = shared_path("compliance/derived")
    out = tmp_path / "built"
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_data" / "compliance_catalog.py"),
                    "--src", str(src), "--out", str(out)], check=True, capture_output=True)
    built = sorted(p.name for p in out.glob("*.csv"))
    assert built == sorted(p.name for p in DATA.glob("*.csv"))
    for name in built:
        assert filecmp.cmp(out / name, DATA / name, shallow=False), f"{name} differs: rebuild the data"


def test_registered_checks_cite_known_controls():
    from plantguard.checks.registry import all_checks
    checks = all_checks()
    assert checks
    cat = load_catalog()
    bad = []
    for meta, _fn in checks:
        for fw, ids in meta.controls.items():
            if fw not in cat.controls:
                bad.append((meta.id, fw, "unknown framework key"))
                continue
            for cid in ids:
                if not cat.has(fw, normalize_id(fw, cid)):
                    bad.append((meta.id, fw, cid))
        for t in meta.attack:
            if not cat.has("attack-ics", normalize_id("attack-ics", t)):
                bad.append((meta.id, "attack-ics", t))
    assert not bad, f"checks cite IDs missing from the catalog: {bad}"
