"""Role accuracy and identity coverage of `plantguard inventory` on the shared captures and the demo.

    PLANTGUARD_SHARED_DATA=/work/shared/data .venv/bin/python tools/measure_roles.py [--misses]

Reads tests/data/expected_roles.yaml (the expected role of every asset, from each capture's own
documentation, and what tshark decodes about its identity), runs the inventory on every capture
it names (one capture at a time, without a site file) and prints:
- role accuracy per device class (the expected role): scored assets, correct, accuracy;
- identity coverage: of the assets where tshark sees a vendor / product / firmware (or a server
  string), the share where plantguard has every one of them;
- how many roles were concluded from a User-Agent (must be 0);
- assets the expected file does not list, and listed assets the inventory did not find.
`--format markdown` prints the tables as docs/inventory-accuracy.md shows them; `--json` the raw
numbers (tests/test_inventory_roles_accuracy.py uses `measure()`)."""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

EXPECTED = ROOT / "tests" / "data" / "expected_roles.yaml"
ARTEFACT = "artefact"
CLASS_ORDER = ("plc", "rtu", "ied", "io-device", "hmi", "engineering-workstation", "scada-server", "gateway",
               "sensor", "broker", "switch", "router", "it-host", "printer", "internet-host", "unknown")
IDENTITY_FIELDS = ("vendor", "product", "firmware", "vendor_id", "server", "modules")
# User-Agents the probe always tries besides those seen in the captures (phones say "CPU ... OS")
PROBE_USER_AGENTS = (
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4 Mobile/15E148 Safari/604.1"),
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "SIMATIC HMI Panel (controller gateway) CPU 1516",
    "Modicon M580 PLC updater/1.0",
)
IT_ROLES = ("it-host", "workstation", "internet-host", "unknown")


@dataclass
class Row:
    capture: str
    key: str
    expected: tuple[str, ...]
    got: str
    reasons: list[str]

    @property
    def ok(self) -> bool:
        return self.got in self.expected

    @property
    def cls(self) -> str:
        return self.expected[0]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    unscored: int = 0
    artefacts: int = 0
    unlisted: list[tuple[str, str, str]] = field(default_factory=list)   # capture, key, role
    missing: list[tuple[str, str]] = field(default_factory=list)
    identity: list[tuple[str, str, dict, dict]] = field(default_factory=list)  # cap, key, want, have(bool per field)
    from_user_agent: list[tuple[str, str, str]] = field(default_factory=list)
    captures: int = 0
    user_agents: set = field(default_factory=set)
    ua_probe: list[tuple[str, str]] = field(default_factory=list)   # (user agent, role) of every probe

    def accuracy(self, rows=None) -> float:
        rows = self.rows if rows is None else rows
        return sum(r.ok for r in rows) / len(rows) if rows else 1.0

    def per_class(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in self.rows:
            out[r.cls][0] += 1
            out[r.cls][1] += r.ok
        order = {c: i for i, c in enumerate(CLASS_ORDER)}
        return {c: tuple(v) for c, v in sorted(out.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))}

    def identity_coverage(self) -> float:
        return (sum(all(h.values()) for *_, h in self.identity) / len(self.identity)) if self.identity else 1.0

    def identity_fields(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for *_, have in self.identity:
            for f, ok in have.items():
                out[f][0] += 1
                out[f][1] += ok
        return {f: tuple(out[f]) for f in IDENTITY_FIELDS if f in out}

    def as_dict(self) -> dict:
        return {"captures": self.captures, "scored": len(self.rows), "correct": sum(r.ok for r in self.rows),
                "accuracy": round(self.accuracy(), 4), "unscored": self.unscored, "artefacts": self.artefacts,
                "per_class": {c: {"scored": n, "correct": k} for c, (n, k) in self.per_class().items()},
                "identity_assets": len(self.identity), "identity_coverage": round(self.identity_coverage(), 4),
                "identity_fields": {f: {"seen": n, "have": k} for f, (n, k) in self.identity_fields().items()},
                "roles_from_user_agent": len(self.from_user_agent),
                "user_agent_probe": {"user_agents": len(self.ua_probe),
                                     "non_it_roles": sum(r not in IT_ROLES for _, r in self.ua_probe)},
                "unlisted": len(self.unlisted), "missing": len(self.missing)}


def load_expected(path: Path = EXPECTED) -> dict:
    import yaml
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or doc.get("format") != "plantguard-expected-roles/1":
        raise SystemExit(f"{path}: not a plantguard-expected-roles/1 file")
    return doc["captures"]


def _captures(expected: dict, data: Path) -> list[tuple[str, str, dict, bool]]:
    """(label, capture path or 'demo', entry, from a glob), globs expanded under data/pcaps."""
    out = []
    for rel, entry in expected.items():
        if rel == "demo":
            out.append(("demo", "demo", entry, False))
        elif any(c in rel for c in "*?["):
            base = data / "pcaps"
            for p in sorted(base.glob(rel)):
                out.append((str(p.relative_to(base)), str(p), entry, True))
        else:
            out.append((rel, str(data / "pcaps" / rel), entry, False))
    return out


def _analyze(path: str, cache: Path | None):
    from plantguard.capture.engine import analyze
    if cache is None:
        return analyze([path])
    import hashlib
    import pickle
    st = os.stat(path)
    key = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    f = cache / f"{key}.pkl"
    if f.exists():
        with open(f, "rb") as fh:
            return pickle.load(fh)
    result = analyze([path])
    cache.mkdir(parents=True, exist_ok=True)
    with open(f, "wb") as fh:
        pickle.dump(result, fh)
    return result


def _demo_capture(tmp: Path) -> str:
    from plantguard.demo import build_demo
    pcap, _site = build_demo(tmp)
    return str(pcap)


def _norm(v) -> str:
    return " ".join(str(v).split()).lower()


def _has(asset, fld: str, want) -> bool:
    ident = asset.identity or {}
    if fld == "vendor_id":
        return ident.get("vendor_id") in want
    if fld == "modules":
        mods = " | ".join(_norm(m.get("product", "")) for m in ident.get("modules") or [])
        return all(_norm(w) in mods for w in want)
    if fld == "vendor":
        texts = [ident.get("vendor"), asset.vendor]
    elif fld == "server":
        texts = [ident.get("description"), ident.get("software"), ident.get("product")]
        texts += [s.banner for s in asset.services.values()]
    elif fld == "firmware":
        texts = [ident.get("firmware")]
    else:
        texts = [ident.get(fld)]
    return any(t and re.search(str(want), str(t), re.IGNORECASE) for t in texts)


def _from_user_agent(asset) -> bool:
    """The role rests on text that is the device's User-Agent (a browser fact, not an identity)."""
    ua = str((asset.identity or {}).get("user_agent") or "")
    if not ua or asset.role in ("it-host", "workstation", "unknown", "internet-host"):
        return False
    why = " ".join(asset.role_reasons)
    return ua[:24] in why or "user-agent" in why.lower() or "user_agent" in why


def user_agent_probe(user_agents) -> list[tuple[str, str]]:
    """Each User-Agent alone (an HTTP client that said nothing else) through infer_role: a
    User-Agent is a fact about a browser or a tool, so the role must be an IT one."""
    from collections import Counter

    from plantguard.inventory import build
    from plantguard.inventory.asset import Asset
    out = []
    for ua in sorted(set(user_agents) | set(PROBE_USER_AGENTS)):
        a = Asset(ip="192.0.2.10", mac="02:00:00:00:00:10", ips={"192.0.2.10"}, protocols={"http"})
        a.identity = {"description": ua, "user_agent": ua, "sources": ["http"]}
        a.peers = {"192.0.2.20"}
        role, _why = build.infer_role(a, Counter(), Counter(), {"http"}, set(), [], 0)
        out.append((ua, role))
    return out


def _score_capture(rep: Report, label: str, assets: dict, entry: dict, globbed: bool) -> None:
    roles = entry.get("roles") or {}
    for key, a in assets.items():
        want = roles.get(key, "(unlisted)")
        if want == "(unlisted)":
            rep.unlisted.append((label, key, a.role))
        elif want is None:
            rep.unscored += 1
        elif want == ARTEFACT:
            rep.artefacts += 1
        else:
            want = tuple(want) if isinstance(want, list) else (want,)
            rep.rows.append(Row(label, key, want, a.role, list(a.role_reasons)))
        if _from_user_agent(a):
            rep.from_user_agent.append((label, key, a.role))
    rep.user_agents |= {str(a.identity["user_agent"]) for a in assets.values() if a.identity.get("user_agent")}
    if not globbed:   # a glob's captures need not all hold every key (some dumps are empty)
        rep.missing.extend((label, k) for k in roles if k not in assets)
    for key, want in (entry.get("identity") or {}).items():
        a = assets.get(key)
        rep.identity.append((label, key, want, {f: (a is not None and _has(a, f, v)) for f, v in want.items()}))


def measure(data: Path, expected_path: Path = EXPECTED, cache: Path | None = None,
            only: str | None = None) -> Report:

    from plantguard.inventory.build import build_assets
    rep = Report()
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, entry, globbed in _captures(load_expected(expected_path), data):
            if only and not fnmatch.fnmatch(label, only) and only not in label:
                continue
            if path == "demo":
                path = _demo_capture(Path(tmp))
            elif not os.path.exists(path):
                rep.missing.append((label, "(capture not found)"))
                continue
            rep.captures += 1
            result = _analyze(path, cache)
            assets = {a.key: a for a in build_assets(result)}
            _score_capture(rep, label, assets, entry, globbed)
    rep.ua_probe = user_agent_probe(rep.user_agents)
    return rep


def _pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.1f} %" if n else "-"


def _row(md: bool, label: str, n: int, k: int, bold: bool = False) -> str:
    if md:
        b = "**" if bold else ""
        return f"| {b}{label}{b} | {b}{n}{b} | {b}{k}{b} | {b}{_pct(k, n)}{b} |"
    return f"{label:<26}{n:>8}{k:>9}{_pct(k, n):>10}"


def _role_lines(rep: Report, md: bool) -> list[str]:
    lines = (["| device class (expected) | scored | correct | accuracy |", "|---|---:|---:|---:|"] if md
             else [f"{'device class (expected)':<26}{'scored':>8}{'correct':>9}{'accuracy':>10}"])
    lines += [_row(md, cls, n, k) for cls, (n, k) in rep.per_class().items()]
    lines.append(_row(md, "all", len(rep.rows), sum(r.ok for r in rep.rows), bold=True))
    rest = [r for r in rep.rows if "conformance/" not in r.capture]
    if len(rest) != len(rep.rows):
        lines.append(_row(md, "all but the opendnp3 conformance dumps", len(rest), sum(r.ok for r in rest)))
    return lines


def _summary_lines(rep: Report) -> list[str]:
    bad = [(ua, r) for ua, r in rep.ua_probe if r not in IT_ROLES]
    shown = f" ({'; '.join(f'{r} from {ua[:40]!r}' for ua, r in bad[:4])})" if bad else ""
    counts = (f"captures: {rep.captures}; not scored (undocumented role): {rep.unscored}; "
              f"duplicates made by the address binder (not scored): {rep.artefacts}; "
              f"unlisted assets: {len(rep.unlisted)}; expected but not found: {len(rep.missing)}")
    ua = (f"roles concluded from a User-Agent: {len(rep.from_user_agent)} in the captures; probe: "
          f"{len(rep.ua_probe)} User-Agents alone ({len(rep.user_agents)} seen in the captures), "
          f"{len(bad)} gave a non-IT role{shown}")
    return ["", counts, ua, ""]


def _identity_lines(rep: Report, md: bool) -> list[str]:
    ni, ki = len(rep.identity), sum(all(h.values()) for *_, h in rep.identity)
    fields = rep.identity_fields()
    if not md:
        return [f"identity coverage: {ki}/{ni} assets = {_pct(ki, ni)}  ("
                + ", ".join(f"{f} {k}/{n}" for f, (n, k) in fields.items()) + ")"]
    return (["| identity (tshark sees it) | assets / values | plantguard has it | coverage |", "|---|---:|---:|---:|",
             f"| **assets with every value** | **{ni}** | **{ki}** | **{_pct(ki, ni)}** |"]
            + [f"| {f} | {n} | {k} | {_pct(k, n)} |" for f, (n, k) in fields.items()])


def _miss_lines(rep: Report) -> list[str]:
    lines = ["", "wrong roles:"]
    lines += [f"  {r.capture} {r.key}: expected {'/'.join(r.expected)}, got {r.got} ({'; '.join(r.reasons)[:160]})"
              for r in rep.rows if not r.ok]
    lines += ["", "identity gaps:"]
    lines += [f"  {cap} {key}: missing {[f for f, ok in have.items() if not ok]} of {want}"
              for cap, key, want, have in rep.identity if not all(have.values())]
    lines += [f"  role from a User-Agent: {cap} {key} -> {role}" for cap, key, role in rep.from_user_agent]
    lines += [f"  unlisted: {cap} {key} ({role})" for cap, key, role in rep.unlisted]
    lines += [f"  not found: {cap} {key}" for cap, key in rep.missing]
    return lines


def render(rep: Report, fmt: str = "text", misses: bool = False) -> str:
    md = fmt == "markdown"
    lines = _role_lines(rep, md) + _summary_lines(rep) + _identity_lines(rep, md)
    if misses:
        lines += _miss_lines(rep)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("PLANTGUARD_SHARED_DATA", str(ROOT.parent / "shared" / "data")),
                    help="the shared data folder (default: $PLANTGUARD_SHARED_DATA)")
    ap.add_argument("--expected", default=str(EXPECTED))
    ap.add_argument("--format", choices=("text", "markdown"), default="text")
    ap.add_argument("--json", action="store_true", help="the numbers as JSON")
    ap.add_argument("--misses", action="store_true", help="list every wrong role and identity gap")
    ap.add_argument("--only", help="only captures whose path contains this (or matches this glob)")
    ap.add_argument("--cache", help="keep each capture's analysis here (pickles) to re-measure quickly")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"shared data not found at {data} (set PLANTGUARD_SHARED_DATA)", file=sys.stderr)
        return 2
    rep = measure(data, Path(args.expected), Path(args.cache) if args.cache else None, args.only)
    print(json.dumps(rep.as_dict(), indent=2) if args.json else render(rep, args.format, args.misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
