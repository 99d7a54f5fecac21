"""A minimal iptables-save reader for the reachability / firewall-check tests only, standing in
for plantguard.firewall.parsers.iptables until that parser is on the branch (the parser contract:
`parse(path) -> Ruleset`). It reads the filter table: chain policies, -s/-d, -p, --dport/--sport,
-i/-o, --ctstate and -j/-g; anything else in a rule makes the rule Unsupported. `install()` puts
it where load.py looks for the real parser, only when the real one is absent."""
from __future__ import annotations

import importlib.util
import shlex
import sys
import types

from netaddr import IPSet

from plantguard.firewall.model import (
    ANY_PORT,
    Binding,
    Chain,
    Match,
    Origin,
    Rule,
    Ruleset,
    Unsupported,
)

REAL = "plantguard.firewall.parsers.iptables"


def _ports(text: str):
    out = []
    for part in text.split(","):
        lo, sep, hi = part.partition(":")
        out.append((int(lo or 0), int(hi) if hi else (65535 if sep else int(lo))))
    return tuple(out) or ANY_PORT


def _rule(words: list[str], origin: Origin):
    m, action, target, neg, i, comment = {}, None, None, set(), 0, None
    negate_next = False
    while i < len(words):
        w = words[i]
        if w == "!":
            negate_next = True
            i += 1
            continue
        val = words[i + 1] if i + 1 < len(words) else ""
        field = {"-s": "src", "-d": "dst", "-p": "protocols", "--dport": "dport", "--sport": "sport",
                 "-i": "in_iface", "-o": "out_iface", "--ctstate": "states", "--state": "states"}.get(w)
        if field:
            m[field] = (IPSet([val]) if field in ("src", "dst") else
                        frozenset([val.lower()]) if field == "protocols" else
                        _ports(val) if field in ("dport", "sport") else
                        frozenset(val.lower().split(",")) if field == "states" else val)
            if negate_next:
                neg.add(field)
            i += 2
        elif w in ("-m", "--comment"):
            comment = val if w == "--comment" else comment
            i += 2
        elif w in ("-j", "-g"):
            t = val.upper()
            if t in ("ACCEPT", "DROP", "REJECT", "RETURN"):
                action = t.lower()
            elif t in ("LOG",):
                action = "continue"
            else:
                action, target = ("jump" if w == "-j" else "goto"), val
            i += 2
            while i < len(words) and words[i].startswith("--"):   # target options (--log-prefix x)
                i += 2
        else:
            return None
        negate_next = False
    return Rule(Match(negate=frozenset(neg), **m), action or "continue", origin, target, comment)


def parse(path) -> Ruleset:
    from pathlib import Path
    text = Path(path).read_text(encoding="utf-8")
    rs = Ruleset(str(path), "iptables")
    table = None
    for n, line in enumerate(text.splitlines(), 1):
        rs.lines = n
        s = line.strip()
        if not s or s.startswith("#") or s == "COMMIT":
            continue
        if s.startswith("*"):
            table = s[1:]
            continue
        origin = Origin(str(path), n, line)
        if table != "filter":
            rs.unsupported.append(Unsupported(origin, f"table {table} not read by the test parser"))
            continue
        if s.startswith(":"):
            name, policy = s[1:].split()[:2]
            hook = name.lower() if name in ("INPUT", "FORWARD", "OUTPUT") else None
            rs.chains[name] = Chain(name, hook=hook, policy=policy.lower() if policy != "-" else None,
                                    origin=origin)
            continue
        words = shlex.split(s)
        if words[:1] != ["-A"] or len(words) < 2:
            rs.unsupported.append(Unsupported(origin, "not a rule"))
            continue
        rule = _rule(words[2:], origin)
        if rule is None:
            rs.unsupported.append(Unsupported(origin, "option not read by the test parser"))
            continue
        rs.chains.setdefault(words[1], Chain(words[1])).rules.append(rule)
    if "FORWARD" in rs.chains:
        rs.bindings.append(Binding("FORWARD"))
    return rs


def install() -> None:
    """Make load.py find this reader when the real iptables parser is not there."""
    if REAL in sys.modules or importlib.util.find_spec(REAL) is not None:
        return
    mod = types.ModuleType(REAL)
    mod.parse = parse
    sys.modules[REAL] = mod
