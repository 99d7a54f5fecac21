"""IEC 61850-9-2 Sampled Values decoder against the icsnpp-iec61850-sv analyzer baseline (sv.log:
one record per ASDU, 10,161 on SV_Normal_Traffic.pcap) and tshark's `sv` dissector field by
field on the same capture; the routine frames replay the 4,000 frames/s stream."""
from __future__ import annotations

import pytest
from conftest import shared_path
from support.baselines import AGREEMENT, Score, zeek_log
from support.decode import frames
from support.iec61850_frames import ethernet, goose_pdu, l2_payload, sv_pdu, write_pcap
from support.peers import tshark_fields

from plantguard.capture.engine import analyze
from plantguard.capture.reference import analyze_reference
from plantguard.model import Packet
from plantguard.protocols import sv

TRACE = "pcaps/icsnpp-iec61850-sv/testing/Traces/SV_Normal_Traffic.pcap"
LOG = "baselines/icsnpp-iec61850-sv/testing/Baseline/tests.test-SV_Normal_Traffic/sv.log"


def _sv_frames(path):
    for n, _ts, lay in frames(path):
        if lay.ethertype == sv.SV_ETHERTYPE:
            yield n, lay, sv.parse(bytes(lay.l3))


def test_icsnpp_sv_baseline_field_by_field():
    rows = zeek_log(shared_path(LOG))
    ours = [{"src": lay.src_mac, "dst": lay.dst_mac, "vlan": str(lay.vlan), "appid": str(s.header.appid),
             "length": str(s.header.length), "smpCnt": str(a.get("smp_cnt")), "sv_id": a.get("sv_id")}
            for _n, lay, s in _sv_frames(shared_path(TRACE)) for a in s.asdus]
    assert len(rows) == len(ours) == 10161
    score = Score()
    for i, (row, mine) in enumerate(zip(rows, ours)):
        for k, v in mine.items():
            score.check(f"record {i} {k}", v, row[k])
    assert score.ratio >= AGREEMENT, score.misses
    assert score.ratio == 1.0, score.misses


TSHARK = {"sv.appid": lambda s, a: f"0x{s.header.appid:04x}", "sv.length": lambda s, a: str(s.header.length),
          "sv.reserve1.s_bit": lambda s, a: str(int(s.header.simulation)), "sv.noASDU": lambda s, a: str(s.no_asdu),
          "sv.svID": lambda s, a: a.get("sv_id"), "sv.smpCnt": lambda s, a: str(a.get("smp_cnt")),
          "sv.confRev": lambda s, a: str(a.get("conf_rev")), "sv.smpSynch": lambda s, a: str(a.get("smp_synch"))}


def test_tshark_sv_field_by_field():
    path = shared_path(TRACE)
    rows = {r["frame"]: r for r in tshark_fields(path, "sv", list(TSHARK))}
    score = Score()
    for n, _lay, s in _sv_frames(path):
        a = s.asdus[0]
        for field, ours in TSHARK.items():
            theirs = rows[n][field]
            score.check(f"#{n} {field}", ours(s, a), theirs[0] if theirs else None)
    assert len(rows) == 10161
    assert score.ratio >= AGREEMENT, score.misses
    assert score.ratio == 1.0, score.misses


def test_merging_unit_identity_and_routine_replay():
    path = shared_path(TRACE)
    res = analyze([path])
    ids = [o for o in res.observations if o.kind == "identity" and o.proto == "sv"]
    assert [(o.src_mac, o.data["route"], o.data["sv_id"], o.data["appid"], o.data["conf_rev"]) for o in ids] == \
        [("ca:fe:c0:ff:ee:69", "SV 4001", "4001", 0x4001, 1)]
    assert ids[0].count == 10161 and ids[0].vlan == 1
    assert res.counters["routine_packets"] >= 10000        # the stream is replayed, not decoded


def test_simulation_flag_and_dataset_ied_name():
    p = l2_payload(0x4000, sv_pdu(dataset="MU01LD0/LLN0$PhsMeas1", smp_rate=80, asdus=8), simulation=True)
    obs = sv.decode(Packet("t", 1, 0.0, p, "00:30:a7:00:00:09", "01:0c:cd:04:00:01", sv.SV_ETHERTYPE))
    assert {o.data.get("name") for o in obs if o.kind == "identity"} >= {"MU01LD0"}
    assert [o.data["code"] for o in obs if o.kind == "error"] == ["simulation"]
    route = next(o for o in obs if o.kind == "identity" and "route" in o.data)
    assert route.data["smp_rate"] == 80 and route.data["dataset"] == "MU01LD0/LLN0$PhsMeas1"


def test_signature_negative():
    assert sv.signature(l2_payload(0x4000, sv_pdu()))
    assert not sv.signature(l2_payload(1, goose_pdu()))
    assert not sv.signature(b"\x40\x00\x00\x0a\x00\x00\x00\x00\x60")


@pytest.mark.parametrize("chunk", [65536, 13])
def test_engine_equals_reference_on_sv_streams(tmp_path, chunk):
    fr = [ethernet(l2_payload(0x4000 + k, sv_pdu(f"MU0{k}", smp_cnt=i, asdus=1 + 7 * (k == 2),
                                                  conf_rev=1 + (i > 1500))), 0x88BA,
                   src=f"00:30:a7:00:01:0{k}", dst="01:0c:cd:04:00:01", vlan=5)
          for i in range(2000) for k in (1, 2)]
    path = write_pcap(tmp_path / "sv.pcap", fr)
    ref, got = analyze_reference([path]), analyze([path], chunk_records=chunk)
    key = lambda o: (o.kind, o.frame, o.count, o.last_frame, o.src_mac, tuple(sorted(o.data.items())))
    assert sorted(map(key, got.observations)) == sorted(map(key, ref.observations))
    assert chunk != 65536 or got.counters["routine_packets"] > 3900
