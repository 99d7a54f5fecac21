"""Findings grouped into incidents, so one event reads as one entry and not as four.

Every finding, PASS or FAIL, gets a stable id and belongs to exactly one incident:

- flow: a finding of a conversation check (CheckMeta.conversation) naming exactly two
  addresses that the flows show talking to each other joins the incident of that host pair,
  whichever check made it (an office host writing to a PLC: it-ot-bridge, zone-violation,
  unauthenticated-control and unauthorised-write are one incident). src is the side that sent
  more packets to the other (the client), dst the other;
- advisory: every vuln.* finding of the devices that run one product and firmware (3 identical
  PLCs x 15 advisories are one incident listing the advisories and the 3 devices);
- asset: anything else, per subject and practice: one device's findings of one practice together
  (its Telnet, FTP and HTTP services); a finding about several devices is its own subject (the
  station a plc.* finding infers, the device a detail names, else the set it names); one about
  none is site-wide (the attestations).

PASS findings are grouped by the same rules, so an incident made only of them has status pass
and says what was checked and found in order. Ids hash what identifies the thing, never its
position: a finding's its check, sorted addresses and title; an incident's its kind and key.
Input is contract-shaped dicts (a saved contract groups the same way); nothing here raises on
odd input."""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

from plantguard.checks.base import severity_rank
from plantguard.checks.practices import practice_title

KINDS = ("flow", "asset", "advisory")
ADVISORY_CHECKS = ("vuln.advisory", "vuln.known-exploited")


def finding_id(check: str, assets: Iterable[str], title: str) -> str:
    """The stable id of a finding: "F-" and 8 hex digits of its check, sorted addresses and title."""
    return "F-" + _digest(check, *sorted(set(assets)), "", title)


def finding_ids(findings: Iterable[dict]) -> list[str]:
    """The ids of findings in their order; a repeat of an identical finding gets -2, -3, ..."""
    seen: Counter = Counter()
    out = []
    for f in findings:
        fid = finding_id(_text(f.get("check")), _texts(f.get("assets")), _text(f.get("title")))
        seen[fid] += 1
        out.append(fid if seen[fid] == 1 else f"{fid}-{seen[fid]}")
    return out


def group(findings: list[dict], flows: Iterable[tuple[str, str, int]] = (), assets: Iterable[dict] = ()
          ) -> tuple[list[str], list[str], list[dict]]:
    """(finding ids, incident id of each finding, incidents) for contract finding dicts, the
    (src, dst, packets) of the flows and the contract's asset dicts. Incidents come failing
    first, worst severity first."""
    findings = [f if isinstance(f, dict) else {} for f in findings]
    ids = finding_ids(findings)
    packets = _packets(flows)
    by_address = _asset_index(assets)
    groups: dict[tuple, dict] = {}
    of: list[str] = []
    for fid, f in zip(ids, findings):
        key, extra = _key(f, packets, by_address)
        g = groups.setdefault(key, {"id": "I-" + _digest(*map(str, key)), "kind": key[0], "members": [], **extra})
        g["members"].append((fid, f))
        of.append(g["id"])
    incidents = [_incident(g, packets, by_address) for g in groups.values()]
    incidents.sort(key=lambda i: (i["status"] != "fail", -severity_rank(i["severity"]), -len(i["findings"]),
                                  i["title"], i["id"]))
    return ids, of, incidents


# -- which incident a finding belongs to -----------------------------------------------------------

def _key(f: dict, packets: dict, by_address: dict) -> tuple[tuple, dict]:
    named = _texts(f.get("assets"))
    check, addresses = _text(f.get("check")), list(dict.fromkeys(named))
    detail = f.get("detail") if isinstance(f.get("detail"), dict) else {}
    if check in ADVISORY_CHECKS and len(addresses) == 1:
        product = _product(by_address.get(addresses[0]), detail)
        if product is not None:
            return ("advisory", *(p.lower() for p in product)), dict(zip(("vendor", "product", "firmware"), product))
    # two ends, or a host talking to itself (loopback: named twice)
    if (len(addresses) == 2 or len(named) == 2) and _is_conversation(check):
        a, b = sorted(addresses) if len(addresses) == 2 else addresses * 2
        if packets.get((a, b)) or packets.get((b, a)):
            return ("flow", a, b), {}
    subject = next((detail[k] for k in ("inferred_station", "asset") if detail.get(k) in addresses), None)
    who = (subject,) if subject else tuple(sorted(addresses))
    return ("asset", _text(f.get("practice")), *who), {"subject": list(who)}


def _is_conversation(check: str) -> bool:
    from plantguard.checks.registry import check_meta
    meta = check_meta(check)
    return bool(meta and meta.conversation)


def _product(asset: dict | None, detail: dict) -> tuple[str, str, str] | None:
    """(vendor, product, firmware) the device runs: the inventory's identity, else what the
    finding's detail recorded of it; None when the product is unknown."""
    ident = _mapping((asset or {}).get("identity")) or _mapping(detail.get("identity"))
    declared = _mapping((asset or {}).get("declared"))
    order = _text(ident.get("order_number"))
    product = (_text(ident.get("product")) or _text(ident.get("model"))
               or (" ".join(x for x in (_text(ident.get("family")), order) if x) if order else "")
               or _text(declared.get("product")))
    if not product:
        return None
    firmware = _text(ident.get("firmware")) or _text(declared.get("firmware"))
    vendor = _text(ident.get("vendor")) or _text(declared.get("vendor")) or _text((asset or {}).get("vendor"))
    return vendor, product, firmware


# -- one incident ----------------------------------------------------------------------------------

def _incident(g: dict, packets: dict, by_address: dict) -> dict[str, Any]:
    members = [f for _, f in g["members"]]
    # an accepted risk (suppressed) does not make its incident fail
    fails = [f for f in members if _text(f.get("status")) == "fail" and not f.get("suppressed")]
    checks = sorted({_text(f.get("check")) for f in members if _text(f.get("check"))})
    practices = sorted({_text(f.get("practice")) for f in members if _text(f.get("practice"))})
    addresses = list(dict.fromkeys(a for f in members for a in _texts(f.get("assets"))))
    out: dict[str, Any] = {
        "id": g["id"], "kind": g["kind"], "title": "",
        "severity": max((_text(f.get("severity")) or "info" for f in fails), key=severity_rank, default="info"),
        "status": "fail" if fails else "pass", "assets": addresses, "checks": checks,
        "findings": [fid for fid, _ in g["members"]], "practices": practices,
        "evidence_total": sum(_int(f.get("evidence_total")) for f in members)}
    tally = _tally(len(fails), len(members) - len(fails))
    if g["kind"] == "flow":
        a, b = addresses[:2] if len(addresses) >= 2 else (addresses * 2)[:2]
        src, dst = (a, b) if packets.get((a, b), 0) >= packets.get((b, a), 0) else (b, a)
        out.update(src=src, dst=dst, assets=list(dict.fromkeys([src, dst, *addresses])))
        ends = (f"from {_label(src, by_address)} to {_label(dst, by_address)}" if src != dst else
                f"of {_label(src, by_address)} with itself")
        out["title"] = f"Traffic {ends}: {tally} ({', '.join(practice_title(p) for p in practices)})"
    elif g["kind"] == "advisory":
        advisories = sorted({_text(_mapping(f.get("detail")).get("advisory")) for f in fails} - {""})
        devices = len(addresses)
        name = " ".join(x for x in (g["vendor"], g["product"]) if x)
        fw = f"firmware {g['firmware']}" if g["firmware"] else "firmware unknown"
        out.update(vendor=g["vendor"] or None, product=g["product"], firmware=g["firmware"] or None,
                   advisories=advisories)
        out["title"] = (f"{name} {fw}: {_count(len(advisories), 'advisory', 'advisories')} on "
                        f"{_count(devices, 'device')}" if advisories else
                        f"{name} {fw}: no advisory matched on {_count(devices, 'device')} ({tally})")
    else:
        who = g["subject"]
        where = (_label(who[0], by_address) if len(who) == 1 else
                 f"{_count(len(who), 'device')}" if who else "Site")
        practice = practice_title(practices[0]) if len(practices) == 1 else "Other"
        out["title"] = f"{where}: {practice} ({tally})"
    return out


def _tally(fails: int, passes: int) -> str:
    parts = [_count(fails, "problem")] if fails else []
    if passes:
        parts.append(f"{_count(passes, 'check')} passed")
    return ", ".join(parts)


def _count(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _label(address: str, by_address: dict) -> str:
    """An address with the name the inventory knows it by: '10.10.1.10 (plc-m340)'."""
    a = by_address.get(address) or {}
    ident, declared = _mapping(a.get("identity")), _mapping(a.get("declared"))
    hostnames = _texts(a.get("hostnames"))
    name = _text(ident.get("name")) or _text(declared.get("name")) or (hostnames[0] if hostnames else "")
    return f"{address} ({name})" if name and name != address else address


# -- input -----------------------------------------------------------------------------------------

def _packets(flows: Iterable) -> dict[tuple[str, str], int]:
    out: Counter = Counter()
    for fl in flows:
        try:
            src, dst, n = fl
        except (TypeError, ValueError):
            continue
        if isinstance(src, str) and isinstance(dst, str):
            out[(src, dst)] += _int(n) or 1
    return out


def _asset_index(assets: Iterable[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for a in assets:
        if not isinstance(a, dict):
            continue
        for k in [a.get("ip"), a.get("mac"), *_texts(a.get("ips"))]:
            if isinstance(k, str) and k:
                out.setdefault(k, a)
    return out


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:8]


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _texts(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str) and x] if isinstance(v, (list, tuple)) else []


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _mapping(v: Any) -> dict:
    return v if isinstance(v, dict) else {}

