"""The kernel proof (`firewall check --prove`, and the tests): load a Linux ruleset into a real
kernel and ask it what it does with each witness packet.

As root on Linux, `prove` builds throwaway network namespaces: one router namespace (ip_forward
on, the configuration loaded with iptables-restore / ipset restore / nft -f) and one namespace per
interface group of the witnesses' addresses, each joined to the router by a veth pair. Router-side
veths are named after the packet's in_iface / out_iface (or the interface whose networks hold the
address), so interface-scoped rules see the names they were written for. Neighbours and routes
are static: no ARP or neighbour discovery passes through the ruleset under test.

Each packet is sent once from its source namespace (TCP SYN by a non-blocking connect, a UDP
datagram, an ICMP echo request, bound to the source address) and a sniffer on the destination
namespace's veth reports what arrived: delivered or not is the kernel's verdict.

This sends packets ONLY inside the namespaces it creates and always deletes them (unique names,
try/finally). plantguard's passive commands never send a packet: this is a test facility and the
opt-in `--prove`."""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from netaddr import IPAddress, IPSet

from plantguard.firewall.model import Packet, Ruleset

TOOLS = {"iptables": ("ip", "iptables-restore", "ip6tables-restore", "ipset"), "nftables": ("ip", "nft")}


@dataclass(frozen=True)
class KernelVerdict:
    """What the kernel did with one packet: delivered True/False, or None when it was not sent (why)."""
    packet: Packet
    delivered: bool | None
    why: str = ""


class KernelUnavailable(RuntimeError):
    """The proof cannot run here (one line: not root, not Linux, a tool missing)."""


def unavailable(fmt: str) -> str | None:
    """Why the kernel proof cannot run for this format here, or None."""
    if not sys.platform.startswith("linux"):
        return "the kernel proof needs Linux (network namespaces)"
    if os.geteuid() != 0:
        return "the kernel proof needs root (it builds network namespaces)"
    if fmt not in TOOLS:
        return f"the kernel proof loads Linux rulesets only (iptables, nftables), not {fmt}"
    missing = [t for t in TOOLS[fmt] if not _which(t)]
    if missing:
        return f"the kernel proof needs {', '.join(missing)} (apt-get install iproute2 iptables ipset nftables)"
    return None


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def prove(config: str | Path, fmt: str, packets: Sequence[Packet], companions: Iterable[str | Path] = (),
          interfaces: Mapping[str, IPSet] | None = None, family: str = "ip", settle: float = 0.5) -> list[KernelVerdict]:
    """The kernel's verdict for each packet, in order. fmt: "iptables" (family "ip6" for an
    ip6tables-save file; companions are `ipset save` files) or "nftables" (JSON or text)."""
    why = unavailable(fmt)
    if why:
        raise KernelUnavailable(why)
    lab = _Lab(interfaces or {})
    try:
        plan = [lab.place(p) for p in packets]
        lab.build()
        lab.load(Path(config), fmt, [Path(c) for c in companions], family)
        return lab.run(packets, plan, settle)
    finally:
        lab.destroy()


def prove_ruleset(ruleset: Ruleset, packets: Sequence[Packet], companions: Iterable[str | Path] = (),
                  settle: float = 0.5) -> list[KernelVerdict]:
    """`prove` for a parsed Ruleset: its own file, format, interfaces and (ip6tables) family."""
    family = "ip6" if ruleset.chains and all(c.family == "ip6" for c in ruleset.chains.values()) else "ip"
    return prove(ruleset.path, ruleset.format, packets, companions, ruleset.interfaces, family, settle)


class _Lab:
    def __init__(self, interfaces: Mapping[str, IPSet]):
        self.token = uuid.uuid4().hex[:6]
        self.interfaces = interfaces
        self.router = f"pgk{self.token}r"
        self.groups: dict[str, str] = {}          # router-side interface -> its namespace
        self.addr_group: dict[str, str] = {}      # address -> router-side interface
        self.created: list[str] = []

    def _group_for(self, addr: str, iface: str | None) -> str:
        if iface:
            return iface
        if addr in self.addr_group:
            return self.addr_group[addr]
        for name, nets in self.interfaces.items():
            if IPAddress(addr) in nets:
                return name
        return f"pg{len(self.groups)}"

    def place(self, p: Packet) -> str | None:
        """Put the packet's addresses on interfaces; why it cannot be sent, or None."""
        try:
            src, dst = (ipaddress.ip_address(a).compressed for a in (p.src, p.dst))
        except ValueError:
            return "not a single address"
        if ipaddress.ip_address(src).version != ipaddress.ip_address(dst).version:
            return "source and destination of different IP versions"
        if p.state != "new":
            return f"only new connections are sent (state {p.state})"
        if p.protocol not in ("tcp", "udp", "icmp", "icmpv6"):
            return f"protocol {p.protocol} is not sent"
        groups = []
        for addr, iface in ((src, p.in_iface), (dst, p.out_iface)):
            name = self._group_for(addr, iface)
            if len(name) > 15 or "/" in name or name.endswith(("+", "*")):
                return f"interface name {name!r} cannot be created"
            if self.addr_group.get(addr, name) != name:
                return f"{addr} is already on interface {self.addr_group[addr]}"
            groups.append(name)
        if groups[0] == groups[1]:
            return "source and destination on the same interface (not routed)"
        for addr, name in zip((src, dst), groups):
            self.addr_group[addr] = name
            self.groups.setdefault(name, f"pgk{self.token}{len(self.groups)}")
        return None

    def build(self) -> None:
        sysctls = ["net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]
        _run("ip", "netns", "add", self.router)
        self.created.append(self.router)
        _ns(self.router, "sysctl", "-qw", *sysctls, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        _ns(self.router, "ip", "link", "set", "lo", "up")
        for i, (iface, ns) in enumerate(self.groups.items()):
            _run("ip", "netns", "add", ns)
            self.created.append(ns)
            _ns(ns, "sysctl", "-qw", *sysctls)
            rmac, hmac = f"02:70:67:00:{i // 256:02x}:{i % 256:02x}", f"02:70:68:00:{i // 256:02x}:{i % 256:02x}"
            _run("ip", "link", "add", "name", iface, "netns", self.router, "address", rmac, "type", "veth",
                 "peer", "name", "v0", "netns", ns, "address", hmac)
            _ns(self.router, "ip", "link", "set", "dev", iface, "up")
            _ns(ns, "ip", "link", "set", "lo", "up")
            _ns(ns, "ip", "link", "set", "v0", "up")
            _ns(ns, "ip", "neigh", "replace", "169.254.0.1", "lladdr", rmac, "dev", "v0", "nud", "permanent")
            _ns(ns, "ip", "route", "add", "default", "via", "169.254.0.1", "dev", "v0", "onlink")
            _ns(ns, "ip", "-6", "neigh", "replace", "fe80::1", "lladdr", rmac, "dev", "v0", "nud", "permanent")
            _ns(ns, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "v0")
            for addr, name in self.addr_group.items():
                if name != iface:
                    continue
                v6 = ":" in addr
                _ns(ns, "ip", "addr", "add", f"{addr}/{128 if v6 else 32}", "dev", "v0", *(["nodad"] if v6 else []))
                _ns(self.router, "ip", "route", "add", addr, "dev", iface)
                _ns(self.router, "ip", "neigh", "replace", addr, "lladdr", hmac, "dev", iface, "nud", "permanent")

    def load(self, config: Path, fmt: str, companions: list[Path], family: str) -> None:
        if fmt == "nftables":
            text = config.read_text(encoding="utf-8", errors="replace").lstrip()
            _ns(self.router, "nft", *(["-j"] if text.startswith("{") else []), "-f", str(config))
            return
        for comp in companions:
            _ns(self.router, "ipset", "restore", "-exist", stdin=comp.read_bytes())
        restore = "ip6tables-restore" if family == "ip6" else "iptables-restore"
        _ns(self.router, restore, stdin=config.read_bytes())

    def run(self, packets: Sequence[Packet], plan: list[str | None], settle: float) -> list[KernelVerdict]:
        sniffers = {}
        for ns in set(self.groups.values()):
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", _SNIFFER],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            sniffers[ns] = proc
        for ns, proc in sniffers.items():
            if proc.stdout.readline().strip() != "ready":
                raise KernelUnavailable(f"the sniffer in {ns} did not start: {proc.stderr.read().strip()[:200]}")
        by_ns: dict[str, list] = {}
        for p, why in zip(packets, plan):
            if why is None:
                src = ipaddress.ip_address(p.src).compressed
                by_ns.setdefault(self.groups[self.addr_group[src]], []).append(_wire(p))
        for ns, wires in by_ns.items():
            _ns(ns, sys.executable, "-c", _SENDER, stdin=json.dumps(wires).encode())
        time.sleep(settle)
        seen: set[tuple] = set()
        for proc in sniffers.values():
            out, _ = proc.communicate("", timeout=30)
            seen |= {tuple(json.loads(line)) for line in out.splitlines() if line.startswith("[")}
        return [KernelVerdict(p, None, why) if why else KernelVerdict(p, tuple(_key(_wire(p))) in seen)
                for p, why in zip(packets, plan)]

    def destroy(self) -> None:
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60, check=False)


def _wire(p: Packet) -> dict:
    proto = "icmpv6" if p.protocol == "icmp" and ":" in p.dst else p.protocol
    echo = 128 if proto == "icmpv6" else 8
    return {"proto": proto, "src": ipaddress.ip_address(p.src).compressed, "dst": ipaddress.ip_address(p.dst).compressed,
            "sport": p.sport, "dport": p.dport or 0,
            "type": p.icmp_type if p.icmp_type is not None else echo}


def _key(w: dict) -> list:
    return [w["proto"], w["src"], w["dst"], w["type"] if w["proto"].startswith("icmp") else w["dport"]]


def _run(*cmd: str, stdin: bytes | None = None) -> None:
    done = subprocess.run(list(cmd), input=stdin, capture_output=True, timeout=60, check=False)
    if done.returncode:
        raise KernelUnavailable(f"{' '.join(cmd[:6])} failed: {done.stderr.decode(errors='replace').strip()[:300]}")


def _ns(ns: str, *cmd: str, stdin: bytes | None = None) -> None:
    _run("ip", "netns", "exec", ns, *cmd, stdin=stdin)


# Runs inside a destination namespace: report every TCP/UDP/ICMP packet arriving on v0 as a JSON
# key line until stdin closes.
_SNIFFER = r"""
import ipaddress, json, select, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))
s.bind(("v0", 0))
print("ready", flush=True)
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 5)
    if sys.stdin in r and not s in r:
        break
    if s not in r:
        continue
    data, addr = s.recvfrom(65535)
    if addr[2] != socket.PACKET_HOST:
        continue
    if addr[1] == 0x0800 and len(data) >= 20:
        ihl = (data[0] & 15) * 4
        proto, src, dst, l4 = data[9], data[12:16], data[16:20], data[ihl:]
    elif addr[1] == 0x86DD and len(data) >= 40:
        proto, src, dst, l4 = data[6], data[8:24], data[24:40], data[40:]
    else:
        continue
    src, dst = ipaddress.ip_address(src).compressed, ipaddress.ip_address(dst).compressed
    if proto in (6, 17) and len(l4) >= 4:
        key = ["tcp" if proto == 6 else "udp", src, dst, int.from_bytes(l4[2:4], "big")]
    elif proto in (1, 58) and l4:
        key = ["icmp" if proto == 1 else "icmpv6", src, dst, l4[0]]
    else:
        continue
    print(json.dumps(key), flush=True)
"""

# Runs inside a source namespace: send each packet of the JSON list on stdin once.
_SENDER = r"""
import json, socket, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(int.from_bytes(b[i:i+2], "big") for i in range(0, len(b), 2))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF
for w in json.load(sys.stdin):
    fam = socket.AF_INET6 if ":" in w["dst"] else socket.AF_INET
    if w["proto"] == "tcp":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((w["src"], w["sport"]))
        s.setblocking(False)
        try: s.connect((w["dst"], w["dport"]))
        except (BlockingIOError, OSError): pass
    elif w["proto"] == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((w["src"], w["sport"]))
        s.sendto(b"plantguard kernel proof", (w["dst"], w["dport"]))
    else:
        s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if fam == socket.AF_INET6 else socket.IPPROTO_ICMP)
        s.bind((w["src"], 0))
        body = bytes([w["type"], 0, 0, 0]) + (0x7067).to_bytes(2, "big") + (1).to_bytes(2, "big") + b"plantguard"
        if fam == socket.AF_INET:
            body = body[:2] + csum(body).to_bytes(2, "big") + body[4:]
        s.sendto(body, (w["dst"], 0))
    s.close()
"""
