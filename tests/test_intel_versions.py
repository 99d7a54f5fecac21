"""Firmware versions and advisory version ranges, as CISA's CSAF files actually write them."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from conftest import shared_path
from plantguard.knowledge.csaf import read_csaf, score_vector
from plantguard.knowledge.vendors import vendor_key, vendor_keys
from plantguard.knowledge.versions import compare, parse_range, parse_version


@pytest.mark.parametrize("expr, version, inside", [
    ("vers:all/*", "4.3", True),
    ("vers:all/<V3.2.17", "V3.2.6", True),
    ("vers:all/<V3.2.17", "V3.2.17", False),           # the fixed version
    ("vers:all/<V3.2.17", "3.2.18", False),
    ("< V3.X.16", "V3.2.6", True),                      # X: the device's own minor
    ("< V3.X.16", "V3.3.16", False),
    ("All versions < V3.X.17", "V3.2.16", True),
    ("<= 10.10", "10.10", True),
    ("<= 10.10", "10.11", False),
    ("<= 33", "33.011", True),                          # "33 and prior" includes 33.x
    (">= V7.80 < V9.30", "V8.0", True),
    (">= V7.80 < V9.30", "V9.30", False),
    (">= V7.80 < V9.30", "V7.79", False),
    (">v33.011|<v33.015", "33.012", True),
    ("All Versions < V6.14", "6.13", True),
    ("< V4.7 SP9 HF1", "V4.7 SP9", True),
    ("< V4.7 SP9 HF1", "V4.7 SP9 HF1", False),
    ("All versions < V1.5 SP3 Update 2", "V1.5 SP3 Update 1", True),
    ("vers:all/>=V2022.4<V2023.1", "V2022.5", True),
    ("<=24031", "24032", False),
    ("20-33", "16.20", False),
    ("20-33", "33.011", True),
])
def test_ranges(expr, version, inside):
    assert parse_range(expr).contains(version) is inside


@pytest.mark.parametrize("expr", ["< SIMATIC WinAC RTX 2010 SP3", "<=the_first_5_digits_of_serial_number_22081"])
def test_unreadable_ranges_say_unknown(expr):
    r = parse_range(expr)
    assert r.kind == "unknown" and r.contains("1.0") is None and "plantguard can read" in r.describe()


def test_unknown_firmware_is_not_a_verdict():
    assert parse_range("vers:all/<V3.2.17").contains(None) is None
    assert parse_range("vers:all/<V3.2.17").contains("") is None


@pytest.mark.parametrize("text, kind", [("v5.027", "exact"), ("15.0 SP1", "exact"), ("1783-SAD2T2SBK9", "unknown"),
                                        ("CODESYS V3 Simulation Runtime", "unknown"), ("vers:all/*", "all"),
                                        ("1.3 (formerly Power Manager)", "exact")])
def test_exact_versions(text, kind):
    assert parse_range(text, exact=True).kind == kind


def test_fixed_in():
    assert parse_range("vers:all/<V3.2.17").fixed_in == "V3.2.17"
    assert parse_range("<= 10.10").fixed_in is None


def test_version_order():
    assert compare("V3.2.6", "V3.2.16") < 0
    assert compare("FRN 21.004", "21.003") > 0
    assert compare("1.0rc1", "1.0") < 0
    assert compare("V4.7 SP9 HF1", "V4.7 SP9") > 0
    assert compare("n/a", "1.0") is None


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzz_parsers_never_raise(text):
    parse_version(text)
    r = parse_range(text)
    r.contains(text)
    r.describe()
    parse_range(text, exact=True).contains("1.2.3")
    vendor_key(text)
    vendor_keys(text)


def test_vendor_names_fold_to_one_company():
    assert {vendor_key(n) for n in ("Rockwell Automation", "Allen-Bradley", "Rockwell Automation/Allen-Bradley",
                                    "rockwellautomation")} == {"rockwell"}
    assert vendor_key("Schneider Electric Software, LLC") == vendor_key(" Schneider Electric") == "schneider"
    assert vendor_key("3S-Smart Software Solutions GmbH") == vendor_key("CODESYS, GmbH") == "codesys"
    assert vendor_keys("General Electric (GE) and Emerson") == {"ge", "emerson"}
    assert vendor_key("Delta Electronics") != vendor_key("Delta Controls")


def test_csaf_reader_on_a_real_advisory():
    doc = read_csaf(json.loads(shared_path("vuln/csaf/2018/icsa-18-310-02.json").read_text()))
    assert doc.id == "ICSA-18-310-02" and doc.category == "csaf_security_advisory"
    enbt = next(p for p in doc.products if p.product_id == "CSAFPID-0007")
    assert enbt.vendor_key == "rockwell" and enbt.product_name.endswith("1756-ENBT")
    assert enbt.version_text == "vers:all/*"
    assert [v.cve for v in doc.vulns] == ["CVE-2018-17924"]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(
                        st.sampled_from(["branches", "category", "name", "product", "product_id", "vulnerabilities",
                                         "product_status", "known_affected", "scores", "cvss_v3", "vectorString",
                                         "remediations", "notes", "text", "cve"]), children, max_size=5),
                    max_leaves=40))
@settings(max_examples=200, deadline=None)
def test_fuzz_csaf_garbage_never_raises_past_reader(tree):
    read_csaf({"document": {"csaf_version": "2.0", "tracking": tree}, "product_tree": tree,
               "vulnerabilities": tree if isinstance(tree, list) else [tree]})


def test_cvss_vectors_scored_by_the_library():
    assert score_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")[2:] == (9.8, "critical")
    assert score_vector("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")[0] == "4.0"
    assert score_vector("CVSS:3.1/AV:X/garbage") is None


def test_wildcard_fix_reads_as_the_devices_line():
    from plantguard.knowledge.versions import resolve_wildcards
    assert resolve_wildcards("V3.X.16", "V3.2.6") == "V3.2.16"
    assert resolve_wildcards("V3.X.16", None) == "V3.X.16"
    assert resolve_wildcards("V3.2.17", "V3.2.6") == "V3.2.17"
