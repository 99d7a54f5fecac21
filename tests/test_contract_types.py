"""The JSON contract is built through its types (contract.py): what `assess` writes validates
against the published JSON Schema, and validating never reorders or drops a field."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from conftest import analyze_shared
from plantguard.assess import run_assessment
from plantguard.contract import Assessment, json_schema, validated
from plantguard.demo import build_demo

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "contract.schema.json"
CAPTURES = ["pcaps/icsnpp-enip/enip_cip_example.pcap", "pcaps/icsnpp-s7comm/snap7.pcap",
            "pcaps/zeek/mqtt.pcap", "pcaps/icsnpp-bacnet/bacnet_services.pcap",
            "pcaps/zeek/modbus/modbusBig.pcap"]


@pytest.fixture(scope="module")
def demo_contract(tmp_path_factory):
    from plantguard.capture.engine import analyze
    from plantguard.site import load_site
    out = tmp_path_factory.mktemp("demo")
    cap, site = build_demo(out)
    return run_assessment(analyze([str(cap)]), load_site(site))


def test_demo_contract_validates_against_the_published_schema(demo_contract):
    jsonschema.validate(json.loads(json.dumps(demo_contract)), json.loads(SCHEMA.read_text()))
    assert json.loads(SCHEMA.read_text()) == json_schema()


def test_validation_keeps_every_field_in_order(demo_contract):
    assert json.dumps(validated(demo_contract)) == json.dumps(demo_contract)


@pytest.mark.parametrize("rel", CAPTURES)
def test_shared_capture_contracts_validate(rel):
    c = run_assessment(analyze_shared(rel))
    Assessment.model_validate(c)
    jsonschema.validate(json.loads(json.dumps(c)), json_schema())


def test_an_undeclared_finding_field_is_refused(demo_contract):
    bad = json.loads(json.dumps(demo_contract))
    bad["findings"][0]["colour"] = "red"
    with pytest.raises(Exception, match="colour"):
        validated(bad)


def test_patch_plan_entries_keep_their_order(tmp_path):
    from plantguard.capture.engine import analyze
    from plantguard.contract import PatchEntry
    from plantguard.knowledge.intel import import_paths
    from plantguard.site import load_site
    from plantguard.store.db import open_engine
    from conftest import shared_path
    db = tmp_path / "intel.db"
    import_paths(open_engine(db), [shared_path("vuln")])
    cap, site = build_demo(tmp_path / "demo")
    plan = run_assessment(analyze([str(cap)]), load_site(site), db=str(db))["patch_plan"]
    assert plan
    producer_order = ["asset", "name", "role", "zone", "criticality", "vendor", "product", "firmware",
                      "priority", "priority_reason", "target_version", "advisories", "actions", "unpatched",
                      "window", "window_note", "estimated_downtime_hours", "fits_window", "mitigations",
                      "compensating_controls"]
    for e in plan:     # build_patch_plan's order survives validation
        assert list(e) == producer_order
        assert list(PatchEntry.model_validate(e).model_dump(by_alias=True, exclude_unset=True)) == producer_order
