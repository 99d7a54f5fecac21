"""DNP3 decoder against Zeek's DNP3 test baselines (event dumps and dnp3.log), the Bro 2.x
dnp3.log files of the ICS-pcap collection, the opendnp3 conformance logs (every link frame and
application function of every dump) and tshark's link addresses."""
from __future__ import annotations

import difflib
import html
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import analyze_shared, shared_path
from support.baselines import oracle_map, ratio, zeek_log
from support.decode import deep_observations, frames

from plantguard.protocols import dnp3

ZEEK = "baselines/zeek"
CONFORMANCE_LOGS = "baselines/ICS-Security-Tools/dnp3/opendnp3-3/conformance"
CONFORMANCE_PCAPS = "pcaps/ICS-Security-Tools/dnp3/opendnp3-3/conformance"


def _oracle_pairs(log_name: str) -> list[tuple[str, str]]:
    return [(r["trace(s)"], r["baseline_dir"]) for r in oracle_map()
            if "dnp3" in (r["test"] + r["trace(s)"]).lower() + r["baseline_files"]
            and log_name in r["baseline_files"].split(",")]


def _originators(pcap: Path) -> dict:
    """Connection originator as Zeek sees it: the SYN sender, else not the side on port 20000."""
    orig = {}
    for _f, _ts, lay in frames(pcap):
        if not lay.l4:
            continue
        k = frozenset([(lay.src, lay.sport), (lay.dst, lay.dport)])
        if k in orig:
            continue
        if lay.l4 == "tcp" and lay.tcp_flags & 0x12 == 0x12:
            orig[k] = (lay.dst, lay.dport)
        elif lay.l4 == "tcp" and lay.tcp_flags & 0x02:
            orig[k] = (lay.src, lay.sport)
        elif lay.sport == 20000 and lay.dport != 20000:
            orig[k] = (lay.dst, lay.dport)
        else:
            orig[k] = (lay.src, lay.sport)
    return orig


def _iin(detail: str) -> int | None:
    m = re.search(r"IIN 0x([0-9a-f]{4})", detail)
    return int(m.group(1), 16) if m else None


def _operations(pcap: Path):
    orig = _originators(pcap)
    for o in deep_observations(pcap):
        if o.kind == "operation" and o.proto == "dnp3":
            k = frozenset([(o.src, o.sport), (o.dst, o.dport)])
            yield o, orig[k], orig[k] == (o.src, o.sport)


# --- Zeek event dumps: every application header, with direction and IIN -------------------

def _zeek_event_cases():
    return [(r["trace(s)"], r["baseline_dir"]) for r in oracle_map()
            if r["test"].startswith("scripts.base.protocols.dnp3.")]


def test_application_headers_match_zeek_event_dumps():
    total = matched = 0
    for pcap_rel, base_rel in _zeek_event_cases():
        want = []
        for line in shared_path(base_rel + "output").read_text().splitlines():
            m = re.match(r"dnp3_application_(request|response)_header, ([TF]), \d+, (\d+)(?:, (\d+))?", line)
            if m and int(m.group(3)) != 0:   # CONFIRM is deliberately not an operation
                want.append((m.group(2) == "T", int(m.group(3)), int(m.group(4)) if m.group(4) else None))
        got = [(is_orig, o.data["code"], _iin(o.data["detail"])) for o, _orig, is_orig in
               _operations(shared_path(pcap_rel))]
        sm = difflib.SequenceMatcher(None, want, got, autojunk=False)
        m = sum(b.size for b in sm.get_matching_blocks())
        assert len(got) == len(want), pcap_rel
        total += len(want)
        matched += m
    assert total > 140
    assert ratio(matched, total) >= 0.99, (matched, total)


def test_link_headers_match_zeek_event_dumps():
    """First link header of each application fragment: length, control, destination, source."""
    total = matched = 0
    for pcap_rel, base_rel in _zeek_event_cases():
        want = Counter()
        for line in shared_path(base_rel + "output").read_text().splitlines():
            m = re.match(r"dnp3_header_block, [TF], (\d+), (\d+), (\d+), (\d+)", line)
            if m:
                want[tuple(int(x) for x in m.groups())] += 1
        got = Counter()
        dirs: dict = {}
        for _f, _ts, lay in frames(shared_path(pcap_rel)):
            if lay.l4 and lay.payload:
                d = dirs.setdefault((lay.src, lay.sport, lay.dst, lay.dport), dnp3.Direction())
                for item in d.feed(lay.payload):
                    if isinstance(item, dnp3.LinkFrame):
                        got[(item.length, item.control, item.dst, item.src)] += 1
        total += sum(want.values())
        matched += sum((want & got).values())
    assert ratio(matched, total) >= 0.99, (matched, total)


# --- dnp3.log (Zeek and Bro 2.x): request/reply pairs with IIN -----------------------------

def _simulated_log(pcap: Path) -> Counter:
    """Rebuild dnp3.log records from our operations the way the log pairs them: a request waits
    for the next reply on its connection; unanswered requests are written at the end."""
    pending: dict = {}
    recs: Counter = Counter()
    for o, (oh, op), _is_orig in _operations(pcap):
        resp = (o.dst, o.dport) if (o.src, o.sport) == (oh, op) else (o.src, o.sport)
        key = (oh, op) + resp
        if o.data["code"] in (129, 130):
            recs[key + (pending.pop(key, "-"), o.data["name"], str(_iin(o.data["detail"])))] += 1
        else:
            pending[key] = o.data["name"]
    for key, fc in pending.items():
        recs[key + (fc, "-", "-")] += 1
    return recs


def test_request_reply_pairs_match_dnp3_logs():
    pairs = _oracle_pairs("dnp3.log")
    assert len(pairs) >= 20
    total = matched = 0
    for pcap_rel, base_rel in pairs:
        want = Counter()
        for r in zeek_log(shared_path(base_rel + "dnp3.log")):
            # CONFIRM requests are not operations here: the reply they precede pairs with "-"
            req = "-" if r["fc_request"] == "CONFIRM" else r["fc_request"]
            want[(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], req,
                  r["fc_reply"], r["iin"])] += 1
        got = Counter({(k[0], str(k[1]), k[2], str(k[3])) + k[4:]: v
                       for k, v in _simulated_log(shared_path(pcap_rel)).items()})
        total += sum(want.values())
        matched += sum((want & got).values())
    assert total > 400
    assert ratio(matched, total) >= 0.99, (matched, total)


# --- opendnp3 conformance: every link frame and application function ----------------------

def _conformance_log(path: Path):
    text = path.read_text(encoding="utf-8", errors="replace")
    link, app = [], []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", text, re.S):
        tds = [html.unescape(re.sub(r"\s+", " ", t).strip()) for t in re.findall(r"<td>(.*?)</td>", row, re.S)]
        if len(tds) != 3:
            continue
        marker, body = tds[1], tds[2]
        if marker in ("--L->", "<-L--"):
            m = re.search(r"\) (0x[0-9A-F]+) length: (\d+) dest: (\d+) src: (\d+)", body)
            ctrl = int(m.group(1), 16)
            link.append((marker == "--L->", ctrl & 0x0F, ctrl, int(m.group(2)), int(m.group(3)), int(m.group(4))))
        elif marker in ("--A->", "<-A--"):
            m = re.search(r"\((0x[0-9A-Fa-f]+)\)", body)
            fc = int(m.group(1), 16) if m else body.split()[0]
            if fc != 0:
                app.append((marker == "--A->", fc))
    return link, app


def test_conformance_dumps_link_frames_and_functions():
    logs = sorted(shared_path(CONFORMANCE_LOGS).glob("*/log.html"))
    assert len(logs) > 100
    lt = lm = at = am = 0
    dumps_with_frames = 0
    for log in logs:
        pcap = shared_path(CONFORMANCE_PCAPS) / log.parent.name / "dump.pcap"
        if not pcap.exists():
            continue
        want_link, want_app = _conformance_log(log)
        got_link, dirs = [], {}
        for _f, _ts, lay in frames(pcap):
            if lay.l4 == "tcp" and lay.payload:
                to_dut = lay.dport == 20000
                for item in dirs.setdefault(to_dut, dnp3.Direction()).feed(lay.payload):
                    if isinstance(item, dnp3.LinkFrame):
                        got_link.append((to_dut, item.function, item.control, item.length, item.dst, item.src))
        got_app = [(o.dport == 20000, o.data["code"]) for o, _orig, _io in _operations(pcap)]
        dumps_with_frames += bool(got_link)
        for want, got in ((want_link, got_link), (want_app, got_app)):
            sm = difflib.SequenceMatcher(None, want, got, autojunk=False)
            m = sum(b.size for b in sm.get_matching_blocks())
            if want is want_link:
                lt, lm = lt + len(want), lm + m
            else:
                at, am = at + len(want), am + m
    assert dumps_with_frames > 100
    assert lt > 1000 and at > 800
    assert ratio(lm, lt) >= 0.99, (lm, lt)
    assert ratio(am, at) >= 0.99, (am, at)


# --- identity, roles, categories ----------------------------------------------------------

def test_link_addresses_match_tshark():
    evidence = json.loads(shared_path("baselines/tshark-derived/identity_evidence.json").read_text())["files"]
    total = matched = 0
    for rel, fields in evidence.items():
        addrs = fields.get("dnp3_addr")
        if not addrs or "conformance" in rel or not (shared_path("baselines").parent / rel).exists():
            continue
        want = {int(a.split("=")[1]) for a in addrs if a.startswith("src=")}
        got = {o.data["dnp3_address"] for o in deep_observations(shared_path(rel))
               if o.kind == "identity" and o.proto == "dnp3"}
        total += len(want)
        matched += len(want & got)
    assert total > 50
    assert ratio(matched, total) >= 0.99, (matched, total)


def test_pipeline_roles_identity_and_categories():
    res = analyze_shared("pcaps/zeek/dnp3/dnp3_select_operate.pcap")
    roles = {(o.subject_ip, o.data["role"]) for o in res.observations if o.kind == "role"}
    assert roles == {("130.126.142.250", "dnp3-master"), ("130.126.140.229", "dnp3-outstation")}
    idents = {(o.subject_ip, o.data["dnp3_address"]) for o in res.observations if o.kind == "identity"}
    assert idents == {("130.126.142.250", 3), ("130.126.140.229", 2)}
    ops = {(o.data["name"], o.data["category"]) for o in res.observations if o.kind == "operation"}
    assert {("SELECT", "write"), ("OPERATE", "write"), ("RESPONSE", "other")} <= ops
    svc = [o for o in res.observations if o.kind == "service"]
    assert [(o.subject_ip, o.subject_port) for o in svc] == [("130.126.140.229", 20000)]
    flow = [f for f in res.flows if f.port == 20000][0]
    assert flow.app == "dnp3" and flow.operations.get("write") == 2


@pytest.mark.parametrize("rel,name,category", [
    ("pcaps/ICS-Security-Tools/dnp3/cold_restart_and_response.pcap", "COLD_RESTART", "control"),
    ("pcaps/ICS-Security-Tools/dnp3/warm_restart_and_response.pcap", "WARM_RESTART", "control"),
    ("pcaps/ICS-Security-Tools/dnp3/file_delete.pcap", "DELETE_FILE", "file"),
    ("pcaps/ICS-Security-Tools/dnp3/disable_unsolcited_and_response.pcap", "DISABLE_UNSOLICITED", "config"),
    ("pcaps/ICS-Security-Tools/dnp3/auth_control_challenge_response.pcap", "AUTHENTICATE_REQ", "auth"),
    ("pcaps/ICS-Security-Tools/dnp3/direct_operate_no_ack_crob.pcap", "DIRECT_OPERATE_NR", "write"),
    ("pcaps/zeek/dnp3/dnp3_rec_time.pcap", "RECORD_CURRENT_TIME", "other"),
])
def test_function_categories_on_real_captures(rel, name, category):
    ops = {(o.data["name"], o.data["category"]) for o in deep_observations(shared_path(rel))
           if o.kind == "operation"}
    assert (name, category) in ops


def test_iin_bits_named_and_refusals_reported():
    obs = deep_observations(shared_path("pcaps/zeek/dnp3/dnp3_udp_en_spon.pcap"))
    resp = [o for o in obs if o.kind == "operation" and o.data["code"] == 129][0]
    assert "IIN 0x0001: function code not supported" in resp.data["detail"]
    errs = [o for o in obs if o.kind == "error"]
    assert [(e.data["code"], e.data["name"]) for e in errs] == [(1, "IIN: function code not supported")]
    restart = [o for o in deep_observations(shared_path("pcaps/zeek/dnp3/dnp3_udp_read.pcap"))
               if o.kind == "operation" and o.data["code"] == 129][0]
    assert "device restart, need time" in restart.data["detail"]


def test_signature_and_crc():
    frame = bytes.fromhex("056405C000040100D7F7")   # RESET_LINK_STATES from a conformance log
    assert dnp3.header_ok(frame) and dnp3.signature(frame)
    assert not dnp3.signature(frame[:8] + b"\x00\x00")
    assert not dnp3.signature(b"\x05\x64\x02" + frame[3:])
