"""What a probe learnt, read back from its evidence pcap by the passive decoders (so an
identity from probing is decoded exactly as from a capture), per target: the identity fields,
the frame of the evidence each came from, and how each query went."""
from __future__ import annotations

from plantguard.probe.session import QueryRun

IDENTITY_SKIP = {"sources", "fingerprints", "field_sources"}


def identities(evidence_pcap: str, addresses: set[str]) -> dict[str, dict]:
    """{ip: {"identity": {...}, "sources": {key: {"proto", "frame"}}}} for the probed addresses."""
    from plantguard.capture.engine import analyze
    from plantguard.inventory.build import build_assets
    result = analyze([evidence_pcap])
    out: dict[str, dict] = {}
    for a in build_assets(result, None, []):
        if a.ip not in addresses:
            continue
        ident = {k: v for k, v in a.identity.items() if k not in IDENTITY_SKIP and v not in (None, "", [])}
        if not ident:
            continue
        sources = {k: {"proto": s.get("proto"), "frame": s.get("frame")}
                   for k, s in a.identity_sources.items() if k in ident and s.get("proto")}
        out[a.ip] = {"identity": ident, "sources": sources,
                     "services": sorted(f"{s.proto}/{s.port}" for s in a.services.values())}
    return out


def query_record(r: QueryRun) -> dict:
    return {"query": r.query.id, "protocol": r.query.protocol, "transport": r.query.transport,
            "port": r.query.port, "status": r.status, "reason": r.reason,
            "frames_sent": r.sent, "frames_answered": sum(1 for s in r.steps if s.response),
            "ms": round(r.seconds * 1000, 1)}


def per_target(runs: list[QueryRun], learnt: dict[str, dict], probed_at: str, evidence: str | None) -> list[dict]:
    by_ip: dict[str, dict] = {}
    for r in runs:
        t = r.target
        rec = by_ip.setdefault(t.ip, {"ip": t.ip, "zone": t.zone, "mac": t.mac, "queries": [],
                                      "identity": {}, "sources": {}, "probed_at": probed_at,
                                      "evidence": evidence})
        rec["queries"].append(query_record(r))
    for ip, rec in by_ip.items():
        got = learnt.get(ip) or {}
        rec["identity"], rec["sources"] = got.get("identity", {}), got.get("sources", {})
    return list(by_ip.values())
