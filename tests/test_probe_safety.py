"""The probe's safety promises, measured on the wire against real counterparts in a namespace pair
(tests/support/probe.py): pymodbus 3.16's Modbus/TCP server with a device identification table and
cpppo's EtherNet/IP server with a configured Identity object, nmap's NSE scripts as a second
opinion, and device-side servers that delay or reset (tests/support/probe_servers.py).

  a. --send learns the configured identity, the same one the passive decoders read from a
     tcpdump capture of the link, and nmap's modbus-discover / enip-info agree on what both print;
  b. a dry run sends nothing: the probe interface's tx counter is unchanged and the capture empty;
  c. per device, one TCP connection at a time, each closed by the probe's FIN, never its RST;
  d. the rate cap: the packets the cap counts (the probe's SYNs, data segments and FINs) are at
     least 1/rate apart, so any k+1 of them span at least k/rate seconds;
  e. a device whose answers slow down, or that resets connections, trips the breaker and is not
     sent anything more (nor, after three such devices, is anyone)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.packets import read_pcap
from support.probe import (
    CI,
    DEVICE_IP,
    DEVICE_MAC,
    PROBE_IP,
    PROBE_MAC,
    _run,
    namespace_pair,
    passive_identity,
    probe_json,
    site_file,
    stop,
)

pytestmark = pytest.mark.slow

SERVERS = Path(__file__).parent / "support" / "probe_servers.py"
ENIP_IP, ENIP_MAC = "10.77.0.3", "02:77:00:00:00:03"
MODBUS_ID = {"VendorName": "Acme Controls", "ProductCode": "AC-300", "MajorMinorRevision": "2.4.1",
             "VendorUrl": "http://acme.example", "ProductName": "Acme PLC", "ModelName": "AC-300-X"}
# cpppo's [Identity] section (decimal: its config reader takes no hex)
ENIP_ID = {"Vendor Number": 1234, "Device Type": 12, "Product Code Number": 77, "Product Revision": 773,
           "Serial Number": 0x12345678, "Product Name": "Acme ENIP Adapter"}
RATE = 5.0
JITTER = 0.005          # capture timestamps vs. the cap's clock


def add_device_address(pair, ip: str) -> None:
    """Another address of the device side, known to the probe side's neighbour table (no ARP)."""
    _run("ip", "-n", pair.device, "addr", "add", f"{ip}/24", "dev", pair.device_if)
    _run("ip", "-n", pair.probe, "neigh", "replace", ip, "lladdr", DEVICE_MAC, "dev", pair.probe_if,
         "nud", "permanent")


@contextmanager
def second_device(pair, ip: str, mac: str):
    """A second device with its own MAC and namespace (a macvlan on the device side's veth), so
    the passive decoders of the link capture see two hosts, not one with two addresses."""
    ns = f"{pair.device}b"
    _run("ip", "netns", "add", ns)
    try:
        _run("ip", "-n", pair.device, "link", "add", "link", pair.device_if, "name", "dev1", "address", mac,
             "type", "macvlan", "mode", "bridge")
        _run("ip", "-n", pair.device, "link", "set", "dev1", "netns", ns)
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "dev1")
        _run("ip", "-n", ns, "link", "set", "dev1", "up")
        _run("ip", "-n", ns, "neigh", "replace", PROBE_IP, "lladdr", PROBE_MAC, "dev", "dev1", "nud", "permanent")
        _run("ip", "-n", pair.probe, "neigh", "replace", ip, "lladdr", mac, "dev", pair.probe_if, "nud", "permanent")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)


def send(pair, tmp: Path, targets: list[str], protocols: str, *extra: str) -> subprocess.CompletedProcess:
    return pair.plantguard("probe", "--site", str(site_file(tmp, ["modbus", "enip", "dcp"])),
                           "--targets", ",".join(targets), "--protocols", protocols, "--send",
                           "--evidence", str(tmp / "ev"), "--db", str(tmp / "pg.db"), "-f", "json", *extra)


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        (pytest.fail if CI else pytest.skip)(f"needs {', '.join(missing)} (Debian packages)")


def tcp_packets(pcap: Path) -> list[dict]:
    """The capture's TCP packets as tshark reads them (an oracle independent of plantguard)."""
    need("tshark")
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-E", "separator=,",
                          "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport",
                          "-e", "tcp.dstport", "-e", "tcp.flags", "-e", "tcp.len"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        ts, src, dst, sport, dport, flags, length = line.split(",")
        rows.append({"ts": float(ts), "src": src, "dst": dst, "sport": int(sport), "dport": int(dport),
                     "flags": int(flags, 16), "len": int(length)})
    return rows


SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def connections(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Packets per connection (probe address, probe port, device address, device port), in order."""
    conns: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["src"], r["sport"], r["dst"], r["dport"]) if r["src"] == PROBE_IP else \
              (r["dst"], r["dport"], r["src"], r["sport"])
        conns.setdefault(key, []).append(r)
    return conns


def capped(rows: list[dict]) -> list[float]:
    """When the probe sent a packet the rate cap counts: a SYN, a data segment or a FIN."""
    return [r["ts"] for r in rows if r["src"] == PROBE_IP
            and (r["flags"] & (SYN | ACK) == SYN or r["len"] > 0 or r["flags"] & FIN)]


def nmap(pair, script: str, ip: str, port: int) -> dict[str, str]:
    """`key: value` lines of one NSE script's output (TCP connect scan, from the probe side)."""
    need("nmap")
    out = subprocess.run(["ip", "netns", "exec", pair.probe, "nmap", "-n", "-Pn", "-sT", "-p", str(port),
                          "--script", script, ip], capture_output=True, text=True, timeout=120).stdout
    return {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r"^\|[_ ]\s+([^:]+): (.*)$", out, re.M)}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    need("tshark", "nmap")
    tmp = tmp_path_factory.mktemp("stacks")
    cfg = tmp / "cpppo.cfg"
    cfg.write_text("[Identity]\n" + "".join(f"{k} = {v}\n" for k, v in ENIP_ID.items()), encoding="utf-8")
    with namespace_pair() as pair, second_device(pair, ENIP_IP, ENIP_MAC) as enip_ns:
        procs = [pair.start(pair.device, [sys.executable, str(SERVERS), "modbus", f"{DEVICE_IP}:502",
                                          json.dumps(MODBUS_ID)]),
                 pair.start(enip_ns, [sys.executable, "-m", "cpppo.server.enip", "--address",
                                          f"{ENIP_IP}:44818", "-c", str(cfg), "Tag=INT[1]"], ready=3.0)]
        try:
            with pair.capture(tmp / "link.pcap"):
                before = pair.tx_packets()
                res = send(pair, tmp, [DEVICE_IP, ENIP_IP], "modbus,enip", "--rate", str(RATE))
                tx = pair.tx_packets() - before
            seen = {"modbus": nmap(pair, "modbus-discover", DEVICE_IP, 502),
                    "enip": nmap(pair, "enip-info", ENIP_IP, 44818)}
        finally:
            for p in procs:
                stop(p)
    return {"result": probe_json(res), "pcap": tmp / "link.pcap", "tx": tx, "nmap": seen}


def identity_of(result: dict, ip: str) -> dict:
    return next(t for t in result["targets"] if t["ip"] == ip)["identity"]


def test_identities_are_the_configured_ones(stacks):
    mb, en = identity_of(stacks["result"], DEVICE_IP), identity_of(stacks["result"], ENIP_IP)
    assert (mb["vendor"], mb["product_code"], mb["firmware"], mb["vendor_url"], mb["product"], mb["model"]) == \
        tuple(MODBUS_ID.values())
    assert (en["vendor_id"], en["device_type_id"], en["product_code"], en["product"]) == \
        (ENIP_ID["Vendor Number"], ENIP_ID["Device Type"], ENIP_ID["Product Code Number"], ENIP_ID["Product Name"])
    rev = ENIP_ID["Product Revision"]
    assert en["firmware"] == f"{rev & 0xFF}.{rev >> 8}" and en["serial"] == f"0x{ENIP_ID['Serial Number']:08x}"


def test_identities_equal_the_passive_reading_of_the_link(stacks):
    for ip in (DEVICE_IP, ENIP_IP):
        assert identity_of(stacks["result"], ip) == passive_identity(stacks["pcap"], ip)


def test_nmap_agrees(stacks):
    mb, en, seen = identity_of(stacks["result"], DEVICE_IP), identity_of(stacks["result"], ENIP_IP), stacks["nmap"]
    # modbus-discover prints the basic objects (vendor, product code, revision) joined by spaces
    assert seen["modbus"]["Device identification"] == f"{mb['vendor']} {mb['product_code']} {mb['firmware']}"
    e = seen["enip"]
    assert e["productName"] == en["product"] and int(e["productCode"]) == en["product_code"]
    assert e["revision"] == en["firmware"] and int(e["serialNumber"], 16) == int(en["serial"], 16)
    assert e["vendor"].endswith(f"({en['vendor_id']})") and e["type"].endswith(f"({en['device_type_id']})")
    assert e["status"] == en["status"] and e["state"] == en["state"]


def test_one_connection_per_device_closed_by_our_fin(stacks):
    rows = tcp_packets(stacks["pcap"])
    assert not [r for r in rows if r["src"] == PROBE_IP and r["flags"] & RST], "the probe sent a reset"
    conns = connections(rows)
    established = 0
    for device in (DEVICE_IP, ENIP_IP):
        spans = []
        for key, pkts in conns.items():
            if key[2] != device:
                continue
            spans.append((pkts[0]["ts"], pkts[-1]["ts"]))
            if any(p["src"] == device and p["flags"] & (SYN | ACK) == SYN | ACK for p in pkts):
                established += 1
                ours = [p for p in pkts if p["src"] == PROBE_IP and p["flags"] & FIN]
                assert ours, f"connection {key} not closed by the probe's FIN"
                theirs = [p for p in pkts if p["src"] == device and p["flags"] & FIN]
                assert theirs and theirs[0]["ts"] >= ours[0]["ts"], "the probe closed first, the device after"
        spans.sort()
        assert all(b[0] > a[1] for a, b in zip(spans, spans[1:])), f"overlapping connections to {device}"
    assert established == 2          # modbus on .2, enip on .3; the other two were refused (no listener)


def test_rate_cap_holds_on_the_wire(stacks):
    times = sorted(capped(tcp_packets(stacks["pcap"])))
    assert len(times) == 8           # 2 × (SYN, request, FIN) + 2 refused SYNs
    assert stacks["result"]["sent"] == len(times)
    # and the interface sent nothing but the probe's TCP packets (no ARP, nothing else)
    assert stacks["tx"] == len([r for r in tcp_packets(stacks["pcap"]) if r["src"] == PROBE_IP])
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 1 / RATE - JITTER, gaps
    for i in range(len(times)):       # any window: k+1 capped packets span at least k / rate
        for j in range(i + 1, len(times)):
            assert times[j] - times[i] >= (j - i) / RATE - JITTER


def test_dry_run_sends_nothing(tmp_path):
    with namespace_pair() as pair:
        with pair.capture(tmp_path / "link.pcap"):
            before = pair.tx_packets()
            res = pair.plantguard("probe", "--site", str(site_file(tmp_path, ["modbus", "enip", "dcp"])),
                                  "--targets", f"{DEVICE_IP},{ENIP_IP}", "--protocols", "modbus,enip,dcp",
                                  "-f", "json")
            after = pair.tx_packets()
    plan = probe_json(res)
    assert plan["dry_run"] and plan["sent"] == 0
    assert sum(len(f["frames"]) for f in plan["frames"]) == 5      # 2 × (modbus, enip) + DCP to the known MAC
    assert after == before
    assert read_pcap(tmp_path / "link.pcap") == []


def test_slowing_device_trips_the_breaker(tmp_path):
    """Answers after 20, 20, 20 ms, then 1.5 s, each saying "more follows": the probe would ask up
    to 8 times; the fourth answer, 75x the usual, trips the breaker and nothing more is asked."""
    with namespace_pair() as pair:
        dev = pair.start(pair.device, [sys.executable, str(SERVERS), "slow", f"{DEVICE_IP}:502",
                                       "0.02,0.02,0.02,1.5,0.02"], ready=1.0)
        try:
            with pair.capture(tmp_path / "link.pcap"):
                res = send(pair, tmp_path, [DEVICE_IP], "modbus")
        finally:
            stop(dev)
        log = [json.loads(ln) for ln in dev.stdout.read().decode().splitlines()]
    result = probe_json(res)
    assert "response took" in result["tripped"][DEVICE_IP]
    assert len([e for e in log if "request" in e]) == 4
    rows = tcp_packets(tmp_path / "link.pcap")
    requests = [r for r in rows if r["src"] == PROBE_IP and r["len"] > 0]
    answers = [r for r in rows if r["src"] == DEVICE_IP and r["len"] > 0]
    assert len(requests) == 4 and len(answers) == 4
    after = [r for r in rows if r["src"] == PROBE_IP and r["ts"] > answers[-1]["ts"]]
    assert not [r for r in after if r["len"] > 0 or r["flags"] & (SYN | RST)]
    assert len(after) <= 3 and any(r["flags"] & FIN for r in after)   # ACK, FIN, last ACK: the close only


def test_resetting_devices_trip_the_breaker_and_then_the_run(tmp_path):
    """Every connection reset: each device trips after its second error, and after three devices
    the run stops: the fourth is sent nothing at all."""
    ips = [DEVICE_IP, "10.77.0.3", "10.77.0.4", "10.77.0.5"]
    with namespace_pair() as pair:
        for ip in ips[1:]:
            add_device_address(pair, ip)
        dev = pair.start(pair.device, [sys.executable, str(SERVERS), "reset", "0.0.0.0:0", "502,44818"], ready=1.0)
        try:
            with pair.capture(tmp_path / "link.pcap"):
                res = send(pair, tmp_path, ips, "modbus,enip", "--rate", "20")
        finally:
            stop(dev)
    assert res.returncode == 1, res.stderr
    result = probe_json(res)
    assert result["breaker"] and sorted(result["tripped"]) == ips[:3]
    last = next(t for t in result["targets"] if t["ip"] == ips[3])
    assert {q["status"] for q in last["queries"]} == {"skipped"}
    rows = tcp_packets(tmp_path / "link.pcap")
    assert not [r for r in rows if r["dst"] == ips[3]]
    assert not [r for r in rows if r["src"] == PROBE_IP and r["flags"] & RST]
    per_device = {ip: len([r for r in rows if r["dst"] == ip and r["flags"] & (SYN | ACK) == SYN]) for ip in ips}
    assert per_device == {ips[0]: 2, ips[1]: 2, ips[2]: 2, ips[3]: 0}
