"""Honest warnings (issue 14, item 4): what could not be read is counted from the real reading
and said on stderr, in the JSON contract (per capture and the top-level `warnings`), in the
HTML report's "What could not be read" box and in the Markdown report. Every odd capture here
is a real shared capture, as found or rewritten the way such files occur: another link type
(802.15.4), a record in 2076, a last record cut off, a record cut by the snapshot length, a
header with no packets, a pcapng block of an unknown type."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pytest
from conftest import shared_path

from plantguard.capture import formats
from plantguard.capture.engine import analyze
from plantguard.capture.parallel import analyze_parallel
from plantguard.capture.unread import run_warnings

MODBUS = "pcaps/zeek/modbus/modbusSmall.pcap"                     # little-endian µs pcap, link type 1
PROFINET = "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_device.pcapng"
ZIGBEE = "pcaps/ICS-Security-Tools/Zigbee/control4-sample.pcap"   # 407 frames of 802.15.4 (195)
MMS_2076 = "pcaps/ICS-Security-Tools/IEC61850/m-send-req.mms.pcap"  # 21 packets stamped 2076
SNAPLEN = "pcaps/ICS-Security-Tools/BACnet/bacnet_test.pcap"      # 26 records cut by a 96-byte snaplen
BACKWARDS = "pcaps/icsnpp-profinet-io-cm/profinet_io_cm.pcap"     # times go back 3 times
CUT_LAST = "pcaps/ICS-Security-Tools/MELSEC/melsoft_129_clean.pcap"  # the last record is cut


def run(*args):
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, check=False,
                          text=True, timeout=300)


def records(raw: bytes) -> list[int]:
    """Offsets of the record headers of a little-endian pcap."""
    out, off = [], 24
    while off + 16 <= len(raw):
        out.append(off)
        off += 16 + struct.unpack_from("<I", raw, off + 8)[0]
    return out


def read(path) -> formats.ReadStats:
    st = formats.ReadStats(str(path))
    for _ in formats.read_chunks(path, st):
        pass
    return st


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """A folder of odd captures made from real ones, and what each must give."""
    d = tmp_path_factory.mktemp("odd")
    raw = shared_path(MODBUS).read_bytes()
    recs = records(raw)
    n = len(recs)
    zig = bytearray(raw)
    zig[20:24] = struct.pack("<I", 195)                   # the same bytes as 802.15.4 frames
    (d / "a_zigbee.pcap").write_bytes(zig)
    future = bytearray(raw)
    future[recs[-1]:recs[-1] + 4] = struct.pack("<I", 3_376_684_800)   # 2077-01-01: the last record
    (d / "b_2076.pcap").write_bytes(future)
    (d / "c_cut.pcap").write_bytes(raw[:-3])               # the last record cut short
    snap = bytearray(raw)
    incl = struct.unpack_from("<I", raw, recs[0] + 8)[0]
    snap[recs[0] + 12:recs[0] + 16] = struct.pack("<I", incl + 100)  # 100 bytes more on the wire
    (d / "d_snaplen.pcap").write_bytes(snap)
    (d / "e_header_only.pcap").write_bytes(raw[:24])
    ng = shared_path(PROFINET).read_bytes()
    shb = struct.unpack_from("<I", ng, 4)[0]
    unknown = struct.pack("<II", 0x77, 16) + b"odd!" + struct.pack("<I", 16)
    (d / "f_unknown_block.pcapng").write_bytes(ng[:shb] + unknown + ng[shb:])
    want = {"a_zigbee.pcap": {}, "b_2076.pcap": {"implausible_timestamp": 1},
            "c_cut.pcap": {"truncated": 1}, "d_snaplen.pcap": {"snaplen_cut": 1},
            "e_header_only.pcap": {"no_packets": 1}, "f_unknown_block.pcapng": {"unknown_block": 1}}
    return d, n, want


def test_reader_counts_each_kind(odd):
    d, n, want = odd
    for name, counts in want.items():
        st = read(d / name)
        assert st.warning_counts == counts, name
    assert read(d / "c_cut.pcap").packets == n - 1
    assert read(d / "f_unknown_block.pcapng").packets == read(shared_path(PROFINET)).packets


@pytest.mark.parametrize("rel,counts", [
    (MMS_2076, {"implausible_timestamp": 21}),
    (SNAPLEN, {"snaplen_cut": 26}),
    (BACKWARDS, {"time_backwards": 3}),
    (CUT_LAST, {"truncated": 1}),
    (ZIGBEE, {}),
])
def test_real_captures_as_found(rel, counts):
    st = read(shared_path(rel))
    assert st.warning_counts == counts
    assert len(st.warnings) == len(counts), st.warnings    # one line per kind, however many records


def test_zigbee_frames_are_a_warning_with_their_capture():
    path = shared_path(ZIGBEE)
    res = analyze([path])
    (w,) = run_warnings(res.captures, res.counters)
    assert w == {"kind": "undecoded_link_type:195", "count": 407, "captures": [str(path)],
                 "text": "frames of link type 195 (802.15.4) not decoded: their hosts are missing"}


def test_flow_cap_evictions_are_warnings():
    res = analyze([shared_path("pcaps/zeek/snmp/leak_test.pcapng")], max_flows=10, chunk_records=8)  # 40 flows
    evicted = res.counters["flows_evicted"]
    assert evicted > 0
    by = {w["kind"]: w for w in run_warnings(res.captures, res.counters)}
    assert by["flows_evicted"]["count"] == evicted and by["flows_evicted"]["captures"] == []


def test_every_output_says_what_could_not_be_read(odd, tmp_path):
    d, n, want = odd
    out = tmp_path / "r.json"
    p = run("assess", d, "-q", "-f", "json", "-o", out)
    assert p.returncode == 0, p.stderr
    contract = json.loads(out.read_text())
    caps = {c["path"].rsplit("/", 1)[1]: c for c in contract["captures"]}
    for name, counts in want.items():
        assert caps[name]["warning_counts"] == counts, name
    top = {w["kind"]: w for w in contract["warnings"]}
    assert top["undecoded_link_type:195"]["count"] == n
    assert top["undecoded_link_type:195"]["captures"] == [str(d / "a_zigbee.pcap")]
    for name, counts in want.items():
        for kind, count in counts.items():
            assert top[kind]["count"] == count and top[kind]["captures"] == [str(d / name)], kind
    # stderr: the per-capture lines, then the run's count, each naming where
    err = p.stderr.splitlines()
    assert f"warning: {d / 'e_header_only.pcap'}: no packets: the capture is a valid header with no records" in err
    assert f"warning: {d / 'd_snaplen.pcap'}: 1 record cut by the snapshot length" in p.stderr
    assert f"warning: {d / 'b_2076.pcap'}: 1 packet with implausible timestamps" in p.stderr
    assert f"warning: {d / 'c_cut.pcap'}: truncated packet at byte" in p.stderr
    assert f"warning: {d / 'f_unknown_block.pcapng'}: block of unknown type 0x77 at byte" in p.stderr
    assert (f"warning: {n:,} frames of link type 195 (802.15.4) not decoded: their hosts are missing "
            f"(in {d / 'a_zigbee.pcap'})") in err
    # the reports, rendered from that contract
    from plantguard.report import render
    md = render(contract, "md")
    section = md.split("## What could not be read", 1)[1].split("\n## ", 1)[0]
    assert f"- {n:,} frames of link type 195 (802.15.4) not decoded" in section
    assert "- 1 captures with a valid header and no packets" in section
    assert md.index("## What could not be read") < md.index("## Summary")
    html = tmp_path / "r.html"
    p = run("assess", d, "-q", "-f", "html", "-o", html)
    assert p.returncode == 0, p.stderr
    page = html.read_text()
    box = page.split('<aside id="unread"', 1)[1].split("</aside>", 1)[0]
    assert "What could not be read" in box
    assert box.count("<li>") == len(contract["warnings"])
    assert "1 packets cut by the snapshot length" in box and "pcapng blocks of a type" in box
    assert page.index('id="unread"') < page.index('id="summary"')


def test_a_clean_capture_has_no_box_and_no_warnings(tmp_path):
    out = tmp_path / "r.html"
    p = run("assess", shared_path(MODBUS), "-q", "-o", out)
    assert p.returncode == 0 and "warning:" not in p.stderr, p.stderr
    assert 'id="unread"' not in out.read_text()


def test_jobs_count_each_warning_once(odd):
    d, _n, _want = odd
    one = analyze_parallel([d], 1)
    two = analyze_parallel([d], 2)
    assert run_warnings(two.captures, two.counters) == run_warnings(one.captures, one.counters)
    assert [c.warning_counts for c in two.captures] == [c.warning_counts for c in one.captures]


# layer-2 frames whose EtherType or 802.2 LLC id no protocol module registers: counted per id,
# equal to tshark's count of such frames (eth.type or, under a VLAN tag, vlan.etype; llc.dsap)
UNDECODED_L2 = [
    # (GOOSE 0x88b8 and Sampled Values 0x88ba were the examples until their modules came)
    ("pcaps/ICS-Security-Tools/openics/EIP-ChangePortConfigurationAttempt.pcap", "undecoded_ethertype:0x9000",
     "vlan.etype == 0x9000 || eth.type == 0x9000", "loopback (CTP)"),
    ("pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap", "undecoded_llc:sap_0x42",
     "llc.dsap == 0x42", "spanning tree (STP)"),
]


def tshark_count(path, display_filter: str) -> int:
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return len(out.split())


@pytest.mark.parametrize(("rel", "kind", "display_filter", "name"), UNDECODED_L2)
def test_undecoded_ethertypes_counted_as_tshark_does(rel, kind, display_filter, name, tmp_path):
    path = shared_path(rel)
    expected = tshark_count(path, display_filter)
    assert expected > 0
    assert analyze([path]).counters[kind] == expected
    assert analyze_parallel([path], jobs=2).counters[kind] == expected
    proc = run("assess", path, "-f", "json", "-o", tmp_path / "a.json")
    assert proc.returncode == 0, proc.stderr
    warns = {w["kind"]: w for w in json.loads((tmp_path / "a.json").read_text())["warnings"]}
    assert warns[kind]["count"] == expected and name in warns[kind]["text"]
    assert f"warning: {expected:,} frames of " in proc.stderr and name in proc.stderr


def test_registered_ethertypes_not_counted():
    """LLDP (0x88cc) and PROFINET (0x8892) frames are decoded by their modules: no counter."""
    for rel, etype in (("pcaps/icsnpp-iec61850-sv/testing/Traces/SV_Normal_Traffic.pcap", 0x88ba),
                       ("pcaps/ICS-Security-Tools/IEC61850/GOOSE/Sample_File_GOOSE.pcap", 0x88b8)):
        assert tshark_count(shared_path(rel), f"vlan.etype == {etype:#x} || eth.type == {etype:#x}") > 0
        assert f"undecoded_ethertype:{etype:#06x}" not in analyze([shared_path(rel)]).counters
    path = shared_path("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap")
    assert tshark_count(path, "lldp") > 0 and tshark_count(path, "eth.type == 0x8892") > 0
    assert not [k for k in analyze([path]).counters if k.startswith(("undecoded_ethertype:", "undecoded_llc:"))]
