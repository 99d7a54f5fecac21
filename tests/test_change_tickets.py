"""Change tickets: loading and CSV import (bad input is one FILE:LINE line), the verdict table,
the demo plant's program download judged by a ticket, the same download an hour later outside
it, and the `plantguard change` commands on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plantguard.changes.tickets import (
    Change,
    TicketError,
    import_csv,
    load_tickets,
    make_ticket,
    verdict,
)
from plantguard.changes.timeline import TICKETS_OPTION

WINDOW = "2024-04-14T02:00Z..2024-04-14T06:00Z"     # the demo plant's Sunday maintenance window
CLOSED_BEFORE = "2024-04-14T01:00Z..2024-04-14T02:31Z"  # closed before the download at 02:31:15
S7, EWS, VISITOR = "10.10.1.11", "10.10.1.50", "10.30.0.66"
T0 = datetime(2024, 4, 14, 2, 31, 15, tzinfo=timezone.utc).timestamp()


def _cli(*args):
    from plantguard.cli import app
    return CliRunner().invoke(app, list(args))


# -- files ------------------------------------------------------------------------------------------

def test_yaml_and_json_tickets_load(tmp_path):
    y = tmp_path / "t.yaml"
    y.write_text(f"- id: CHG1\n  plcs: [plc-s7-315, 10.10.1.0/24]\n  stations: {EWS}\n  window: {WINDOW}\n"
                 "  operations: program, mode\n"
                 "- {id: CHG2, plc: 10.10.1.10, station: [10.10.1.50], from: 2024-04-14T02:00:00+02:00, "
                 "to: 2024-04-14T03:00:00+02:00}\n")
    a, b = load_tickets(y)
    assert (a.id, a.plcs, a.stations, a.operations) == ("CHG1", ("plc-s7-315", "10.10.1.0/24"), (EWS,),
                                                        frozenset({"program", "mode"}))
    assert a.categories == {"program", "control"}
    assert (a.start.isoformat(), a.end.isoformat()) == ("2024-04-14T02:00:00+00:00", "2024-04-14T06:00:00+00:00")
    assert b.start == datetime(2024, 4, 14, 0, 0, tzinfo=timezone.utc) and not b.operations
    assert b.categories == {"write", "program", "control", "firmware", "config"}
    j = tmp_path / "t.json"
    j.write_text(json.dumps([a.as_dict()]))
    assert load_tickets(j) == [a.__class__(a.id, a.plcs, a.stations, a.start, a.end, a.operations, str(j))]


@pytest.mark.parametrize("text, expected", [
    ("- id: CHG1\n  plcs: [x]\n  stations: nope\n  window: " + WINDOW, ":3: stations: 'nope' is not an address"),
    ("- id: CHG1\n  plcs: [x]\n  stations: 1.2.3.4\n  colour: red\n  window: " + WINDOW, ":4: colour: unknown key"),
    ("- id: CHG1\n  plcs: [x]\n  stations: 1.2.3.4\n", ":1: window: missing"),
    ("- id: CHG1\n  plcs: [x]\n  stations: 1.2.3.4\n  window: 2024-04-14T02:00..2024-04-14T06:00Z\n",
     ":4: window: 2024-04-14 02:00:00 has no UTC offset"),
    ("- id: CHG1\n  plcs: [x]\n  stations: 1.2.3.4\n  window: 2024-04-14T06:00Z..2024-04-14T02:00Z\n",
     ":4: window: the window ends (2024-04-14T02:00:00Z) before it starts"),
    ("- id: CHG1\n  plcs: [x]\n  stations: 1.2.3.4\n  operations: [program, reboot]\n  window: " + WINDOW,
     ":4: operations: unknown operation 'reboot'"),
    ("- id: CHG1\n  plcs: [x\n", ":3: invalid YAML/JSON"),
    ("tickets: 3\n", ":1: expected a list of tickets"),
])
def test_ticket_file_errors_are_one_line_naming_file_and_line(tmp_path, text, expected):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(TicketError) as exc:
        load_tickets(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}{expected}"), msg
    assert "\n" not in msg


CSV_HEADER = "Number,Configuration item,Planned start date,Planned end date,Engineering station,State\n"


def test_csv_import_liberal_columns_rows_merged_cancelled_left_out(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text(CSV_HEADER
                 + f"CHG0030001,plc-s7-315,2024-04-14 02:00:00,2024-04-14 06:00:00,{EWS},Scheduled\n"
                 + f"CHG0030001,10.10.1.12,2024-04-14 02:00:00,2024-04-14 06:00:00,{EWS},Scheduled\n"
                 + f"CHG0030001,Line 1 ENBT,2024-04-14 02:00:00,2024-04-14 06:00:00,{EWS},Scheduled\n"
                 + f"CHG0030002,10.10.1.10,2024-04-14 02:00:00,2024-04-14 06:00:00,{EWS},Cancelled\n"
                 + "\n")
    with pytest.raises(TicketError, match=r"export.csv:2: Planned start date: .* has no UTC offset"):
        import_csv(p)
    (t,) = import_csv(p, timezone.utc)
    assert (t.id, t.plcs, t.stations) == ("CHG0030001", ("plc-s7-315", "10.10.1.12", "Line 1 ENBT"), (EWS,))
    assert t.covers_plc("10.10.1.99", ["line 1 enbt"]) and not t.covers_plc("10.10.1.99", ["line"])
    assert t.window_text() == "2024-04-14T02:00:00Z..2024-04-14T06:00:00Z"
    # ServiceNow's own column names
    q = tmp_path / "sn.csv"
    q.write_text("number,cmdb_ci,start_date,end_date,u_station\n"
                 f"CHG9,{S7},2024-04-14T02:00:00Z,2024-04-14T03:00:00Z,{EWS}\n")
    assert [x.id for x in load_tickets(q)] == ["CHG9"]


@pytest.mark.parametrize("rows, expected", [
    (f"CHG1,{S7},2024-04-14 02:00:00,yesterday,{EWS},\n", ":2: Planned end date: 'yesterday' is not an ISO 8601 time"),
    (f"CHG1,{S7},2024-04-14 02:00:00,2024-04-14 03:00:00,{EWS},\nCHG2,{S7},2024-04-14 02:00:00,"
     "2024-04-14 03:00:00,10.10.1.999,\n", ":3: Engineering station: '10.10.1.999' is not an address"),
    (f",{S7},2024-04-14 02:00:00,2024-04-14 03:00:00,{EWS},\n", ":2: Number: '' is not a ticket id"),
    (f"CHG1,{S7},2024-04-14 02:00:00,2024-04-14 03:00:00,{EWS},\nCHG1,{S7},2024-04-14 02:00:00,"
     f"2024-04-14 05:00:00,{EWS},\n", ":3: Planned start date: ticket CHG1 has another window"),
])
def test_csv_bad_row_is_one_line_naming_file_line_and_column(tmp_path, rows, expected):
    p = tmp_path / "export.csv"
    p.write_text(CSV_HEADER + rows)
    with pytest.raises(TicketError) as exc:
        import_csv(p, timezone.utc)
    assert str(exc.value).startswith(f"{p}{expected}"), str(exc.value)


def test_csv_without_a_station_column_and_the_cli_says_so_in_one_line(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text(f"number,cmdb_ci,start_date,end_date\nCHG1,{S7},2024-04-14T02:00Z,2024-04-14T03:00Z\n")
    res = _cli("change", "import", str(p), "--db", str(tmp_path / "s.db"))
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"plantguard: error: {p}:1: no column for stations"), res.output


# -- the verdict --------------------------------------------------------------------------------------

def _change(station=EWS, category="program", first=T0, last=None, count=1, controller=S7, names=("plc-s7-315",)):
    return Change(station, controller, "s7comm", "Request Download", category, count, first,
                  last if last is not None else first, names)


CHG = make_ticket("CHG1", [S7], [EWS], WINDOW, operations="program")


@pytest.mark.parametrize("change, tickets, authorised, reason", [
    (_change(), [CHG], True, "under ticket CHG1 (2024-04-14T02:00:00Z..2024-04-14T06:00:00Z)"),
    (_change(), [make_ticket("CHG2", ["plc-s7-315"], [EWS], WINDOW)], True, "under ticket CHG2"),
    (_change(), [make_ticket("CHG3", ["10.10.1.0/24"], [EWS], WINDOW)], True, "under ticket CHG3"),
    (_change(), [], False, f"no change ticket for {S7}"),
    (_change(controller="10.10.1.10", names=()), [CHG], False, "no change ticket for 10.10.1.10"),
    (_change(station=VISITOR), [CHG], False, f"ticket CHG1 for {S7} is for station {EWS}, not {VISITOR}"),
    (_change(category="control"), [CHG], False, "ticket CHG1 covers program, not Request Download (control)"),
    (_change(first=T0 + 4 * 3600), [CHG], False,
     "the change at 2024-04-14T06:31:15Z, after ticket CHG1 closed at 2024-04-14T06:00:00Z"),
    (_change(first=T0 - 3 * 3600), [CHG], False,
     "the change at 2024-04-13T23:31:15Z, before ticket CHG1 opened at 2024-04-14T02:00:00Z"),
    (_change(last=T0 + 3600 * 4, count=2), [CHG], False,
     "the last of 2 at 2024-04-14T06:31:15Z, after ticket CHG1 closed at 2024-04-14T06:00:00Z"),
    # first and last each in a ticket of its own: held by neither
    (_change(last=T0 + 3600 * 4, count=2), [CHG, make_ticket("CHG4", [S7], [EWS], "2024-04-14T06:00Z..2024-04-14T08:00Z")],
     False, "the last of 2 at 2024-04-14T06:31:15Z, after ticket CHG1 closed"),
])
def test_verdict_table(change, tickets, authorised, reason):
    v = verdict(change, tickets)
    assert v.authorised is authorised
    assert v.ticket == (v.reason.split()[2] if authorised else None)
    assert v.reason.startswith(reason), v.reason


# -- the demo plant judged by tickets ------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from plantguard.capture.engine import analyze
    from plantguard.demo import build_demo
    from plantguard.site import load_site
    pcap, site = build_demo(tmp_path_factory.mktemp("demo"))
    return analyze([pcap]), load_site(site)


def _assess(result, site, tickets):
    from plantguard.assess import run_assessment
    return run_assessment(result, site, db=None, options={TICKETS_OPTION: tickets})


def _program_findings(contract, controller=S7):
    return [f for f in contract["findings"] if f["check"] == "plc.unauthorized-program-change"
            and controller in f["assets"] and EWS in (f["detail"].get("stations") or f["assets"])]


def test_demo_without_tickets_is_judged_by_station_and_timeline_lists_each_change(demo, tmp_path):
    from support.demo import demo_contract
    c = demo_contract(tmp_path)
    (ews,) = _program_findings(c)
    assert ews["status"] == "pass" and "authorised stations" in ews["title"]
    downloads = [r for r in c["plc_changes"] if r["operation"] == "Request Download"]
    assert len(downloads) == 1 and downloads[0]["verdict"] == {
        "authorised": True, "ticket": None, "reason": f"from {EWS}, an authorised engineering station", "by": "station"}
    stop = [r for r in c["plc_changes"] if r["station"] == VISITOR]
    assert stop and stop[0]["verdict"]["by"] == "none" and stop[0]["category"] == "control"
    assert stop[0]["evidence"][0]["frame"] == ews_frame_of(c, VISITOR)


def ews_frame_of(contract, station):
    """The frame the plc.* finding of that station's change points at (the timeline must agree)."""
    for f in contract["findings"]:
        if f["check"] == "plc.unauthorized-program-change" and station in f["assets"] and f["status"] == "fail":
            return f["evidence"][0]["frame"]
    return None


def test_demo_program_download_inside_the_ticket_window_passes_naming_the_ticket(demo):
    result, site = demo
    c = _assess(result, site, [make_ticket("CHG0030001", ["plc-s7-315"], [EWS], WINDOW, operations="program")])
    passed = [f for f in _program_findings(c) if f["status"] == "pass"]
    assert len(passed) == 1
    f = passed[0]
    assert "under ticket CHG0030001" in f["title"] and f["detail"]["ticket"] == "CHG0030001"
    assert f["detail"]["operations"] == {"Request Download": 1, "Download Block": 1, "Download Ended": 1,
                                         "PLC Control _INSE": 1}
    # the restart (mode) is not covered by a program-only ticket
    failed = [f for f in _program_findings(c) if f["status"] == "fail"]
    assert len(failed) == 1 and "ticket CHG0030001 covers program, not PLC Control P_PROGRAM (control)" in failed[0]["title"]
    recs = {r["operation"]: r["verdict"] for r in c["plc_changes"] if r["station"] == EWS and r["controller"] == S7}
    assert recs["Request Download"]["by"] == "ticket" and recs["Request Download"]["ticket"] == "CHG0030001"
    assert recs["PLC Control P_PROGRAM"]["authorised"] is False


def test_demo_program_download_after_the_ticket_closed_fails_with_the_reason(demo):
    result, site = demo
    c = _assess(result, site, [make_ticket("CHG0030001", [S7], [EWS], CLOSED_BEFORE)])
    (f,) = _program_findings(c)
    assert f["status"] == "fail" and f["severity"] == "critical"
    assert "without a matching change ticket: the change at 2024-04-14T02:31:15.860300Z, after ticket " \
           "CHG0030001 closed at 2024-04-14T02:31:00Z" in f["title"]
    assert f["detail"]["events"] == 5 and len(f["detail"]["ticket_reasons"]) >= 2
    assert all(not r["verdict"]["authorised"] for r in c["plc_changes"])


def _download_twice(tmp: Path, gap_s: int = 3600) -> Path:
    """The demo's own program download from the engineering station, twice, gap_s apart."""
    from plantguard.demo import plant
    from plantguard.demo.detrand import DetRandom
    from plantguard.demo.frames import Network
    from plantguard.demo.hosts import ROUTER, START, S
    from plantguard.demo.pcapwriter import write_pcap
    net = Network(ROUTER, DetRandom("plantguard-demo-v1"))
    plant._ews_s7_write_and_download(net, START + 75 * S)
    plant._ews_s7_write_and_download(net, START + (75 + gap_s) * S)
    frames, _ = net.timeline.build()
    out = tmp / "download-twice.pcap"
    with open(out, "wb") as f:
        write_pcap(f, frames)
    return out


def _tshark_agrees(pcap: Path, frames: list[int]) -> None:
    """tshark finds the S7 Request Download jobs (function 0x1a, ROSCTR job) in exactly these frames."""
    import shutil
    import subprocess
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "s7comm.param.func == 0x1a && s7comm.header.rosctr == 1",
                          "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, timeout=120, check=True)
    assert [int(x) for x in out.stdout.split()] == frames


def test_same_download_an_hour_later_is_unauthorised_naming_the_second_time(demo, tmp_path):
    from plantguard.capture.engine import analyze
    _, site = demo
    result = analyze([_download_twice(tmp_path)])
    ticket = make_ticket("CHG0030001", ["plc-s7-315"], [EWS], "2024-04-14T02:00Z..2024-04-14T03:00Z")
    c = _assess(result, site, [ticket])
    (rec,) = [r for r in c["plc_changes"] if r["operation"] == "Request Download"]
    assert rec["count"] == 2 and rec["first"] == "2024-04-14T02:31:15.860300Z"
    assert rec["last"] == "2024-04-14T03:31:15.860300Z"
    assert rec["evidence_total"] == 2 and [e["time"] for e in rec["evidence"]] == [rec["first"], rec["last"]]
    _tshark_agrees(tmp_path / "download-twice.pcap", [e["frame"] for e in rec["evidence"]])
    assert rec["verdict"] == {"authorised": False, "ticket": None, "by": "none",
                              "reason": "the last of 2 at 2024-04-14T03:31:15.860300Z, after ticket "
                                        "CHG0030001 closed at 2024-04-14T03:00:00Z"}
    (f,) = _program_findings(c)
    assert f["status"] == "fail" and "the last of 2 at 2024-04-14T03:31:15.860300Z" in f["title"]
    # a ticket holding both downloads authorises them
    c2 = _assess(result, site, [make_ticket("CHG0030002", [S7], [EWS], WINDOW)])
    assert [f["status"] for f in _program_findings(c2)] == ["pass"]


# -- the commands and the store ----------------------------------------------------------------------

def test_change_commands_on_the_store(store_url, tmp_path):
    res = _cli("change", "add", "--plc", "plc-s7-315", "--station", EWS, "--window", WINDOW,
               "--ticket", "CHG0030001", "--operations", "program,mode", "--db", store_url)
    assert res.exit_code == 0, res.output
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(CSV_HEADER
                        + f"CHG0030002,10.10.1.10,2024-04-14 02:00:00,2024-04-14 03:00:00,{EWS},Scheduled\n"
                        + f"CHG0030001,{S7},2024-04-15 02:00:00,2024-04-15 03:00:00,{EWS},Scheduled\n")
    res = _cli("change", "import", str(csv_file), "--tz", "UTC", "--db", store_url)
    assert res.exit_code == 0, res.output
    assert "2 change tickets (1 added, 1 replaced)" in res.output
    res = _cli("change", "list", "--db", store_url)
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("CHG")]   # not a terminal: TSV
    assert res.output.splitlines()[0] == "ticket\twindow\tplcs\tstations\toperations"
    assert lines == [
        f"CHG0030002\t2024-04-14T02:00:00Z..2024-04-14T03:00:00Z\t10.10.1.10\t{EWS}\tall",
        f"CHG0030001\t2024-04-15T02:00:00Z..2024-04-15T03:00:00Z\t{S7}\t{EWS}\tall",
    ]
    bad = _cli("change", "add", "--plc", S7, "--station", EWS, "--window", "2024-04-14T02:00Z",
               "--ticket", "CHG3", "--db", store_url)
    assert bad.exit_code == 2 and bad.output.strip() == \
        "plantguard: error: --window: a window is FROM..TO (2024-04-14T02:00Z..2024-04-14T06:00Z)"


def test_assess_judges_by_the_stores_tickets_and_a_file(tmp_path):
    from plantguard.demo import build_demo
    pcap, site = build_demo(tmp_path / "demo")
    db = str(tmp_path / "s.db")
    assert _cli("change", "add", "--plc", S7, "--station", EWS, "--window", WINDOW, "--ticket", "CHG0030001",
                "--db", db).exit_code == 0
    out = tmp_path / "r.json"
    res = _cli("assess", str(pcap), "--site", str(site), "--db", db, "-f", "json", "-o", str(out), "-q")
    assert res.exit_code == 0, res.output
    c = json.loads(out.read_text())
    assert [f["status"] for f in _program_findings(c)] == ["pass"]
    assert "under ticket CHG0030001" in _program_findings(c)[0]["title"]
    # the same verdicts offline, from a file
    tickets = tmp_path / "t.yaml"
    tickets.write_text(f"- {{id: CHG0030001, plcs: [{S7}], stations: [{EWS}], window: '{CLOSED_BEFORE}'}}\n")
    res = _cli("assess", str(pcap), "--site", str(site), "--changes", str(tickets), "-f", "json", "-o", str(out), "-q")
    assert res.exit_code == 0, res.output
    c = json.loads(out.read_text())
    assert [f["status"] for f in _program_findings(c)] == ["fail"]


def test_timeline_is_bounded_and_counts_what_it_left_out(demo, monkeypatch):
    from plantguard.changes import timeline
    result, site = demo
    full = _assess(result, site, None)["plc_changes"]
    monkeypatch.setattr(timeline, "MAX_CHANGES", 3)
    c = _assess(result, site, None)
    assert len(full) == 11 and len(c["plc_changes"]) == 3
    assert c["counters"]["plc_changes_dropped"] == len(full) - 3
    assert any("plc_changes lists 3 changes; 8 more were left out" in n for n in c["notes"])
    assert "plc_changes_dropped" not in result.counters      # the analysis result is not changed


def test_change_add_for_a_central_site_is_kept_apart_from_the_stores_own(tmp_path):
    from plantguard.changes.store import stored_tickets
    from plantguard.store.db import open_engine
    db = f"sqlite:///{tmp_path / 'central.db'}"
    r = _cli("change", "add", "--plc", "10.10.1.11", "--station", "10.10.1.50", "--window",
            "2024-04-14T02:00Z..2024-04-14T03:00Z", "--ticket", "CHG-SITE", "--db", db, "--site", "Plant A")
    assert r.exit_code == 0, r.output
    engine = open_engine(db)
    assert [t.id for t in stored_tickets(engine, site="Plant A")] == ["CHG-SITE"]
    assert stored_tickets(engine) == []
    engine.dispose()
    listed = _cli("change", "list", "--db", db, "--site", "Plant A")
    assert "CHG-SITE" in listed.output and "CHG-SITE" not in _cli("change", "list", "--db", db).output
