"""Successive runs accumulate; the second run says what is new, changed and gone. On SQLite and
PostgreSQL (store_url)."""
import os
import subprocess
import sys
import time
from pathlib import Path

from plantguard.inventory.build import build_assets
from plantguard.inventory.history import accumulated_assets, record_run
from plantguard.model import AnalysisResult
from plantguard.store.db import open_engine
from test_inventory_build import flow


def test_new_changed_gone_between_runs(store_url):
    engine = open_engine(store_url)
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


def test_sites_are_kept_apart(store_url):
    engine = open_engine(store_url)
    assets = build_assets(AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502)]))
    record_run(engine, assets, "inventory", [], "Plant A")
    c = record_run(engine, assets, "inventory", [], "Plant B")
    assert c.previous_run_id is None


def test_runs_released_together_are_serialised(store_url, tmp_path):
    """Five processes record a run of the same site at the same moment (a start file releases
    them): each is compared with the run stored just before it, and none collides with another's
    assets (on PostgreSQL, without the write lock, four of five failed on assets' unique key)."""
    open_engine(store_url).dispose()
    code = ("import os, sys, time\n"
            "from plantguard.inventory.build import build_assets\n"
            "from plantguard.inventory.history import record_run\n"
            "from plantguard.model import AnalysisResult\n"
            "from plantguard.store.db import open_engine\n"
            "from test_inventory_build import flow\n"
            "engine = open_engine(sys.argv[1])\n"
            "assets = build_assets(AnalysisResult(flows=[flow('10.0.0.5', f'10.0.0.{i}', 502) for i in range(10, 60)]))\n"
            "while not os.path.exists(sys.argv[2]):\n    time.sleep(0.002)\n"
            "c = record_run(engine, assets, 'inventory', [], 'Plant A')\n"
            "print(c.run_id, c.previous_run_id or 0)\n")
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", code, store_url, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(5)]
    time.sleep(2)     # all of them imported and waiting
    go.touch()
    pairs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        pairs.append(tuple(map(int, out.split())))
    assert sorted(pairs) == [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]
