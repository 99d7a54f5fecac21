"""`plantguard baseline accept --site site.yaml`: the accepted assets and conduits of a real
capture's baseline appended to the site file as commented entries; `plantguard site check`
passes afterwards, and uncommented they are the site file's own assets and conduits syntax.
A device's hostile identity text cannot leave the comment."""
from __future__ import annotations

import re

import yaml
from typer.testing import CliRunner

from plantguard.cli import app
from plantguard.monitor.baseline import Baseline
from plantguard.site import load_site
from test_monitor_baseline import DOWNLOAD, watch

SITE = ("site: test plant\nzones:\n  - {name: eng, kind: ot-supervisory, networks: [192.168.1.0/28]}\n"
        "  - {name: cell, kind: ot-control, networks: [192.168.1.32/27]}\n")


def test_accept_appends_commented_entries_and_the_site_stays_valid(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    _, mon = watch(tmp_path, DOWNLOAD, site=load_site(site))      # no learning: every key is new
    assets = sorted(mon.baseline.sets["asset"])
    conduits = sorted(k for k in mon.baseline.sets["conduit"] if "None" not in k and k.split(">")[0] != k.split(">")[1].split("|")[0])
    runner = CliRunner()
    r = runner.invoke(app, ["baseline", "accept", "--state", str(tmp_path / "state"), "--site", str(site)])
    assert r.exit_code == 0 and "entries appended as comments" in r.output, r.output
    text = site.read_text()
    assert text.startswith(SITE)
    r = runner.invoke(app, ["site", "check", str(site)])
    assert r.exit_code == 0, r.output
    added = text[len(SITE):]
    assert all(x.startswith("#") for x in added.splitlines() if x)
    # uncommented, the block is YAML of the site file's own keys, one entry per accepted key
    doc = yaml.safe_load(re.sub(r"(?m)^# ?", "", added.split("\n", 2)[2]))
    assert sorted(a.get("ip") or a["mac"] for a in doc["assets"]) == assets
    assert sorted(f"{c['from']}>{c['to']}|{c['allow'][0]}" for c in doc["conduits"]) == conduits
    assert ("eng", "cell") in {(c["from"], c["to"]) for c in doc["conduits"]}
    again = dict(yaml.safe_load(SITE), assets=doc["assets"], conduits=doc["conduits"])
    (tmp_path / "declared.yaml").write_text(yaml.safe_dump(again))
    r = runner.invoke(app, ["site", "check", str(tmp_path / "declared.yaml")])
    assert r.exit_code == 0, r.output
    # nothing new left: a second accept appends nothing
    r = runner.invoke(app, ["baseline", "accept", "--state", str(tmp_path / "state"), "--site", str(site)])
    assert r.exit_code == 0 and site.read_text() == text


def test_hostile_identity_stays_in_the_comment():
    b = Baseline()
    evil = "x\nengineering_workstations: [0.0.0.0/0]\u2028\x85y" + "z" * 500
    b.observe("asset", "10.0.0.9", 0.0, value={"mac": "02:00:00:00:00:09", "identity": {"vendor": evil}})
    text = b.site_entries(b.accept(), "heading")
    assert all(x.startswith("#") for x in text.splitlines() if x) and text.isascii()
    assert len(text.splitlines()) == 4 and "z" * 201 not in text
