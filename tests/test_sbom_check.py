"""`sbom check`: CycloneDX (JSON/XML) and SPDX (JSON/tag-value) read by their own libraries,
validated, checked for the minimum elements, matched to advisories, with VEX applied.
The CycloneDX examples are the shared bom-examples; the complete documents and the SPDX ones
are produced here with cyclonedx-python-lib and spdx-tools (the sample has no SPDX file)."""
import json
from datetime import datetime

import pytest
from hypothesis import given, settings, strategies as st

from conftest import shared_path
from plantguard.knowledge.intel import import_paths
from plantguard.knowledge.matching import IntelIndex
from plantguard.sbom.check import check_files
from plantguard.sbom.document import SbomError, load_sbom
from plantguard.store.db import open_engine


def _reports(paths, index=None):
    return {r.path.split("bom-examples/")[-1]: r for r in check_files(paths, index)}


# ---------------------------------------------------------------- the shared examples

def test_every_example_gets_a_clear_verdict():
    reps = _reports([shared_path("sbom/bom-examples")])
    assert len(reps) == 50
    assert all(r.verdict in ("incomplete", "vex") for r in reps.values())
    vex = {k for k, r in reps.items() if r.verdict == "vex"}
    assert all("vex" in k.rsplit("/", 1)[-1] for k in vex) and len(vex) == 25
    for k, r in reps.items():
        assert r.reasons, k          # every verdict says why
        assert not r.errors, k       # all examples are schema-valid


def test_example_reasons_name_the_missing_elements():
    reps = _reports([shared_path("sbom/bom-examples/SBOM")])
    laravel = reps["SBOM/laravel-7.12.0/bom.1.4.json"]
    gaps = {g.element: g for g in laravel.gaps}
    assert set(gaps) == {"supplier", "author", "timestamp"}
    assert gaps["supplier"].missing == gaps["supplier"].total == 63
    assert "only tools are named: cyclonedx-php-composer" in gaps["author"].detail
    proton = {g.element for g in reps["SBOM/proton-bridge/proton-bridge-v1.8.0.bom.json"].gaps}
    assert proton == {"supplier", "author"}            # versions, purls, dependencies and timestamp present
    cern = {g.element for g in reps["SBOM/cern-lhc-vdm-editor-e564943/bom.json"].gaps}
    assert cern == {"supplier", "dependencies", "author"}


def test_vex_examples_list_their_statements():
    r = _reports([shared_path("sbom/bom-examples/VEX/CISA-Use-Cases/Case-1/vex-not_affected.json")])
    (rep,) = r.values()
    assert rep.verdict == "vex" and rep.reasons == ["CVE-2021-44228: not_affected (code_not_present) for product-ABC"]


# ---------------------------------------------------------------- documents made with the libraries

def _cyclonedx(tmp_path, name="fw", complete=True, fmt="json", component="openssl", cversion="1.1.1k",
               supplier="Acme Automation"):
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
    from cyclonedx.output.json import JsonV1Dot5
    from cyclonedx.output.xml import XmlV1Dot5
    from packageurl import PackageURL
    bom = Bom()
    root = Component(name="Acme PLC firmware", version="2.1", type=ComponentType.FIRMWARE, bom_ref="root",
                     supplier=OrganizationalEntity(name=supplier),
                     purl=PackageURL("generic", "acme", "plc-firmware", "2.1"))
    bom.metadata.component = root
    c = Component(name=component, version=cversion, bom_ref="c1",
                  supplier=OrganizationalEntity(name="Example Supplier") if complete else None,
                  purl=PackageURL("generic", None, component, cversion) if complete else None)
    bom.components.add(c)
    if complete:
        bom.metadata.authors.add(OrganizationalContact(name="Jane Engineer"))
        bom.register_dependency(root, [c])
    text = (JsonV1Dot5 if fmt == "json" else XmlV1Dot5)(bom).output_as_string()
    p = tmp_path / f"{name}.cdx.{fmt}"
    p.write_text(text)
    return p, bom


def _spdx(tmp_path, name="fw", complete=True, ext=".spdx.json"):
    from spdx_tools.spdx.model import (Actor, ActorType, CreationInfo, Document, ExternalPackageRef,
                                       ExternalPackageRefCategory, Package, Relationship, RelationshipType,
                                       SpdxNoAssertion)
    from spdx_tools.spdx.writer.write_anything import write_file
    creators = [Actor(ActorType.ORGANIZATION, "Acme Automation")] if complete else [Actor(ActorType.TOOL, "gen-1.0")]
    ci = CreationInfo("SPDX-2.3", "SPDXRef-DOCUMENT", name, f"https://example.com/spdx/{name}", creators,
                      datetime(2024, 5, 1, 12, 0))

    def pkg(spdx_id, pname, version, purl):
        refs = [ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)] if complete else []
        return Package(spdx_id, pname, SpdxNoAssertion(), version=version, files_analyzed=False,
                       supplier=Actor(ActorType.ORGANIZATION, "Acme Automation") if complete else SpdxNoAssertion(),
                       external_references=refs)
    pkgs = [pkg("SPDXRef-fw", "Acme PLC firmware", "2.1", "pkg:generic/acme/plc-firmware@2.1"),
            pkg("SPDXRef-zlib", "zlib", "1.2.13", "pkg:generic/zlib@1.2.13")]
    rels = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-fw")]
    if complete:
        rels.append(Relationship("SPDXRef-fw", RelationshipType.DEPENDS_ON, "SPDXRef-zlib"))
    p = tmp_path / f"{name}{ext}"
    write_file(Document(ci, packages=pkgs, relationships=rels), str(p))
    return p


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_complete_cyclonedx(tmp_path, fmt):
    p, _ = _cyclonedx(tmp_path, fmt=fmt)
    (rep,) = check_files([p])
    assert rep.format == f"cyclonedx-{fmt}" and rep.spec_version == "1.5"
    assert rep.verdict == "complete", rep.reasons
    assert rep.product["name"] == "Acme PLC firmware" and rep.product["supplier"] == "Acme Automation"


@pytest.mark.filterwarnings("ignore::UserWarning")   # the library warns when writing a BOM without dependencies
def test_incomplete_cyclonedx_names_each_gap(tmp_path):
    p, _ = _cyclonedx(tmp_path, complete=False)
    (rep,) = check_files([p])
    assert rep.verdict == "incomplete"
    assert {g.element for g in rep.gaps} == {"supplier", "unique-identifier", "dependencies", "author"}
    assert rep.gaps[0].examples == ["openssl@1.1.1k"]


def test_schema_violation_is_invalid_with_the_reason(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1,
                             "components": [{"type": "library", "version": "1.0"}]}))
    (rep,) = check_files([p])
    assert rep.verdict == "invalid"
    assert any("components/0" in e and "'name' is a required property" in e for e in rep.errors)


@pytest.mark.parametrize("ext, fmt", [(".spdx.json", "spdx-json"), (".spdx", "spdx-tag-value")])
def test_spdx_complete_and_incomplete(tmp_path, ext, fmt):
    (rep,) = check_files([_spdx(tmp_path, "good", True, ext)])
    assert rep.format == fmt and rep.verdict == "complete", rep.reasons
    assert rep.product["name"] == "Acme PLC firmware" and rep.components == 1
    (rep,) = check_files([_spdx(tmp_path, "thin", False, ext)])
    assert rep.verdict == "incomplete"
    assert {g.element for g in rep.gaps} == {"supplier", "unique-identifier", "dependencies", "author"}
    assert "only tools are named: gen-1.0" in next(g.detail for g in rep.gaps if g.element == "author")


def test_broken_spdx_tag_value_is_invalid(tmp_path):
    p = tmp_path / "broken.spdx"
    p.write_text("SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\nSPDXID: SPDXRef-DOCUMENT\nPackageName: x\n"
                 "PackageVersion: \nCreated: not-a-date\n")
    (rep,) = check_files([p])
    assert rep.verdict == "invalid" and rep.errors


def test_not_an_sbom(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    (rep,) = check_files([p])
    assert rep.verdict == "invalid" and "neither CycloneDX" in rep.errors[0]
    with pytest.raises(SbomError):
        load_sbom(tmp_path / "missing.json")


@given(st.binary(max_size=400))
@settings(max_examples=150, deadline=None)
def test_fuzz_garbage_gives_a_verdict(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "g.json"
    p.write_bytes(b'{"bomFormat": "CycloneDX", "specVersion": "1.4", ' + data)
    (rep,) = check_files([p])
    assert rep.verdict in ("invalid", "incomplete", "complete", "vex")


# ---------------------------------------------------------------- advisories and VEX

@pytest.fixture(scope="module")
def index(tmp_path_factory):
    engine = open_engine(tmp_path_factory.mktemp("sb") / "intel.db")
    import_paths(engine, [shared_path("vuln/csaf")])
    return IntelIndex.load(engine)


def _firmware_sbom(tmp_path):
    """A controller SBOM whose described product is a Siemens S7-300 CPU at V3.2.6."""
    p, bom = _cyclonedx(tmp_path, "s7fw", component="SIMATIC S7-300 CPU 315-2 PN/DP", cversion="V3.2.6",
                        supplier="Siemens")
    raw = json.loads(p.read_text())
    raw["components"][0]["supplier"] = {"name": "Siemens"}
    p.write_text(json.dumps(raw))
    return p, raw


def test_component_matching_advisories_is_vulnerable(tmp_path, index):
    p, _ = _firmware_sbom(tmp_path)
    (rep,) = check_files([p], index)
    assert rep.verdict == "vulnerable"
    hits = {v.match.advisory_id: v for v in rep.vulnerable}
    assert "ICSA-19-283-01" in hits and hits["ICSA-19-283-01"].open_cves == ["CVE-2019-10923"]
    assert hits["ICSA-19-283-01"].match.confidence == "high"


def test_cyclonedx_vex_marks_a_cve_not_affected(tmp_path, index):
    p, raw = _firmware_sbom(tmp_path)
    serial = raw["serialNumber"].split(":")[-1]
    vex = tmp_path / "s7fw.vex.json"
    vex.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1, "vulnerabilities": [
        {"id": "CVE-2019-10923", "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
         "affects": [{"ref": f"urn:cdx:{serial}/1#c1"}]}]}))
    reps = {r.path: r for r in check_files([p, vex], index)}
    hit = next(v for v in reps[str(p)].vulnerable if v.match.advisory_id == "ICSA-19-283-01")
    assert hit.open_cves == [] and hit.suppressed == [{"cve": "CVE-2019-10923", "state": "not_affected",
                                                       "justification": "code_not_reachable"}]
    assert reps[str(vex)].verdict == "vex"


def test_csaf_vex_marks_a_product_not_affected(tmp_path, index):
    p, _ = _firmware_sbom(tmp_path)
    csaf_vex = tmp_path / "vendor-vex.json"
    csaf_vex.write_text(json.dumps({
        "document": {"category": "csaf_vex", "csaf_version": "2.0", "title": "VEX", "tracking": {"id": "VEX-1"},
                     "publisher": {"name": "Siemens"}},
        "product_tree": {"branches": [{"category": "vendor", "name": "Siemens", "branches": [
            {"category": "product_name", "name": "SIMATIC S7-300 CPU 315-2 PN/DP", "branches": [
                {"category": "product_version", "name": "V3.2.6",
                 "product": {"name": "SIMATIC S7-300 CPU 315-2 PN/DP V3.2.6", "product_id": "P1"}}]}]}]},
        "vulnerabilities": [{"cve": "CVE-2019-10923", "product_status": {"known_not_affected": ["P1"]}}]}))
    reps = {r.path: r for r in check_files([p, csaf_vex], index)}
    assert reps[str(csaf_vex)].verdict == "vex" and reps[str(csaf_vex)].format == "csaf-vex"
    hit = next(v for v in reps[str(p)].vulnerable if v.match.advisory_id == "ICSA-19-283-01")
    assert hit.open_cves == [] and hit.suppressed[0]["state"] == "not_affected"
