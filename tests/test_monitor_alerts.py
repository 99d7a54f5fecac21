"""`plantguard monitor --watch` as a subprocess on a ring of a real capture with an S7 program
download from a host the site does not declare as an engineering station
(ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap; `assess` finds the same download,
plc.unauthorized-program-change, evidence frame 43): exactly one alert for it, its frame as
evidence (and as a pcap in --evidence), delivered within 2 s of the ring piece holding the
packet being written, to a file sink and to a real rsyslog over TLS in CEF and ECS."""
from __future__ import annotations

import json
import re
import time

import pytest

from conftest import shared_path
from plantguard.capture import formats
from plantguard.capture.engine import analyze
from plantguard.assess import run_assessment
from plantguard.store.db import IN_MEMORY
from support.monitor import MonitorProc, alerts_of, jsonl
from support.ring import split, write_piece
from test_siem_syslog import EVENT_ID, rsyslog  # noqa: F401 - the real rsyslog fixture, reused

DOWNLOAD = "pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap"
PIECES = 4
LATENCY_S = 2.0
SITE = "site: test plant\nengineering_workstations: [192.168.1.99]\n"


def download_frame(src) -> int:
    """The first frame of the program download, as `assess` reports it."""
    c = run_assessment(analyze([src]), None, db=IN_MEMORY)
    f = next(f for f in c["findings"] if f["check"] == "plc.unauthorized-program-change" and f["status"] == "fail")
    return f["evidence"][0]["frame"]


def feed_ring(mon: MonitorProc, ring, src, seen, gap_s: float = 0.7) -> tuple[int, float, int]:
    """Write the pieces one by one; returns (piece holding the download's first frame, seconds
    from writing it to the alert's arrival, that frame's number in the piece). `seen()` tells
    whether the alert is out."""
    frame = download_frame(src)
    before, hit = 0, None
    for i, chunk in enumerate(split(src, PIECES)):
        time.sleep(gap_s)
        written = time.monotonic()
        write_piece(ring, i, chunk)
        if before < frame <= before + len(chunk):
            mon.wait_for(seen, 10, "program-change alert")
            delay = time.monotonic() - written
            assert delay <= LATENCY_S, f"alert {delay:.2f} s after the piece was written"
            hit = (i, delay, frame - before)
            print(f"program-change alert {delay:.2f} s after its piece was written")
        before += len(chunk)
    assert hit is not None
    return hit


def wait_read_all(mon: MonitorProc, packets: int = 93) -> None:
    mon.wait_for(lambda: f"monitor: {packets} packets" in mon.stderr.read_text(), 10, "status line of every packet")


def start(tmp_path, sinks: list[str]) -> tuple[MonitorProc, object]:
    ring = tmp_path / "ring"
    ring.mkdir()
    (tmp_path / "site.yaml").write_text(SITE)
    args = ["--watch", str(ring), "--site", "site.yaml", "--state", "state", "--evidence", "evidence",
            "--checkpoint", "1h", "--status-every", "1s"]
    for s in sinks:
        args += ["--sink", s]
    mon = MonitorProc(args, tmp_path)
    mon.wait_started()
    return mon, ring


def test_program_download_alert_within_2s_with_its_frame(tmp_path):
    src = shared_path(DOWNLOAD)
    out = tmp_path / "alerts.jsonl"
    mon, ring = start(tmp_path, [f"file://{out}?format=ecs"])
    piece, _, frame = feed_ring(mon, ring, src, lambda: alerts_of(jsonl(out), "program-change"))
    wait_read_all(mon)
    assert mon.stop() == 0
    docs = jsonl(out)
    got = alerts_of(docs, "program-change")
    assert len(got) == 1, got
    a = got[0]
    assert a["event"]["severity"] == 10 and a["rule"]["id"] == "alert.program-change"
    assert a["source"]["ip"] == "192.168.1.10" and a["destination"]["ip"] == "192.168.1.40"
    assert "T0843" in a["threat"]["technique"]["id"]           # from the check's metadata
    ev = a["plantguard"]["evidence"]
    assert ev[0]["capture"].endswith(f"ring_{piece + 1:05d}_20260101120000.pcap") and ev[0]["frame"] == frame
    # the evidence pcap holds exactly that packet, byte for byte
    pcap = tmp_path / "evidence" / f"{a['event']['id']}.pcap"
    (kept,) = list(formats.read_chunks(pcap))
    (whole,) = list(formats.read_chunks(src))
    o, n = int(whole.offsets[download_frame(src) - 1]), int(whole.caplen[download_frame(src) - 1])
    assert len(kept) == 1 and bytes(kept.buf[kept.offsets[0]:kept.offsets[0] + kept.caplen[0]]) == bytes(whole.buf[o:o + n])
    # no storm: every alert key once; the final checkpoint saw the same download and added nothing
    ids = [d["event"]["id"] for d in alerts_of(docs)]
    assert len(ids) == len(set(ids))
    assert not any(d["event"]["action"] == "check-failed" and "plc." in d["message"] for d in docs)
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert state["final"] and state["summary"]["packets"] == len(whole)
    assert re.search(r"monitor: 93 packets, kernel drops n/a, own drops 0", mon.stderr.read_text())


@pytest.mark.slow
def test_program_download_alert_reaches_rsyslog_over_tls_in_cef_and_ecs(tmp_path, rsyslog):  # noqa: F811
    src = shared_path(DOWNLOAD)
    ca = rsyslog.certs["ca"]
    sinks = [f"syslog+tls://127.0.0.1:{rsyslog.port}?format={fmt}&ca={ca}" for fmt in ("cef", "ecs")]

    def seen():
        lines = rsyslog.lines()
        return (any(b"act=program-change" in x for x in lines)
                and any(b'"action":"program-change"' in x for x in lines))
    mon, ring = start(tmp_path, sinks)
    feed_ring(mon, ring, src, seen)
    wait_read_all(mon)
    assert mon.stop() == 0
    rsyslog.stop()
    lines = rsyslog.lines()
    cef = [x for x in lines if b"CEF:0|" in x and b"act=program-change" in x]
    ecs = [x for x in lines if b'"action":"program-change"' in x]
    assert len(cef) == 1 and len(ecs) == 1, (cef, ecs)
    assert EVENT_ID["cef"].search(cef[0]).group(1) == EVENT_ID["ecs"].search(ecs[0]).group(1)
    assert b"cs4=" in cef[0] and b"ring_0000" in cef[0]          # the evidence frame
    ids = [EVENT_ID["cef"].search(x).group(1) for x in lines if b"CEF:0|" in x and b"cat=alert" in x]
    assert len(ids) == len(set(ids)) >= 1
