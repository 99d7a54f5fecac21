"""Importing CSAF advisories, KEV, NVD CVE JSON 2.0 and EPSS into the store (SQLite and
PostgreSQL), and intel status."""
import gzip
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from conftest import shared_path
from plantguard.knowledge.intel import has_intel, import_paths, intel_status
from plantguard.store.db import open_engine
from plantguard.store.intel_tables import Advisory, AdvisoryProduct, AdvisoryVuln, KevEntry


@pytest.fixture
def engine(store_url):
    """A fresh store on SQLite and on PostgreSQL."""
    e = open_engine(store_url)
    yield e
    e.dispose()


def _count(engine, table):
    with engine.connect() as c:
        return c.scalar(select(func.count()).select_from(table))


def test_sample_import_loads_every_advisory_and_the_kev(engine):
    vuln = shared_path("vuln")
    n_files = len(list((vuln / "csaf").rglob("icsa*.json")))
    rep = import_paths(engine, [vuln])
    assert rep.loaded["csaf"] == n_files == 234
    assert _count(engine, Advisory) == 234
    assert _count(engine, AdvisoryProduct) == rep.records["products"] > 3000
    kev = json.loads((vuln / "kev/known_exploited_vulnerabilities.json").read_text())
    assert _count(engine, KevEntry) == kev["count"] == 1404
    # the index CSV and the KEV schema are not intel: reported as skipped, not raised
    skipped = {p.rsplit("/", 1)[-1] for p, _ in rep.skipped}
    assert skipped == {"csaf_ot_index.csv", "known_exploited_vulnerabilities_schema.json"}
    with engine.connect() as c:
        v = c.execute(select(AdvisoryVuln).where(AdvisoryVuln.cve == "CVE-2018-17924")).first()
    assert v.advisory_id == "ICSA-18-310-02"
    assert v.cvss_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:N/A:H" and v.cvss_score == 8.6
    assert v.severity == "high" and v.cwe.startswith("CWE-306")
    assert "CSAFPID-0007" in v.affected       # 1756-ENBT, all versions


def test_reimport_replaces_instead_of_duplicating(engine):
    csaf = shared_path("vuln/csaf/2018")
    import_paths(engine, [csaf])
    first = (_count(engine, Advisory), _count(engine, AdvisoryProduct), _count(engine, AdvisoryVuln))
    import_paths(engine, [csaf])
    assert (_count(engine, Advisory), _count(engine, AdvisoryProduct), _count(engine, AdvisoryVuln)) == first


def test_status_says_what_is_loaded_and_how_old(engine):
    import_paths(engine, [shared_path("vuln")])
    st = intel_status(engine, now=datetime(2025, 9, 24, tzinfo=timezone.utc))
    assert st["loaded"] and has_intel(engine)
    assert st["kinds"]["csaf"]["documents"] == 234
    assert st["kinds"]["csaf"]["newest"].startswith("2024-10-10")      # newest advisory in the sample
    assert st["kinds"]["kev"]["newest"].startswith("2025-08-25")       # catalogue release
    assert st["kinds"]["kev"]["age_days"] == pytest.approx(29.3, abs=0.1)
    assert st["totals"]["kev"] == 1404


def test_empty_store_has_no_intel(engine):
    assert not has_intel(engine) and not has_intel(None)
    assert intel_status(engine)["loaded"] is False


def test_kev_csv_and_epss_and_gzip(engine, tmp_path):
    kev_csv = shared_path("vuln/kev/known_exploited_vulnerabilities.csv")
    epss = tmp_path / "epss.csv.gz"
    epss.write_bytes(gzip.compress(b"#model_version:v2023.03.01,score_date:2025-08-25T00:00:00+0000\n"
                                   b"cve,epss,percentile\nCVE-2018-17924,0.01234,0.71\nCVE-2018-0296,0.97,0.999\n"
                                   b"not-a-cve,0.5,0.5\nCVE-2020-0001,7,0.1\n"))
    rep = import_paths(engine, [kev_csv, epss])
    assert not rep.skipped
    assert rep.records["kev entries"] == 1404 and rep.records["epss scores"] == 2   # garbage rows dropped
    st = intel_status(engine)
    assert st["kinds"]["epss"]["newest"] == "2025-08-25"
    assert st["kinds"]["kev"]["newest"] == "2025-08-25"      # CSV: newest dateAdded


NVD_DOC = {
    "format": "NVD_CVE", "version": "2.0", "timestamp": "2024-01-01T00:00:00.000",
    "vulnerabilities": [{"cve": {
        "id": "CVE-2019-10936", "published": "2019-10-10T17:15:00.000",
        "descriptions": [{"lang": "en", "value": "Affected devices improperly handle large amounts of UDP packets."}],
        "metrics": {"cvssMetricV31": [{"type": "Primary", "cvssData": {
            "version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "baseScore": 7.5}}]},
        "weaknesses": [{"description": [{"lang": "en", "value": "CWE-400"}]}],
        "configurations": [{"operator": "AND", "nodes": [
            {"operator": "OR", "cpeMatch": [{"vulnerable": True,
                                             "criteria": "cpe:2.3:o:siemens:simatic_s7-300_cpu_firmware:*:*:*:*:*:*:*:*",
                                             "versionEndExcluding": "3.2.17"}]},
            {"operator": "OR", "cpeMatch": [{"vulnerable": False,
                                             "criteria": "cpe:2.3:h:siemens:simatic_s7-300_cpu_315-2_pn\\/dp:-:*:*:*:*:*:*:*"}]}]}],
    }}]}


def test_nvd_cve_json_becomes_products_with_cpe_bounds(engine, tmp_path):
    f = tmp_path / "nvdcve-2.0-sample.json"
    f.write_text(json.dumps(NVD_DOC))
    rep = import_paths(engine, [f])
    assert rep.loaded == {"nvd": 1} and rep.records["nvd cves"] == 1
    with engine.connect() as c:
        p = c.execute(select(AdvisoryProduct)).first()
        v = c.execute(select(AdvisoryVuln)).first()
    assert p.advisory_id == "CVE-2019-10936" and p.vendor_key == "siemens"
    assert p.product_name == "simatic s7-300 cpu 315-2 pn/dp"        # named by its hardware platform
    assert p.version_text == "vers:all/<3.2.17"
    assert v.cvss_score == 7.5 and v.cwe == "CWE-400" and v.affected == [p.product_id]


def test_garbage_files_are_skipped_with_a_reason(engine, tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_text(json.dumps({"document": {"csaf_version": "2.0"}, "product_tree": 5,
                                                 "vulnerabilities": [1, {"cve": None, "scores": "x"}]}))
    (tmp_path / "c.csv").write_text("x,y\n1,2\n")
    rep = import_paths(engine, [tmp_path])
    reasons = dict((p.rsplit("/", 1)[-1], r) for p, r in rep.skipped)
    assert set(reasons) == {"a.json", "c.csv"} and "JSONDecodeError" in reasons["a.json"]
    assert rep.loaded == {"csaf": 1}      # a CSAF shell with broken parts still loads, empty


from hypothesis import given, settings, strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(
                         st.sampled_from(["vulnerabilities", "cve", "id", "configurations", "nodes", "cpeMatch",
                                          "criteria", "vulnerable", "metrics", "cvssMetricV31", "cvssData",
                                          "vectorString", "cveID", "descriptions", "operator"]), c, max_size=5),
                     max_leaves=40)


@given(_json)
@settings(max_examples=200, deadline=None)
def test_fuzz_nvd_and_kev_readers(doc):
    from plantguard.knowledge.kev import read_kev_json
    from plantguard.knowledge.nvd import is_nvd, read_nvd
    wrapped = {"format": "NVD_CVE", "vulnerabilities": doc if isinstance(doc, list) else [doc]}
    try:
        read_nvd(wrapped)
    except (AttributeError, TypeError):
        pytest.fail("NVD reader raised on malformed input")
    is_nvd(doc)
    read_kev_json({"vulnerabilities": doc if isinstance(doc, list) else [doc]})
