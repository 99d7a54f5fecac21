"""Identity learnt by `plantguard probe --send` from a real Modbus stack fills in what passive
traffic lacked: a PLC the shared capture only shows being polled gets vendor, product and
firmware with provenance `active`, its time and evidence, and the advisory matching then finds
its advisories; the report says which identities came from probing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_path
from support.probe import namespace_pair, probe_json, site_file, stop

pytestmark = pytest.mark.slow

SERVERS = Path(__file__).parent / "support" / "probe_servers.py"
POLLED_PLC = "141.81.0.24"      # polled in ModbusTCP.pcap, never asked who it is
IDENTITY = {"vendor": "Schneider Electric", "product_code": "BMX P34 2020", "firmware": "2.70",
            "product": "Modicon M340", "model": "BMX P34 2020 CPU"}


def _plantguard(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "plantguard", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    capture = shared_path("pcaps/ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap")
    vuln = shared_path("vuln")
    tmp = tmp_path_factory.mktemp("probe-inventory")
    db = tmp / "plantguard.db"
    imported = _plantguard("intel", "import", str(vuln), "--db", str(db))
    assert imported.returncode == 0, imported.stderr
    site = site_file(tmp, ["modbus"], network="141.81.0.0/24")
    with namespace_pair() as pair:
        subprocess.run(["ip", "-n", pair.device, "addr", "add", f"{POLLED_PLC}/32", "dev", pair.device_if], check=True)
        subprocess.run(["ip", "-n", pair.probe, "route", "add", f"{POLLED_PLC}/32", "dev", pair.probe_if], check=True)
        subprocess.run(["ip", "-n", pair.probe, "neigh", "replace", POLLED_PLC, "lladdr", "02:77:00:00:00:02",
                        "dev", pair.probe_if, "nud", "permanent"], check=True)
        table = {"VendorName": IDENTITY["vendor"], "ProductCode": IDENTITY["product_code"],
                 "MajorMinorRevision": IDENTITY["firmware"], "ProductName": IDENTITY["product"],
                 "ModelName": IDENTITY["model"]}
        server = pair.start(pair.device, [sys.executable, str(SERVERS), "modbus", "0.0.0.0:502", json.dumps(table)],
                            ready=3.0)
        try:
            sent = probe_json(pair.plantguard("probe", "--site", str(site), "--targets", POLLED_PLC, "--send",
                                              "--db", str(db), "--evidence", str(tmp / "evidence"),
                                              "--format", "json"))
        finally:
            stop(server)
    before = _plantguard("assess", str(capture), "--site", str(site), "-f", "json", "-o", str(tmp / "before.json"),
                         "--db", str(tmp / "empty.db"))
    after = _plantguard("assess", str(capture), "--site", str(site), "-f", "json", "-o", str(tmp / "after.json"),
                        "--db", str(db))
    html = _plantguard("assess", str(capture), "--site", str(site), "-o", str(tmp / "report.html"), "--db", str(db))
    for r in (before, after, html):
        assert r.returncode in (0, 1), r.stderr
    return {"sent": sent, "before": json.loads((tmp / "before.json").read_text()),
            "after": json.loads((tmp / "after.json").read_text()), "html": (tmp / "report.html").read_text()}


def _asset(contract, ip):
    return next(a for a in contract["assets"] if a["ip"] == ip)


def test_the_probe_reads_the_configured_identity(probed):
    (target,) = probed["sent"]["targets"]
    assert {k: target["identity"].get(k) for k in IDENTITY} == IDENTITY
    assert target["queries"][0]["status"] == "answered"
    assert Path(probed["sent"]["evidence"]).stat().st_size > 0


def test_passive_traffic_alone_lacks_the_identity(probed):
    ident = _asset(probed["before"], POLLED_PLC)["identity"]
    assert not {"vendor", "product", "firmware"} & set(ident)


def test_assess_merges_the_probed_identity_as_active(probed):
    a = _asset(probed["after"], POLLED_PLC)
    assert {k: a["identity"].get(k) for k in IDENTITY} == IDENTITY
    for key in IDENTITY:
        src = a["identity_sources"][key]
        assert src["via"] == "active" and src["proto"] == "modbus"
        assert src["capture"] == probed["sent"]["evidence"] and src["frame"] >= 1
        assert src["at"].endswith("Z")
    assert any("learnt by plantguard probe" in n for n in probed["after"]["notes"])


def test_the_probed_identity_feeds_advisory_matching(probed):
    def advisories(contract):
        return {f["title"] for f in contract["findings"]
                if f["check"] == "vuln.advisory" and f["status"] == "fail" and POLLED_PLC in f["assets"]}
    assert not advisories(probed["before"])
    hits = advisories(probed["after"])
    assert any("Modicon M340" in t and "ICSA-" in t for t in hits), hits


def test_the_report_marks_identities_from_probing(probed):
    row = next(line for line in probed["html"].splitlines() if f">{POLLED_PLC}<" in line and "<tr>" in line)
    assert 'class="small probed"' in row and "firmware" in row


def test_the_inventory_command_shows_the_probed_identity_too(probed, tmp_path):
    db = Path(probed["sent"]["evidence"]).parent.parent / "plantguard.db"
    capture = shared_path("pcaps/ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap")
    r = _plantguard("inventory", str(capture), "--db", str(db), "-f", "json", "-o", str(tmp_path / "inv.json"))
    assert r.returncode == 0, r.stderr
    inv = json.loads((tmp_path / "inv.json").read_text())
    a = next(a for a in inv["assets"] if a["ip"] == POLLED_PLC)
    assert a["identity"]["firmware"] == IDENTITY["firmware"]
    assert a["identity_sources"]["firmware"]["via"] == "active"
