"""NVD CVE JSON 2.0 records: each CVE becomes an advisory whose products come from the CPE
match configurations (vendor, product, version bounds), so one matcher serves CSAF and NVD.

A configuration "firmware X (vulnerable) AND hardware Y (not vulnerable)" — the usual NVD shape
for a PLC — becomes product "Y" with X's version bounds: the device is named by its hardware."""
from __future__ import annotations

import re
from dataclasses import dataclass

from plantguard.knowledge.csaf import CsafDocument, Product, Vuln, score_vector

MAX_MATCHES_PER_CVE = 2000


def is_nvd(doc) -> bool:
    if not isinstance(doc, dict):
        return False
    if doc.get("format") == "NVD_CVE":
        return True
    vulns = doc.get("vulnerabilities")
    return isinstance(vulns, list) and bool(vulns) and isinstance(vulns[0], dict) and \
        isinstance(vulns[0].get("cve"), dict)


@dataclass(frozen=True)
class Cpe:
    part: str
    vendor: str
    product: str
    version: str
    update: str

    @property
    def readable_product(self) -> str:
        return self.product.replace("_", " ").replace("\\", "")


def parse_cpe23(text: str) -> Cpe | None:
    """Split a CPE 2.3 formatted string (backslash escapes honoured)."""
    if not isinstance(text, str) or not text.startswith("cpe:2.3:") or len(text) > 1000:
        return None
    fields, cur, esc = [], [], False
    for ch in text[8:]:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            cur.append(ch)
            esc = True
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    if len(fields) < 5:
        return None
    return Cpe(fields[0], fields[1], fields[2], fields[3], fields[4] if len(fields) > 4 else "*")


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _range_text(m: dict, cpe: Cpe) -> tuple[str, str]:
    parts = []
    for key, op in (("versionStartIncluding", ">="), ("versionStartExcluding", ">"),
                    ("versionEndIncluding", "<="), ("versionEndExcluding", "<")):
        if m.get(key):
            parts.append(f"{op}{m[key]}")
    if parts:
        return "vers:all/" + "|".join(parts), "range"
    if cpe.version not in ("*", "-", ""):
        v = _unescape(cpe.version)
        if cpe.update not in ("*", "-", ""):
            v += " " + _unescape(cpe.update)
        return v, "exact"
    return "vers:all/*", "range"


def read_nvd(doc: dict) -> list[CsafDocument]:
    out = []
    items = doc.get("vulnerabilities")
    for item in items if isinstance(items, list) else []:
        cve = item.get("cve") if isinstance(item, dict) else None
        if isinstance(cve, dict) and isinstance(cve.get("id"), str):
            try:
                out.append(_cve(cve))
            except (AttributeError, TypeError, ValueError, KeyError):
                continue    # one malformed record must not lose the rest of the feed
    return out


def _cve(cve: dict) -> CsafDocument:
    cve_id = str(cve["id"]).upper()
    desc = next((d.get("value") for d in cve.get("descriptions", []) if isinstance(d, dict)
                 and d.get("lang") == "en"), None)
    vuln = Vuln(cve=cve_id, title=(desc or "")[:300] or None)
    _metrics(cve.get("metrics") if isinstance(cve.get("metrics"), dict) else {}, vuln)
    vuln.cwe = _cwes(cve)
    products = _products(cve_id, cve.get("configurations"))
    vuln.affected = [p.product_id for p in products]
    return CsafDocument(id=cve_id, category="nvd_cve", title=f"{cve_id}: {(desc or '')[:120]}",
                        publisher="NVD", published=cve.get("published"), updated=cve.get("lastModified"),
                        url=f"https://nvd.nist.gov/vuln/detail/{cve_id}", products=products, vulns=[vuln])


def _cwes(cve: dict) -> str | None:
    cwes = [d.get("value") for w in cve.get("weaknesses", []) if isinstance(w, dict)
            for d in w.get("description", []) if isinstance(d, dict) and d.get("value")]
    return ", ".join(dict.fromkeys(cwes)) or None


def _products(cve_id: str, configs) -> list[Product]:
    """One product per vulnerable CPE match (per hardware platform when the configuration names
    one), at most MAX_MATCHES_PER_CVE matches."""
    products: list[Product] = []
    for config in configs if isinstance(configs, list) else []:
        if not isinstance(config, dict):
            continue
        vulnerable, hardware = _config_matches(config)
        for m, cpe in vulnerable:
            if len(products) >= MAX_MATCHES_PER_CVE:
                break
            products += _match_products(cve_id, m, cpe, hardware, len(products))
    return products


def _config_matches(config: dict) -> tuple[list[tuple[dict, Cpe]], list[Cpe]]:
    """(the vulnerable CPE matches, the hardware they run on when the configuration is an AND)."""
    nodes = config.get("nodes") if isinstance(config.get("nodes"), list) else []
    vulnerable, platforms = [], []
    for node in nodes:
        for m in (node.get("cpeMatch", []) if isinstance(node, dict) else []):
            cpe = parse_cpe23(m.get("criteria", "")) if isinstance(m, dict) else None
            if cpe is None:
                continue
            (vulnerable if m.get("vulnerable") else platforms).append((m, cpe))
    hardware = [c for _, c in platforms if c.part == "h"] if config.get("operator") == "AND" else []
    return vulnerable, hardware


def _match_products(cve_id: str, m: dict, cpe: Cpe, hardware: list[Cpe], n: int) -> list[Product]:
    """The products of one vulnerable match, numbered from n + 1: each hardware platform, or the
    matched product itself without a trailing "firmware"."""
    version_text, kind = _range_text(m, cpe)
    names = [h.readable_product for h in hardware] or \
        [re.sub(r"\s+firmware$", "", cpe.readable_product)]
    return [Product(product_id=f"{cve_id}-M{i}", vendor=_unescape(cpe.vendor).replace("_", " "),
                    product_name=name, full_name=f"{name} ({m.get('criteria')})",
                    version_text=version_text, version_kind=kind, cpe=m.get("criteria"))
            for i, name in enumerate(names, start=n + 1)]


def _metrics(metrics: dict, vuln: Vuln) -> None:
    for key in ("cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2"):
        entries = metrics.get(key) or []
        entries = sorted((e for e in entries if isinstance(e, dict)),
                         key=lambda e: e.get("type") != "Primary")
        for e in entries:
            vec = (e.get("cvssData") or {}).get("vectorString")
            if key == "cvssMetricV2" and vec and not vec.startswith("AV:"):
                vec = None
            scored = score_vector(vec) if vec else None
            if scored:
                vuln.cvss_version, vuln.cvss_vector, vuln.cvss_score, vuln.severity = scored
                return
