"""Helpers for the probe's tests against real protocol stacks: a pair of network namespaces
joined by a veth (the probe on one side, the device on the other), packet capture on the
probe's side with tcpdump, the probe run as a command, and the passive decoders' reading of a
capture."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

CI = bool(os.environ.get("CI"))
PROBE_IP, DEVICE_IP = "10.77.0.1", "10.77.0.2"
PROBE_MAC, DEVICE_MAC = "02:77:00:00:00:01", "02:77:00:00:00:02"


def need_root_netns() -> None:
    """Skip (fail in CI) without root, ip or tcpdump."""
    missing = [t for t in ("ip", "tcpdump") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        why = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}"
        if CI:
            pytest.fail(f"probe namespace tests {why} in CI")
        pytest.skip(f"probe namespace tests {why}")


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


class Pair:
    """Two namespaces, `probe` (PROBE_IP on veth `pg0`) and `device` (DEVICE_IP on `dev0`);
    IPv6 off so the link carries nothing of its own (counted packets are the probe's)."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.probe, self.device = f"pgp{tag}", f"pgd{tag}"
        self.probe_if, self.device_if = "pg0", "dev0"

    def up(self) -> "Pair":
        _run("ip", "netns", "add", self.probe)
        _run("ip", "netns", "add", self.device)
        _run("ip", "link", "add", "name", self.probe_if, "netns", self.probe, "address", PROBE_MAC, "type",
             "veth", "peer", "name", self.device_if, "netns", self.device, "address", DEVICE_MAC)
        for ns, ifc, ip in ((self.probe, self.probe_if, PROBE_IP), (self.device, self.device_if, DEVICE_IP)):
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifc)
            _run("ip", "-n", ns, "link", "set", ifc, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        # neighbours known: no ARP on the link while the tests count packets
        _run("ip", "-n", self.probe, "neigh", "replace", DEVICE_IP, "lladdr", DEVICE_MAC, "dev", self.probe_if,
             "nud", "permanent")
        _run("ip", "-n", self.device, "neigh", "replace", PROBE_IP, "lladdr", PROBE_MAC, "dev", self.device_if,
             "nud", "permanent")
        return self

    def down(self) -> None:
        for ns in (self.probe, self.device):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)

    def tx_packets(self) -> int:
        """Packets the probe side's interface has sent."""
        r = subprocess.run(["ip", "netns", "exec", self.probe, "cat",
                            f"/sys/class/net/{self.probe_if}/statistics/tx_packets"],
                           capture_output=True, text=True, check=True, timeout=10)
        return int(r.stdout.strip())

    def start(self, ns: str, argv: list[str], ready: float = 2.0, **kw) -> subprocess.Popen:
        """A process in a namespace (a device's server); give it `ready` seconds to listen."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, **kw)
        time.sleep(ready)
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise RuntimeError(f"{argv[:3]} exited {proc.returncode}: {err.decode(errors='replace')[-800:]}")
        return proc

    @contextmanager
    def capture(self, path: Path, bpf: str = ""):
        """tcpdump on the probe's interface into `path` for the duration of the block."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.probe, "tcpdump", "-i", self.probe_if, "-U", "-n",
                                 "-s", "0", "-w", str(path), *([bpf] if bpf else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(1.0)
        try:
            yield path
        finally:
            time.sleep(0.5)
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=10)

    def plantguard(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """The plantguard command in the probe namespace."""
        return subprocess.run(["ip", "netns", "exec", self.probe, sys.executable, "-m", "plantguard", *args],
                              capture_output=True, text=True, timeout=timeout)


@contextmanager
def namespace_pair():
    need_root_netns()
    pair = Pair().up()
    try:
        yield pair
    finally:
        pair.down()


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def site_file(tmp: Path, protocols: list[str], network: str = "10.77.0.0/24", extra: str = "") -> Path:
    """A site with one zone holding the pair's network and a probe allow-list for `protocols`."""
    p = tmp / "site.yaml"
    p.write_text(f"""site: Probe test
zones:
  - name: cell-a
    kind: ot-control
    networks: [{network}]
probe:
  owner: OT engineering (tests)
  rate: 50
  windows: ignored
  allow:
    - zones: [cell-a]
      protocols: [{', '.join(protocols)}]
{extra}""", encoding="utf-8")
    return p


def probe_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def passive_identity(pcap: Path | str, ip: str) -> dict:
    """What the passive decoders read about `ip` from a capture (the identity, without sources)."""
    from plantguard.probe.results import identities
    return (identities(str(pcap), {ip}).get(ip) or {}).get("identity", {})
