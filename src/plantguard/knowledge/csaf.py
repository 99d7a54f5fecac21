"""CSAF 2.0 documents (security advisories and VEX) read into plain records.

Reads the product tree (vendor -> product_name -> product_version / product_version_range
branches, full_product_names, relationships, product identification helpers), every
vulnerability's product status, CVSS scores (vectors checked and scored with the `cvss`
library) and remediations. Anything malformed is skipped, never raised past read_csaf()."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4

from plantguard.knowledge.vendors import vendor_key

MAX_BRANCH_DEPTH = 12
MAX_PRODUCTS = 50_000

AFFECTED_KEYS = ("known_affected", "first_affected", "last_affected")
FIXED_KEYS = ("fixed", "first_fixed")
NOT_AFFECTED_KEYS = ("known_not_affected",)


class CsafError(ValueError):
    pass


@dataclass
class Product:
    product_id: str
    vendor: str | None
    product_name: str          # the product_name branch ("1756-EN2T Series D")
    full_name: str             # the product's own name
    version_text: str | None   # product_version or product_version_range name
    version_kind: str          # "range" | "exact" | "none"
    model_numbers: list[str] = field(default_factory=list)
    cpe: str | None = None
    purl: str | None = None

    @property
    def vendor_key(self) -> str | None:
        return vendor_key(self.vendor)


@dataclass
class Vuln:
    cve: str | None
    title: str | None = None
    cwe: str | None = None
    cvss_version: str | None = None
    cvss_vector: str | None = None
    cvss_score: float | None = None
    severity: str | None = None
    affected: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    not_affected: list[str] = field(default_factory=list)
    remediations: list[dict] = field(default_factory=list)


@dataclass
class CsafDocument:
    id: str
    category: str
    title: str
    publisher: str | None
    published: str | None
    updated: str | None
    url: str | None
    products: list[Product]
    vulns: list[Vuln]


def is_csaf(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("document"), dict) and \
        str(doc["document"].get("csaf_version", "")).startswith("2")


def read_csaf(doc: dict) -> CsafDocument:
    """Parse a loaded CSAF JSON object. Raises CsafError when it is not CSAF 2.x at all."""
    if not is_csaf(doc):
        raise CsafError("not a CSAF 2.x document (no document.csaf_version)")
    meta = doc["document"]
    tracking = meta.get("tracking") if isinstance(meta.get("tracking"), dict) else {}
    adv_id = _text(tracking.get("id")) or _text(meta.get("title")) or "unnamed"
    url = None
    for ref in _list(meta.get("references")):
        if isinstance(ref, dict) and ref.get("category") == "self" and ref.get("url"):
            url = _text(ref["url"])
            break
    products = _products(doc.get("product_tree") if isinstance(doc.get("product_tree"), dict) else {})
    vulns = [_vuln(v) for v in _list(doc.get("vulnerabilities")) if isinstance(v, dict)]
    publisher = meta.get("publisher") if isinstance(meta.get("publisher"), dict) else {}
    return CsafDocument(
        id=adv_id.upper() if adv_id.lower().startswith(("icsa", "icsma")) else adv_id,
        category=_text(meta.get("category")) or "csaf_base",
        title=_text(meta.get("title")) or adv_id,
        publisher=_text(publisher.get("name")),
        published=_text(tracking.get("initial_release_date")),
        updated=_text(tracking.get("current_release_date")),
        url=url, products=products, vulns=vulns)


# ---------------------------------------------------------------- product tree

def _products(tree: dict) -> list[Product]:
    out: list[Product] = []
    _walk(_list(tree.get("branches")), {}, out, 0)
    for fpn in _list(tree.get("full_product_names")):
        if isinstance(fpn, dict) and fpn.get("product_id"):
            out.append(_leaf(fpn, {"product_name": _text(fpn.get("name")) or ""}))
    by_id = {p.product_id: p for p in out}
    for rel in _list(tree.get("relationships")):
        if not isinstance(rel, dict):
            continue
        fpn = rel.get("full_product_name") if isinstance(rel.get("full_product_name"), dict) else {}
        ref = by_id.get(_text(rel.get("product_reference")) or "")
        pid = _text(fpn.get("product_id"))
        if ref and pid:
            # "X installed on Y" is still product X for matching purposes
            out.append(Product(pid, ref.vendor, ref.product_name, _text(fpn.get("name")) or ref.full_name,
                               ref.version_text, ref.version_kind, list(ref.model_numbers), ref.cpe, ref.purl))
    return out[:MAX_PRODUCTS]


def _walk(branches: list, ctx: dict, out: list[Product], depth: int) -> None:
    if depth > MAX_BRANCH_DEPTH:
        return
    for b in branches:
        if not isinstance(b, dict):
            continue
        cat, name = b.get("category"), _text(b.get("name")) or ""
        here = dict(ctx)
        if cat == "vendor":
            here["vendor"] = name
        elif cat == "product_name":
            here["product_name"] = name
        elif cat == "product_family":
            here["family"] = name
        elif cat == "product_version":
            here["version"], here["version_kind"] = name, "exact"
        elif cat == "product_version_range":
            here["version"], here["version_kind"] = name, "range"
        if isinstance(b.get("product"), dict) and b["product"].get("product_id"):
            out.append(_leaf(b["product"], here))
        _walk(_list(b.get("branches")), here, out, depth + 1)


def _leaf(prod: dict, ctx: dict) -> Product:
    helper = prod.get("product_identification_helper")
    helper = helper if isinstance(helper, dict) else {}
    models = [str(m) for m in _list(helper.get("model_numbers")) if m][:50]
    models += [str(s) for s in _list(helper.get("skus")) if s][:50]
    name = _text(prod.get("name")) or ""
    return Product(
        product_id=str(prod["product_id"]),
        vendor=(ctx.get("vendor") or "").strip() or None,
        product_name=(ctx.get("product_name") or ctx.get("family") or name).strip(),
        full_name=name.strip(),
        version_text=ctx.get("version"),
        version_kind=ctx.get("version_kind", "none"),
        model_numbers=models,
        cpe=_text(helper.get("cpe")),
        purl=_text(helper.get("purl")))


# ---------------------------------------------------------------- vulnerabilities

_VEC3 = re.compile(r"CVSS:3\.[01]/[A-Z]{1,3}:[A-Z](?:/[A-Z]{1,3}:[A-Z])+")
_VEC3_BARE = re.compile(r"\(?(AV:[NALP]/AC:[LH]/PR:[NLH]/UI:[NR]/S:[UC]/C:[NLH]/I:[NLH]/A:[NLH])\)?")


def _vuln(v: dict) -> Vuln:
    out = Vuln(cve=_text(v.get("cve")), title=_text(v.get("title")))
    cwe = v.get("cwe")
    if isinstance(cwe, dict):
        out.cwe = " ".join(x for x in (_text(cwe.get("id")), _text(cwe.get("name"))) if x) or None
    status = v.get("product_status") if isinstance(v.get("product_status"), dict) else {}
    out.affected = _ids(status, AFFECTED_KEYS)
    out.fixed = _ids(status, FIXED_KEYS)
    out.not_affected = _ids(status, NOT_AFFECTED_KEYS)
    _scores(v, out)
    for r in _list(v.get("remediations"))[:200]:
        if isinstance(r, dict):
            out.remediations.append({
                "category": _text(r.get("category")) or "mitigation",
                "details": (_text(r.get("details")) or "")[:4000],
                "url": _text(r.get("url")),
                "product_ids": [str(p) for p in _list(r.get("product_ids"))][:5000]})
    return out


def _scores(v: dict, out: Vuln) -> None:
    """Take the highest-version score the document gives, checked with the cvss library."""
    best: tuple | None = None
    for s in _list(v.get("scores")):
        if not isinstance(s, dict):
            continue
        for key, cls, ver in (("cvss_v4", CVSS4, "4.0"), ("cvss_v3", CVSS3, "3"), ("cvss_v2", CVSS2, "2.0")):
            block = s.get(key)
            if isinstance(block, dict) and block.get("vectorString"):
                scored = score_vector(str(block["vectorString"]), cls)
                if scored:
                    rank = {"4.0": 3, "3": 2, "2.0": 1}[ver]
                    if best is None or rank > best[0]:
                        best = (rank,) + scored
    if best is None:
        # older CISA files state the vector only in the prose
        text = " ".join(_text(n.get("text")) or "" for n in _list(v.get("notes")) if isinstance(n, dict))
        m = _VEC3.search(text)
        vec = m.group(0) if m else None
        if not vec:
            m = _VEC3_BARE.search(text)
            vec = f"CVSS:3.0/{m.group(1)}" if m else None
        scored = score_vector(vec, CVSS3) if vec else None
        if scored:
            best = (2,) + scored
    if best:
        _, out.cvss_version, out.cvss_vector, out.cvss_score, out.severity = best


def score_vector(vector: str, cls=None) -> tuple[str, str, float, str] | None:
    """(version, clean vector, base score, severity lower-case) or None for a bad vector."""
    vector = vector.strip()
    if cls is None:
        cls = CVSS4 if vector.startswith("CVSS:4") else CVSS3 if vector.startswith("CVSS:3") else CVSS2
    try:
        c = cls(vector)
        if cls is CVSS4:
            return "4.0", c.clean_vector(), float(c.base_score), str(c.severity).lower()
        if cls is CVSS3:
            return vector.split("/")[0].split(":")[1], c.clean_vector(), float(c.scores()[0]), \
                str(c.severities()[0]).lower()
        score = float(c.scores()[0])
        return "2.0", c.clean_vector(), score, ("high" if score >= 7 else "medium" if score >= 4 else "low")
    except Exception:  # noqa: BLE001 - the library raises many types for a bad vector
        return None


def _ids(status: dict, keys) -> list[str]:
    out: list[str] = []
    for k in keys:
        out += [str(p) for p in _list(status.get(k))][:20_000]
    return out


def _list(x) -> list:
    return x if isinstance(x, list) else []


def _text(x) -> str | None:
    if x is None or isinstance(x, (dict, list)):
        return None
    s = str(x).strip()
    return s or None
