"""Live input on real parts: two network namespaces joined by a veth pair, real shared captures
replayed onto one end with tcpreplay, capture.live's TPACKET_V3 ring reading the other end in
its own namespace (a subprocess under `ip netns exec`). Needs root, ip and tcpreplay: skipped
without them, failed under CI (.ci/run installs them)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import shared_path
from plantguard.capture import formats
from plantguard.capture.engine import analyze
from plantguard.capture.live import LiveError, LiveSource, parse_bpf, write_pcap
from plantguard.inventory.build import build_assets

ROOT = Path(__file__).resolve().parents[1]
GOOSE_VLAN = "pcaps/ICS-Security-Tools/IEC61850/GOOSE/Sample_File_GOOSE.pcap"   # every frame 802.1Q
ENIP_VLAN = "pcaps/icsnpp-enip/set_attribute_single_service_cip.pcapng"        # CIP on VLAN 90
MODBUS = "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part2.pcap"
CAPTURES = [GOOSE_VLAN, ENIP_VLAN, MODBUS, "pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap",
            "pcaps/icsnpp-enip/enip_cip_example.pcap", "pcaps/ICS-Security-Tools/IEC60870-5-104/090813_diverse.pcap"]
PPS = 2000      # a moderate rate: the ring must drop nothing


def need(*tools: str) -> None:
    """Skip without root or a tool, but fail under CI, where .ci/run installs them."""
    missing = [t for t in tools if shutil.which(t) is None]
    why = (f"{', '.join(missing)} not installed (Debian: tcpreplay, tcpdump, iproute2)" if missing
           else None if os.geteuid() == 0 else "live capture tests need root (network namespaces)")
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


class Veth:
    """tx and rx namespaces joined by a veth pair, IPv6 off so neither end sends anything of its own."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.tx_ns, self.rx_ns = f"pgtx-{tag}", f"pgrx-{tag}"
        self.tx_if, self.rx_if = f"pgt{tag}", f"pgr{tag}"

    def up(self) -> None:
        for ns in (self.tx_ns, self.rx_ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "link", "add", self.tx_if, "netns", self.tx_ns, "type", "veth", "peer", "name", self.rx_if,
           "netns", self.rx_ns)
        for ns, dev in ((self.tx_ns, self.tx_if), (self.rx_ns, self.rx_if)):
            sh("ip", "-n", ns, "link", "set", dev, "mtu", "9000", "up")

    def down(self) -> None:
        for ns in (self.tx_ns, self.rx_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)

    def capture(self, pcap: Path, out: Path, *args: str, pps: int = PPS) -> dict:
        """Replay pcap onto tx while capture.live writes rx's frames to out; its counters."""
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        reader = subprocess.Popen(["ip", "netns", "exec", self.rx_ns, sys.executable, "-m", "plantguard.capture.live",
                                   self.rx_if, "--out", str(out), "--idle", "1.5", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
            sh("ip", "netns", "exec", self.tx_ns, "tcpreplay", "-q", "-i", self.tx_if, f"--pps={pps}", str(pcap))
            stdout, stderr = reader.communicate(timeout=60)
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
        assert reader.returncode == 0, stderr
        return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def veth():
    need("ip", "tcpreplay")
    pair = Veth()
    try:
        pair.up()
        yield pair
    finally:
        pair.down()


def frames(path: Path) -> list[tuple[bytes, int]]:
    """(frame bytes, wire length) of every record, as formats.read_chunks gives them."""
    out = []
    for c in formats.read_chunks(path):
        buf = memoryview(c.buf)
        out += [(bytes(buf[o:o + n]), w) for o, n, w in zip(c.offsets.tolist(), c.caplen.tolist(), c.wirelen.tolist())]
    return out


def as_sent(src: Path, dst: Path) -> Path:
    """src with every record's wire length its captured length."""
    def chunks():
        for c in formats.read_chunks(src):
            c.wirelen = c.caplen.copy()
            yield c
    with open(dst, "wb") as fh:
        write_pcap(chunks(), fh)
    return dst


def flows(res) -> set:
    """Flows without what a replay changes (times, capture path)."""
    return {(f.l4, f.client, f.client_port, f.server, f.port, f.vlan, f.packets, f.bytes, f.packets_to_server,
             f.bytes_to_server, f.app, str(f.operations), f.client_mac, f.server_mac, f.first_frame) for f in res.flows}


def assets(res) -> list:
    return sorted((a.ip or "", a.mac or "", sorted(a.ips), sorted(a.macs), sorted(a.vlans), str(a.role))
                  for a in build_assets(res))


@pytest.mark.slow
@pytest.mark.parametrize("rel", CAPTURES)
def test_replayed_frames_arrive_as_sent(veth, rel, tmp_path):
    src = shared_path(rel)
    out = tmp_path / "rx.pcap"
    st = veth.capture(src, out)
    sent, got = frames(src), frames(out)
    assert [f for f, _ in got] == [f for f, _ in sent]          # byte for byte, VLAN tags back in place
    assert [w for _, w in got] == [len(f) for f, _ in sent]     # tcpreplay sends the captured bytes
    assert st["packets"] == st["frames"] == len(sent) and st["drops"] == 0
    vlan = sum(f[12:14] in (b"\x81\x00", b"\x88\xa8") for f, _ in sent)
    assert st["vlan_restored"] == vlan
    if rel == GOOSE_VLAN:
        assert vlan == len(sent)
    # The engine sees the live frames as it sees the file as sent (tcpreplay sends the captured
    # bytes, so a record cut short, e.g. without its FCS, is that long on the veth): same flows
    # and assets, VLANs included.
    offline, live = analyze([as_sent(src, tmp_path / "sent.pcap")]), analyze([out])
    assert flows(live) == flows(offline)
    assert assets(live) == assets(offline)
    if rel == ENIP_VLAN:
        assert {f.vlan for f in live.flows} == {90} and any(90 in a.vlans for a in build_assets(live))


@pytest.mark.slow
def test_bpf_filter_expression_keeps_what_tcpdump_keeps(veth, tmp_path):
    need("tcpdump")
    src = shared_path(MODBUS)
    expect = tmp_path / "expect.pcap"
    sh("tcpdump", "-r", str(src), "-w", str(expect), "tcp src port 502")
    st = veth.capture(src, tmp_path / "rx.pcap", "--filter", "tcp src port 502")
    got = frames(tmp_path / "rx.pcap")
    assert 0 < len(got) < len(frames(src))
    assert got == frames(expect)
    assert st["packets"] == len(got) and st["drops"] == 0   # the kernel counts only what passed


@pytest.mark.slow
def test_precompiled_bpf_program(veth, tmp_path):
    need("tcpdump")
    src = shared_path(MODBUS)
    prog = tmp_path / "prog.bpf"
    prog.write_text(sh("tcpdump", "-ddd", "-y", "EN10MB", "tcp dst port 502").stdout)
    expect = tmp_path / "expect.pcap"
    sh("tcpdump", "-r", str(src), "-w", str(expect), "tcp dst port 502")
    veth.capture(src, tmp_path / "rx.pcap", "--bpf", str(prog))
    assert frames(tmp_path / "rx.pcap") == frames(expect)


def test_open_errors_are_one_line():
    with pytest.raises(LiveError, match=r"^no such network interface: pg-none0$"):
        LiveSource("pg-none0")
    with pytest.raises(LiveError, match="output of tcpdump -ddd"):
        parse_bpf("ldh [12]")
    with pytest.raises(LiveError, match="header says 3 instructions, 1 given"):
        parse_bpf("3\n40 0 0 12\n")
    assert parse_bpf("2\n40 0 0 12\n6 0 0 262144\n") == [(40, 0, 0, 12), (6, 0, 0, 262144)]


def test_unprivileged_open_is_one_line():
    need("setpriv")
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user")
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                          sys.executable, "-m", "plantguard.capture.live", "lo"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert run.returncode == 2
    assert run.stderr.strip() == "error: capturing on lo needs root or CAP_NET_RAW"
