"""Device identity -> advisories, on the real CSAF sample. The identities are those the
captures carry (icsnpp-enip cip_identity.log; icsnpp-s7comm s7comm_known_devices.log and the
SZL 0x0011 order number). The oracle for which advisories a device should meet is the sample's
DERIVED index (vuln/csaf/csaf_ot_index.csv, column matches_device_seen_in_pcaps)."""
import csv

import pytest

from conftest import shared_path
from plantguard.knowledge.intel import import_paths
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
from plantguard.store.db import open_engine

ENBT = dict(vendor="Rockwell Automation/Allen-Bradley", product="1756-ENBT/A", firmware="4.3", product_code=58,
            device_type="Communications Adapter")
S7_315 = dict(vendor="Siemens", product="CPU 315-2 PN/DP", order_number="6ES7 315-2EH14-0AB0", firmware="V3.2.6")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    engine = open_engine(tmp_path_factory.mktemp("intel") / "intel.db")
    import_paths(engine, [shared_path("vuln")])
    return IntelIndex.load(engine)


def _oracle(device: str) -> set[str]:
    rows = csv.DictReader(shared_path("vuln/csaf/csaf_ot_index.csv").open())
    return {r["advisory_id"] for r in rows
            if r["in_sample"] == "yes" and device in r["matches_device_seen_in_pcaps"].split("|")}


def _ids(index, ident):
    return {m.advisory_id: m for m in index.match(DeviceIdentity.from_identity(ident))}


def test_enbt_matches_icsa_18_310_02_with_reason(index):
    got = _ids(index, ENBT)
    assert set(got) == _oracle("1756-ENBT") == {"ICSA-18-310-02"}
    m = got["ICSA-18-310-02"]
    assert m.confidence == "high" and m.match.basis == "catalogue-number"
    assert m.match.version_verdict == "all-versions"
    assert any("1756-ENBT" in r for r in m.match.reasons)
    assert any("Rockwell Automation" in r for r in m.match.reasons)      # vendor folded from "…/Allen-Bradley"
    assert [c.cve for c in m.cves] == ["CVE-2018-17924"] and m.max_cvss == 8.6


def test_s7_315_matches_the_s7_300_advisories(index):
    got = _ids(index, S7_315)
    oracle = _oracle("S7-300 CPU 315-2 PN/DP")
    assert len(oracle) == 15
    assert set(got) == oracle
    exact = {a for a, m in got.items() if m.confidence == "exact"}
    family = {a for a, m in got.items() if m.match.basis == "family"}
    assert exact and family and exact | family == oracle
    m = got["ICSA-19-283-01"]
    assert m.match.basis == "order-number" and m.fixed_in == "V3.2.17"
    assert "order number 6ES7 315-2EH14-0AB0" in m.match.reasons[1]
    assert "V3.2.6 is in the affected range <V3.2.17" in m.match.reasons[-1]
    fam = got["ICSA-17-339-01"]
    assert fam.confidence == "medium" and "family S7-300 only" in " ".join(fam.match.reasons)


def test_firmware_unknown_lowers_confidence(index):
    got = _ids(index, {k: v for k, v in S7_315.items() if k != "firmware"})
    assert got["ICSA-19-283-01"].confidence == "high"          # order number, firmware unknown
    assert got["ICSA-20-105-08"].confidence == "exact"         # all versions affected
    assert got["ICSA-17-339-01"].confidence == "low"           # family only, firmware unknown


def test_name_only_identity_still_matches(index):
    # the SZL component name alone (no order number): product-name or family matches
    got = _ids(index, dict(vendor="Siemens", product="CPU 315-2 PN/DP", firmware="V3.2.6"))
    assert "ICSA-19-283-01" in got and got["ICSA-19-283-01"].match.basis == "product-name"


@pytest.mark.parametrize("ident, absent", [
    # fixed firmware: the "< V3.2.17" and "< V3.2.19" advisories no longer apply
    (dict(S7_315, firmware="V3.2.19"), {"ICSA-19-283-01", "ICSA-19-283-02", "ICSA-22-104-06", "ICSA-22-314-02",
                                         "ICSA-23-222-09", "ICSA-19-099-06", "ICSA-17-339-01"}),
    # same vendor, a ControlLogix controller is not one of the communication modules
    (dict(vendor="Rockwell Automation/Allen-Bradley", product="1756-L61/B LOGIX5561", firmware="16.20"),
     {"ICSA-18-310-02"}),
    # 1756-EN2T Series D is affected up to 10.10 only
    (dict(vendor="Rockwell Automation", product="1756-EN2T/D", firmware="10.11"), {"ICSA-18-310-02"}),
    # another vendor's device with the same catalogue text
    (dict(vendor="Schneider Electric", product="1756-ENBT/A", firmware="4.3"), {"ICSA-18-310-02"}),
    # the SIPLUS variant has its own order number: the SIMATIC entry is not it
    (dict(vendor="Siemens", product="CPU 1214C", order_number="6ES7 315-2EH14-0AB9", firmware="V3.2.6"),
     {"ICSA-19-283-01"}),
])
def test_negative_cases(index, ident, absent):
    assert not set(_ids(index, ident)) & absent


def test_same_vendor_other_line_meets_only_its_own_products(index):
    got = _ids(index, dict(vendor="Siemens", product="CPU 1214C DC/DC/DC", order_number="6ES7 214-1AG40-0XB0",
                           firmware="V4.5"))
    assert got and all("S7-1200" in m.match.product.name for m in got.values())
    assert got["ICSA-24-284-01"].confidence == "exact"
    # advisories covering both lines match through their S7-1200 entry, never the S7-300 one
    assert "S7-300" not in got["ICSA-22-314-02"].match.product.name


def test_en2t_series_d_inside_its_range_matches(index):
    m = _ids(index, dict(vendor="Rockwell Automation", product="1756-EN2T/D", firmware="10.10"))["ICSA-18-310-02"]
    assert "Series D" in m.match.reasons and m.confidence == "high"


def test_l61_meets_only_its_5560_line(index):
    got = _ids(index, dict(vendor="Rockwell Automation/Allen-Bradley", product="1756-L61/B LOGIX5561", firmware="16.20"))
    assert "ICSA-22-090-05" in got                      # lists ControlLogix 5560 controllers, all versions
    assert "ICSA-21-061-02" not in got                  # ControlLogix 5570 only
    assert got["ICSA-22-090-05"].match.basis == "family"


def test_kev_cves_are_flagged(index):
    got = _ids(index, dict(vendor="Siemens", product="RUGGEDCOM APE1808", firmware="V10.0"))
    kev = {c.cve for m in got.values() for c in m.known_exploited}
    assert {"CVE-2024-21762", "CVE-2024-23113", "CVE-2023-44487", "CVE-2022-0028"} <= kev
    first = index.match(DeviceIdentity.from_identity(dict(vendor="Siemens", product="RUGGEDCOM APE1808",
                                                          firmware="V10.0")))[0]
    assert first.known_exploited                        # KEV matches sort first
    assert index.kev["CVE-2024-21762"]["vendor"] == "Fortinet"


def test_no_identity_no_match(index):
    assert index.match(DeviceIdentity.from_identity({})) == []
    assert index.match(DeviceIdentity.from_identity({"vendor": "Siemens"})) == []


def test_csaf_vex_in_the_store_answers_for_a_product(tmp_path):
    import json
    vex = tmp_path / "siemens-vex.json"
    vex.write_text(json.dumps({
        "document": {"category": "csaf_vex", "csaf_version": "2.0", "title": "VEX", "tracking": {"id": "VEX-S7-1"},
                     "publisher": {"name": "Siemens"}},
        "product_tree": {"branches": [{"category": "vendor", "name": "Siemens", "branches": [
            {"category": "product_name", "name": "SIMATIC S7-300 CPU 315-2 PN/DP (6ES7315-2EH14-0AB0)",
             "branches": [{"category": "product_version_range", "name": "vers:all/<V3.2.17",
                           "product": {"name": "S7-315 before V3.2.17", "product_id": "P1",
                                       "product_identification_helper": {"model_numbers": ["6ES7315-2EH14-0AB0"]}}}]}]}]},
        "vulnerabilities": [{"cve": "CVE-2019-10923", "product_status": {"known_not_affected": ["P1"]}}]}))
    engine = open_engine(tmp_path / "i.db")
    import_paths(engine, [shared_path("vuln/csaf/2019/icsa-19-283-01.json"), vex])
    idx = IntelIndex.load(engine)
    assert _ids(idx, S7_315) == {}                       # the only CVE is answered by the VEX
    other = dict(S7_315, order_number="6ES7 317-2EK14-0AB0", product="CPU 317-2 PN/DP")
    assert "ICSA-19-283-01" in _ids(idx, other)          # the VEX speaks for the 315 only


DETERMINISM = """
import json, sys
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
from plantguard.store.db import open_engine
index = IntelIndex.load(open_engine(sys.argv[1]))
out = []
for ident in json.loads(sys.argv[2]):
    out.append([(m.advisory_id, m.confidence) for m in index.match(DeviceIdentity.from_identity(ident))])
print(json.dumps(out))
"""


def test_matching_does_not_depend_on_the_hash_seed(tmp_path):
    import json
    import os
    import subprocess
    import sys
    db = tmp_path / "intel.db"
    import_paths(open_engine(db), [shared_path("vuln")])
    idents = [dict(vendor="Siemens", product="SINUMERIK PCU50.5-P WIN7"), S7_315, ENBT,
              dict(vendor="Siemens", product="SIMATIC S7-1500 CPU 1516-3 PN/DP", firmware="V2.8")]
    runs = {subprocess.run([sys.executable, "-c", DETERMINISM, str(db), json.dumps(idents)], check=True,
                           capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2", "3", "4")}
    assert len(runs) == 1
