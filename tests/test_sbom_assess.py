"""The SBOM checks in assess: sbom.missing for controllers and gateways without one (linked by
the site file or by identity from the store), sbom.incomplete, sbom.vulnerable-component."""
import json

import pytest

from conftest import shared_path
from plantguard.checks.base import AssessContext
from plantguard.checks.registry import run_checks
from plantguard.inventory.asset import Asset
from plantguard.knowledge.intel import import_paths
from plantguard.model import AnalysisResult
from plantguard.sbom.check import check_files, store_reports
from plantguard.site import parse_site
from plantguard.store.db import open_engine

SBOM_CHECKS = {"sbom.missing", "sbom.incomplete", "sbom.vulnerable-component"}


def _s7_sbom(path):
    path.write_text(json.dumps({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "metadata": {"timestamp": "2024-05-01T00:00:00Z", "authors": [{"name": "Plant engineering"}],
                     "component": {"type": "firmware", "bom-ref": "root", "name": "SIMATIC S7-300 CPU 315-2 PN/DP",
                                   "version": "V3.2.6", "supplier": {"name": "Siemens"},
                                   "purl": "pkg:generic/siemens/s7-300-cpu-315-2-pn-dp@V3.2.6"}},
        "components": [{"type": "library", "bom-ref": "c1", "name": "zlib", "version": "1.2.13",
                        "supplier": {"name": "zlib project"}, "purl": "pkg:generic/zlib@1.2.13"}],
        "dependencies": [{"ref": "root", "dependsOn": ["c1"]}, {"ref": "c1"}]}))
    return path


def _assets():
    return [Asset("10.10.1.20", role="plc", identity=dict(vendor="Siemens", product="CPU 315-2 PN/DP",
                                                          order_number="6ES7 315-2EH14-0AB0", firmware="V3.2.6")),
            Asset("10.10.1.21", role="plc", identity=dict(vendor="Rockwell Automation", product="1756-L61/B")),
            Asset("10.10.1.30", role="gateway", identity=dict(vendor="Moxa", product="MGate 5105")),
            Asset("10.10.1.40", role="sensor")]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    e = open_engine(tmp_path_factory.mktemp("sa") / "intel.db")
    import_paths(e, [shared_path("vuln/csaf")])
    return e


def _run(site, engine, assets=None):
    ctx = AssessContext(AnalysisResult(), assets or _assets(), site, engine, {})
    findings, not_run = run_checks(ctx, only=SBOM_CHECKS)
    return {(f.check, f.status, tuple(f.assets)): f for f in findings}, not_run


def test_site_declared_sboms(tmp_path, engine):
    good = _s7_sbom(tmp_path / "s7.cdx.json")
    thin = tmp_path / "moxa.cdx.json"
    thin.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1,
                                "components": [{"type": "firmware", "name": "MGate firmware"}]}))
    site = parse_site(f"""
zones: [{{name: control, kind: ot-control, networks: [10.10.1.0/24]}}]
sboms:
  - {{file: {good}, asset: 10.10.1.20}}
  - {{file: {thin}, product: MGate 5105}}
""")
    got, not_run = _run(site, engine)
    assert not_run == []
    assert ("sbom.missing", "pass", ("10.10.1.20",)) in got
    assert ("sbom.missing", "pass", ("10.10.1.30",)) in got                # linked by product
    miss = got[("sbom.missing", "fail", ("10.10.1.21",))]
    assert "no SBOM on file" in miss.title
    assert not any(k[2] == ("10.10.1.40",) for k in got)                   # sensors need none
    inc = got[("sbom.incomplete", "fail", ("10.10.1.30",))]
    assert {m["element"] for m in inc.extra["missing"]} >= {"supplier", "version", "author", "timestamp"}
    assert ("sbom.incomplete", "pass", ("10.10.1.20",)) in got
    vul = got[("sbom.vulnerable-component", "fail", ("10.10.1.20",))]
    assert any("ICSA-19-283-01" in e.detail for e in vul.evidence)


def test_stored_sbom_linked_by_identity(tmp_path, engine):
    store_reports(engine, check_files([_s7_sbom(tmp_path / "s7.cdx.json")]))
    got, not_run = _run(None, engine)
    f = got[("sbom.missing", "pass", ("10.10.1.20",))]
    assert "identity" in f.evidence[0].detail
    assert ("sbom.missing", "fail", ("10.10.1.21",)) in got


def test_not_run_without_any_sbom_source(tmp_path):
    empty = open_engine(tmp_path / "empty.db")
    got, not_run = _run(None, empty)
    assert got == {} and {n["check"] for n in not_run} == SBOM_CHECKS
