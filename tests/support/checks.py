"""Helpers for the practice-check tests: run one check on a real capture or on hand-built
observations, flows and assets, with a site file written for the test."""
from __future__ import annotations

import textwrap
from pathlib import Path

from plantguard.checks.base import AssessContext
from plantguard.checks.registry import run_checks
from plantguard.inventory.asset import Asset
from plantguard.model import AnalysisResult, CaptureStats, Flow, Observation
from plantguard.site import load_site

T0 = 1_700_000_000.0   # 2023-11-14T22:13:20Z, a Tuesday


def site(tmp_path: Path, text: str):
    p = tmp_path / "site.yaml"
    p.write_text(textwrap.dedent(text))
    return load_site(p)


def run(check_id: str, result: AnalysisResult, site=None, assets=None):
    """(findings, not_run reason or None) of one check."""
    if assets is None:
        from plantguard.inventory.build import build_assets
        assets = build_assets(result, site)
    findings, not_run = run_checks(AssessContext(result, assets, site), only={check_id})
    reason = next((n["reason"] for n in not_run if n["check"] == check_id), None)
    assert all(f.check == check_id for f in findings)
    return findings, reason


def fails(findings):
    return [f for f in findings if f.status == "fail"]


def passes(findings):
    return [f for f in findings if f.status == "pass"]


def obs(kind: str, proto: str, src: str | None, dst: str | None, *, frame: int = 1, ts: float = T0,
        sport: int = 40000, dport: int = 0, l4: str = "tcp", subject: str = "src", vlan=None,
        count: int = 1, capture: str = "test.pcap", **data) -> Observation:
    o = Observation(kind, proto, capture, frame, ts, src, dst, None, None, l4, sport, dport, vlan,
                    subject, data)
    o.count = count
    if count > 1:
        o.last_frame, o.last_ts = frame + count - 1, ts + count - 1
    return o


def flow(client: str, server: str, port: int, app: str | None = None, *, l4: str = "tcp",
         vlan=None, packets: int = 10, to_server: int = 5, client_mac=None, server_mac=None,
         first: float = T0, frame: int = 1, operations=None, client_port: int = 40000) -> Flow:
    return Flow(l4, client, server, client_port, port, vlan, client_mac, server_mac, app, packets,
                packets * 100, to_server, to_server * 100, first, first + 10, "test.pcap", frame,
                dict(operations or {}))


def result(observations=(), flows=()) -> AnalysisResult:
    r = AnalysisResult()
    r.captures = [CaptureStats("test.pcap", 100, 10000, T0, T0 + 60)]
    r.observations = list(observations)
    r.flows = list(flows)
    return r


def asset(ip: str | None, role: str = "unknown", *, mac=None, vlans=(), identity=None, protocols=(),
          public=False, zone=None, ips=(), macs=()) -> Asset:
    a = Asset(ip=ip, mac=mac, role=role, public=public, zone=zone)
    a.ips = set(ips) | ({ip} if ip else set())
    a.macs = set(macs) | ({mac} if mac else set())
    a.vlans = set(vlans)
    a.identity = dict(identity or {})
    a.protocols = set(protocols)
    return a
