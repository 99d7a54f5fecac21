"""Successive runs accumulate; the second run says what is new, changed and gone."""
from plantguard.inventory.build import build_assets
from plantguard.inventory.history import accumulated_assets, record_run
from plantguard.model import AnalysisResult
from plantguard.store.db import open_engine
from test_inventory_build import flow


def test_new_changed_gone_between_runs(tmp_path):
    engine = open_engine(tmp_path / "pg.db")
    run1 = build_assets(AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502, app="modbus"),
                                              flow("10.0.0.5", "10.0.0.11", 502, smac="00:1d:9c:c5:13:de", app="modbus")]))
    c1 = record_run(engine, run1, "inventory", [{"path": "a.pcap", "packets": 20}], "Plant A")
    assert c1.previous_run_id is None and not c1.new
    run2 = build_assets(AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502, app="modbus"),
                                              flow("10.0.0.5", "10.0.0.10", 102, app="s7comm"),
                                              flow("10.0.0.5", "10.0.0.12", 502, smac="00:1d:9c:c5:13:df", app="modbus")]))
    c2 = record_run(engine, run2, "inventory", [{"path": "b.pcap", "packets": 30}], "Plant A")
    assert c2.previous_run_id == c1.run_id
    assert c2.new == ["10.0.0.12"]
    assert c2.gone == ["10.0.0.11"]
    assert c2.changed == {"10.0.0.10": ["services"]}
    keys = [a["ip"] for a in accumulated_assets(engine, "Plant A")]
    assert keys == ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.5"]


def test_sites_are_kept_apart(tmp_path):
    engine = open_engine(tmp_path / "pg.db")
    assets = build_assets(AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502)]))
    record_run(engine, assets, "inventory", [], "Plant A")
    c = record_run(engine, assets, "inventory", [], "Plant B")
    assert c.previous_run_id is None
