"""Builds src/plantguard/data/default_credentials.csv from the third-party default-credential
lists in the shared data set (creds/), normalised to one row per vendor/product/user/password.

    python tools/build_data/default_credentials.py [SHARED_DATA_DIR] [OUT_CSV]

Inputs and their licences (recorded in the output header and in default_credentials.NOTICE.md):
  creds/DefaultCreds-Cheat-Sheet.csv  ihebski/DefaultCreds-cheat-sheet, MIT
  creds/scadapass.csv                 ITI/ICS-Security-Tools (SCADA StrangeLove list), CC BY 4.0
  creds/ics-default-passwords.csv     ITI/ICS-Security-Tools, CC BY 4.0
plus the two SNMP communities every agent ships with (public, private).

Output columns: vendor, product, user, password, protocols (space-separated, empty = any), source.
An empty user means the device asks for a password only (or, for SNMP, a community string).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "src" / "plantguard" / "data" / "default_credentials.csv"

SOURCES = {
    "defaultcreds": ("creds/DefaultCreds-Cheat-Sheet.csv",
                     "ihebski/DefaultCreds-cheat-sheet @ 2e48382ff862dbd0f58d5c8276876af1396959bd",
                     "MIT (Copyright (c) 2022 Ihebski)"),
    "scadapass": ("creds/scadapass.csv",
                  "ITI/ICS-Security-Tools @ 9b826091e7ba3fbdd5997d31e116f29e09cbbb48, "
                  "configurations/passwords/scadapass.csv (SCADA StrangeLove list, release 1.1)",
                  "CC BY 4.0"),
    "iti-ics": ("creds/ics-default-passwords.csv",
                "ITI/ICS-Security-Tools @ 9b826091e7ba3fbdd5997d31e116f29e09cbbb48, "
                "configurations/passwords/ics-default-passwords.csv",
                "CC BY 4.0"),
}

# Words that name a protocol, as they appear in the lists, -> our protocol names.
PROTOCOL_WORDS = {
    "web": "http", "http": "http", "www": "http", "https": "https", "ssh": "ssh",
    "telnet": "telnet", "ftp": "ftp", "tftp": "tftp", "snmp": "snmp", "vnc": "vnc",
    "rdp": "rdp", "mssql": "mssql", "mysql": "mysql", "postgres": "postgres", "db2": "db2",
    "mongodb": "mongodb", "redis": "redis", "ipmi": "ipmi", "mqtt": "mqtt", "smb": "smb",
}
BLANKS = {"<blank>", "blank", "<none>", "none", "<empty>", "(none)", "n/a"}


def _blank(v: str) -> str:
    v = v.strip()
    return "" if v.lower() in BLANKS else v


def _protocols_from_text(text: str) -> set[str]:
    found = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in PROTOCOL_WORDS:
            found.add(PROTOCOL_WORDS[word])
    return found


def read_defaultcreds(path: Path):
    rows = csv.reader(io.StringIO(path.read_text(encoding="utf-8", errors="replace")))
    next(rows, None)  # header: productvendor,username,password
    for r in rows:
        if len(r) != 3:
            continue
        name, user, password = r
        protocols = set()
        # trailing "(ssh)", "(web)" ... name a protocol; other parentheticals stay in the name
        for inner in re.findall(r"\(([^)]*)\)", name):
            p = PROTOCOL_WORDS.get(inner.strip().lower())
            if p:
                protocols.add(p)
                name = name.replace(f"({inner})", "")
        name = re.sub(r"\s+", " ", name).strip(" -")
        vendor, _, product = name.partition(" - ")
        yield vendor.strip(), product.strip(), _blank(user), _blank(password), protocols, "defaultcreds"


_PAIR = re.compile(r"^(?:(?P<proto>[A-Za-z]+)\s*:\s*)?(?P<user>[^\s:]*):(?P<pw>[^\s:]*)$")


def _scadapass_pairs(text: str):
    """(user, password, protocol-or-None) pairs from the free-text 'Default password' cell.
    Items that are not a plain 'user:password' (optionally 'PROTO: user:password') are left out."""
    for item in text.split(","):
        item = re.sub(r"\([^)]*\)", "", item).strip()   # drop "(administrator)" style notes
        m = _PAIR.match(item)
        if not m:
            continue
        proto = PROTOCOL_WORDS.get((m.group("proto") or "").lower())
        if m.group("proto") and not proto:
            continue      # "Physical: 0", "Web Module:..." — not a network login we can match
        if not m.group("pw"):
            continue      # "PPPSERVER:", "suggested:" — a label, not a pair ("blank" marks empty)
        user, pw = _blank(m.group("user")), _blank(m.group("pw"))
        if user.startswith("#") or ")" in user or not (user or pw):
            continue
        yield user, pw, proto


def read_scadapass(path: Path):
    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
             if ln.strip(", ") and not ln.startswith("#")]
    rows = csv.reader(io.StringIO("\n".join(lines)))
    next(rows, None)  # Vendor,Device,Default password,Port,Device type,Protocol,Source
    for r in rows:
        if len(r) < 6:
            continue
        vendor, device, cell, _port, _type, proto_text = (c.strip() for c in r[:6])
        row_protocols = _protocols_from_text(proto_text)
        if "snmp community" in cell.lower():
            community = cell.split(":", 1)[-1].strip()
            if community:
                yield vendor, device, "", community, {"snmp"}, "scadapass"
            continue
        for user, pw, proto in _scadapass_pairs(cell):
            yield vendor, device, user, pw, ({proto} if proto else row_protocols), "scadapass"


def read_iti(path: Path):
    rows = csv.reader(io.StringIO(path.read_text(encoding="utf-8", errors="replace")))
    next(rows, None)  # Manufacturer,Model,Interface,Login, Password,Source,Comments
    for r in rows:
        if len(r) < 5:
            continue
        vendor, model, iface, user, pw = (c.strip() for c in r[:5])
        yield vendor, model, _blank(user), _blank(pw), _protocols_from_text(iface), "iti-ics"


WELL_KNOWN = [
    ("(any SNMP agent)", "", "", "public", {"snmp"}, "well-known"),
    ("(any SNMP agent)", "", "", "private", {"snmp"}, "well-known"),
]


def build(shared: Path) -> tuple[list[list[str]], dict[str, int]]:
    readers = {"defaultcreds": read_defaultcreds, "scadapass": read_scadapass, "iti-ics": read_iti}
    merged: dict[tuple, list] = {}
    counts: dict[str, int] = {}
    streams = [(k, readers[k](shared / SOURCES[k][0])) for k in readers] + [("well-known", iter(WELL_KNOWN))]
    for key, stream in streams:
        n = 0
        for vendor, product, user, pw, protocols, source in stream:
            if not vendor or (not user and not pw):
                continue
            dkey = (vendor.lower(), product.lower(), user, pw)
            row = merged.get(dkey)
            if row is None:
                merged[dkey] = [vendor, product, user, pw, set(protocols), {source}]
            else:
                row[4] |= protocols
                row[5].add(source)
            n += 1
        counts[key] = n
    out = [[v, p, u, pw, " ".join(sorted(protos)), " ".join(sorted(srcs))]
           for v, p, u, pw, protos, srcs in merged.values()]
    out.sort(key=lambda r: (r[0].lower(), r[1].lower(), r[2], r[3]))
    return out, counts


def header(shared: Path, counts: dict[str, int], total: int) -> str:
    lines = ["plantguard default-credential list (generated by tools/build_data/default_credentials.py;"
             " do not edit by hand)",
             "Columns: vendor,product,user,password,protocols (space-separated; empty = any),source",
             "An empty user means a password-only login or an SNMP community string.",
             f"Rows: {total}. Values normalised (blank markers -> empty, protocol hints moved to"
             " 'protocols'); duplicates merged. Licence notices: default_credentials.NOTICE.md", "Sources:"]
    for key, (rel, origin, licence) in SOURCES.items():
        digest = hashlib.sha256((shared / rel).read_bytes()).hexdigest()
        lines.append(f"  {key}: {origin}; licence {licence}; sha256 {digest}; {counts.get(key, 0)} rows read")
    lines.append("  well-known: SNMP communities 'public' and 'private' (factory defaults of most agents)")
    return "".join(f"# {ln}\n" for ln in lines)


def main(argv: list[str]) -> int:
    shared = Path(argv[1]) if len(argv) > 1 else DEFAULT_SHARED
    out_path = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUT
    rows, counts = build(shared)
    buf = io.StringIO()
    buf.write(header(shared, counts, len(rows)))
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["vendor", "product", "user", "password", "protocols", "source"])
    w.writerows(rows)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {out_path} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
