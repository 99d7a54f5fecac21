"""Device identity -> the advisories that affect it, each with why and how sure.

The loaded products are indexed once (by vendor, catalogue/order tokens, family), so matching
thousands of assets is a few dictionary look-ups each. A match has a basis — order number,
catalogue number, product name, or product family only — and a version verdict — the firmware
is inside the affected range, the range covers all versions, or the firmware is unknown.
Together they give the confidence:

  exact   order number equal, firmware inside the range (or all versions affected)
  high    catalogue number / product name equal and firmware inside the range;
          or order number equal with the firmware unknown
  medium  catalogue number / product name equal, firmware unknown;
          or product family only, firmware inside the range
  low     product family only, firmware unknown

A firmware outside the range (already fixed) is no match; nor is a different vendor, a
different Series letter, or a different order number when both sides state one.
"""
from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from plantguard.knowledge.families import (FAMILY_TEXT, asset_families, families_in_text,
                                           normalise_order_number)
from plantguard.knowledge.vendors import display_name, vendor_from_identity, vendor_key
from plantguard.knowledge.versions import VersionRange, parse_range, resolve_wildcards
from plantguard.store.intel_tables import (Advisory, AdvisoryProduct, AdvisoryVuln, EpssScore,
                                           KevEntry)

CONFIDENCE_ORDER = ("low", "medium", "high", "exact")
_BASIS_RANK = {"order-number": 3, "catalogue-number": 2, "product-name": 2, "family": 1}

_SIEMENS_ORDER = re.compile(r"\b6[a-z]{2}\d\s?\d{3}-\s?\d[a-z]{2}\d{2}-\s?\d[a-z]{2}\d\b", re.I)
_SERIES = re.compile(r"\bser(?:ies)?\.?\s+([a-z])\b", re.I)
_WORD = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)*")


def _norm(text: str | None) -> str:
    s = str(text or "").lower().replace("\u00a0", " ").replace("–", "-").replace("_", " ")
    return re.sub(r"\s+", " ", s).strip()


def _tokens(text: str) -> set[str]:
    """Tokens with a digit in them, and their part before a "/" ("1756-enbt/a" -> also "1756-enbt")."""
    out = set()
    for w in _WORD.findall(_norm(text)):
        if len(w) >= 3 and any(c.isdigit() for c in w):
            out.add(w)
            if "/" in w:
                out.add(w.split("/")[0])
    return out


def _is_catalogue(tok: str) -> bool:
    """A catalogue or order code: digits and letters joined by a hyphen ("1756-enbt")."""
    return len(tok) >= 6 and "-" in tok and any(c.isalpha() for c in tok) and any(c.isdigit() for c in tok)


def _phrase_in(phrase: str, text: str) -> bool:
    if not phrase or not text:
        return False
    return re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])", text) is not None


# ---------------------------------------------------------------- the index

@dataclass
class IndexedProduct:
    advisory_id: str
    product_id: str
    vendor_key: str | None
    vendor: str | None
    name: str                   # product_name branch (display)
    text: str                   # normalised product_name + full name
    range: VersionRange
    models: tuple[str, ...]     # normalised order numbers / model numbers
    tokens: frozenset[str]
    families: frozenset[str]    # set only for family-level entries
    series: str | None
    cpe_key: str | None = None  # "vendor:product" of a CPE-named product (NVD)

    def __post_init__(self):
        self.model_set = frozenset(self.models)
        self.wild = any(_is_wild(m) for m in self.models)


@dataclass
class VulnInfo:
    cve: str | None
    title: str | None
    cvss_score: float | None
    cvss_vector: str | None
    severity: str | None
    cwe: str | None
    affected: frozenset[str]
    fixed: frozenset[str]
    not_affected: frozenset[str]
    remediations: list[dict]


@dataclass
class ProductMatch:
    product: IndexedProduct
    basis: str                   # order-number | catalogue-number | product-name | family
    version_verdict: str         # in-range | all-versions | unknown
    confidence: str
    reasons: list[str]
    firmware: str | None = None

    @property
    def rank(self) -> tuple:
        return (CONFIDENCE_ORDER.index(self.confidence), _BASIS_RANK[self.basis],
                self.version_verdict != "unknown")


@dataclass
class CveHit:
    cve: str | None
    title: str | None
    cvss_score: float | None
    cvss_vector: str | None
    severity: str | None
    cwe: str | None
    kev: dict | None             # the KEV row when known exploited
    epss: float | None
    epss_percentile: float | None

    def as_dict(self) -> dict:
        return {"cve": self.cve, "title": self.title, "cvss": self.cvss_score, "vector": self.cvss_vector,
                "severity": self.severity, "cwe": self.cwe, "kev": bool(self.kev),
                "kev_date_added": (self.kev or {}).get("date_added"),
                "kev_ransomware": (self.kev or {}).get("ransomware"),
                "epss": self.epss, "epss_percentile": self.epss_percentile}


@dataclass
class AdvisoryMatch:
    advisory_id: str
    title: str
    url: str | None
    published: str | None
    source: str
    match: ProductMatch          # the best-matching product of this advisory
    cves: list[CveHit]
    remediations: list[dict]     # those that apply to the matched product
    fixed_in: str | None

    @property
    def confidence(self) -> str:
        return self.match.confidence

    @property
    def known_exploited(self) -> list[CveHit]:
        return [c for c in self.cves if c.kev]

    @property
    def max_cvss(self) -> float | None:
        scores = [c.cvss_score for c in self.cves if c.cvss_score is not None]
        return max(scores) if scores else None

    @property
    def severity(self) -> str:
        s = self.max_cvss
        if s is None:
            return "medium"
        return "critical" if s >= 9 else "high" if s >= 7 else "medium" if s >= 4 else "low" if s > 0 else "info"

    def as_dict(self) -> dict:
        p = self.match.product
        return {"advisory": self.advisory_id, "title": self.title, "url": self.url,
                "published": self.published, "source": self.source,
                "product": p.name, "product_id": p.product_id, "affected_versions": p.range.describe(),
                "fixed_in": self.fixed_in, "basis": self.match.basis,
                "version_verdict": self.match.version_verdict, "confidence": self.confidence,
                "reasons": list(self.match.reasons), "max_cvss": self.max_cvss, "severity": self.severity,
                "cves": [c.as_dict() for c in self.cves],
                "known_exploited": [c.cve for c in self.known_exploited],
                "remediations": self.remediations}


@dataclass
class DeviceIdentity:
    """What matching reads from an asset (or a declared asset, or an SBOM's product)."""
    vendor_key: str | None
    vendor_text: str | None
    texts: list[str]             # product, model, order number, ... as reported
    order_numbers: list[str]
    firmware: str | None
    series: str | None
    families: set[str] = field(default_factory=set)
    cpe_keys: set[str] = field(default_factory=set)     # "vendor:product" from a CPE the device states

    # computed once per device, read for every candidate product
    @cached_property
    def norm_orders(self) -> list[str]:
        return [normalise_order_number(o) for o in self.order_numbers]

    @cached_property
    def tokens(self) -> set[str]:
        out: set[str] = set()
        for t in self.texts + self.order_numbers:
            out |= _tokens(t)
        return out

    @cached_property
    def phrases(self) -> list[str]:
        return [p for p in (_norm(t) for t in self.texts) if _phrase_ok(p)]

    @classmethod
    def from_identity(cls, identity: dict, fallback_vendor: str | None = None) -> "DeviceIdentity":
        ident = identity or {}
        vk = vendor_from_identity(ident) or vendor_key(fallback_vendor)
        texts = [str(ident[k]) for k in ("product", "model", "module", "description", "hardware")
                 if ident.get(k) and isinstance(ident.get(k), (str, int))]
        orders = []
        for k in ("order_number", "model", "product", "product_code_text"):
            v = ident.get(k)
            if isinstance(v, str):
                orders += [m.group(0) for m in _SIEMENS_ORDER.finditer(v)]
        if isinstance(ident.get("order_number"), str) and ident["order_number"].strip():
            orders.insert(0, ident["order_number"].strip())
        orders = list(dict.fromkeys(orders))
        series = None
        for t in texts:
            m = re.search(r"\b\d{4}-[a-z0-9]+/([a-z])\b", t, re.I) or _SERIES.search(t)
            if m:
                series = m.group(1).upper()
                break
        fw = ident.get("firmware") or ident.get("version") or ident.get("revision")
        fw = str(fw).strip() if fw not in (None, "") else None
        fams = asset_families(orders + [t for t in texts if re.match(r"^\d{4}-", t.strip())], texts)
        return cls(vk, ident.get("vendor") or fallback_vendor, texts, orders, fw, series, fams)


class IntelIndex:
    """The loaded intelligence, indexed for matching. Build once per assessment."""

    def __init__(self):
        self.products: list[IndexedProduct] = []
        self.by_token: dict[str, list[IndexedProduct]] = defaultdict(list)
        self.by_model: dict[str, list[IndexedProduct]] = defaultdict(list)
        self.by_family: dict[str, list[IndexedProduct]] = defaultdict(list)
        self.by_vendor: dict[str | None, list[IndexedProduct]] = defaultdict(list)
        self.by_cpe: dict[str, list[IndexedProduct]] = defaultdict(list)
        self.wild_models: list[tuple[str, IndexedProduct]] = []
        self.advisories: dict[str, dict] = {}
        self.vulns: dict[str, list[VulnInfo]] = defaultdict(list)
        self.kev: dict[str, dict] = {}
        self.epss: dict[str, tuple[float, float | None]] = {}
        self.vex_by_cve: dict[str, list[IndexedProduct]] = defaultdict(list)   # CSAF VEX: not affected / fixed

    # -- building
    @classmethod
    def load(cls, engine: Engine) -> "IntelIndex":
        idx = cls()
        with engine.connect() as conn:
            for a in conn.execute(select(Advisory.id, Advisory.title, Advisory.url, Advisory.published,
                                         Advisory.source, Advisory.category)).all():
                idx.advisories[a.id] = {"title": a.title, "url": a.url, "published": a.published,
                                        "source": a.source, "category": a.category}
            vex_products: dict[tuple[str, str], IndexedProduct] = {}
            for p in conn.execute(select(AdvisoryProduct.__table__)).all():
                is_vex = idx.advisories.get(p.advisory_id, {}).get("category") == "csaf_vex"
                ip = idx.add_product(p.advisory_id, p.product_id, p.vendor, p.product_name, p.full_name,
                                     p.version_text, p.version_kind, p.model_numbers or [], p.cpe,
                                     register=not is_vex)
                if is_vex:       # a VEX document answers for products; it never makes a match itself
                    vex_products[(p.advisory_id, p.product_id)] = ip
            for v in conn.execute(select(AdvisoryVuln.__table__)).all():
                idx.vulns[v.advisory_id].append(VulnInfo(
                    v.cve, v.title, v.cvss_score, v.cvss_vector, v.severity, v.cwe,
                    frozenset(v.affected or ()), frozenset(v.fixed or ()), frozenset(v.not_affected or ()),
                    list(v.remediations or [])))
            for aid, vulns in idx.vulns.items():
                for v in vulns:
                    for pid in v.not_affected | v.fixed:
                        vp = vex_products.get((aid, pid))
                        if vp is not None and v.cve:
                            idx.vex_by_cve[v.cve.upper()].append(vp)
            for k in conn.execute(select(KevEntry.__table__)).all():
                idx.kev[k.cve] = {"cve": k.cve, "vendor": k.vendor, "product": k.product, "name": k.name,
                                  "date_added": k.date_added, "due_date": k.due_date,
                                  "ransomware": k.ransomware, "required_action": k.required_action}
            for e in conn.execute(select(EpssScore.cve, EpssScore.epss, EpssScore.percentile)).all():
                idx.epss[e.cve] = (e.epss, e.percentile)
        return idx

    def add_product(self, advisory_id, product_id, vendor, product_name, full_name, version_text,
                    version_kind, model_numbers, cpe: str | None = None, register: bool = True) -> IndexedProduct:
        name = product_name or full_name or ""
        text = _norm(f"{product_name} {full_name}")
        rng = parse_range(version_text, exact=(version_kind == "exact")) if version_text else \
            VersionRange("", "unknown")
        models = tuple(normalise_order_number(m) for m in model_numbers if m)
        models += tuple(normalise_order_number(m.group(0)) for m in _SIEMENS_ORDER.finditer(text)
                        if normalise_order_number(m.group(0)) not in models)
        toks = _tokens(text)
        fams = families_in_text(text)
        family_level = bool(fams) and ("family" in text or " series" in text and not _SERIES.search(text)
                                       or not self._specific(toks, fams, models))
        ser = _SERIES.search(text)
        p = IndexedProduct(advisory_id, product_id, vendor_key(vendor), vendor, name, text, rng, models,
                           frozenset(toks), frozenset(fams) if family_level else frozenset(),
                           ser.group(1).upper() if ser else None, cpe_key(cpe))
        if not register:
            return p
        self.products.append(p)
        if p.cpe_key:
            self.by_cpe[p.cpe_key].append(p)
        for t in toks:
            self.by_token[t].append(p)
        for m in models:
            if _is_wild(m):
                self.wild_models.append((m, p))
            else:
                self.by_model[m].append(p)
        for f in p.families:
            self.by_family[f].append(p)
        self.by_vendor[p.vendor_key].append(p)
        return p

    @staticmethod
    def _specific(toks: set[str], fams: set[str], models: tuple) -> bool:
        """Does the entry name a model beyond its family (a CPU number, a catalogue code)?"""
        if models:
            return True
        fam_text = " ".join(FAMILY_TEXT[f].pattern for f in fams)
        rest = [t for t in toks if not any(part in fam_text for part in re.split(r"[-/.]", t) if len(part) >= 3)]
        return bool(rest)

    # -- matching
    def candidates(self, dev: DeviceIdentity) -> Iterable[IndexedProduct]:
        seen: set[int] = set()
        for k in dev.cpe_keys:
            for p in self.by_cpe.get(k, ()):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p
        for o in dev.norm_orders:
            for p in self.by_model.get(o, ()):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p
            for pat, p in self.wild_models:
                if id(p) not in seen and _wild_match(o, pat):
                    seen.add(id(p))
                    yield p
        toks = dev.tokens
        vk = dev.vendor_key
        orders = set(dev.norm_orders)

        def other_variant(p) -> bool:   # both state order numbers and none is shared
            return bool(orders) and bool(p.model_set) and not p.wild and not (orders & p.model_set)
        for t in toks:
            for p in self.by_token.get(t, ()):
                if id(p) not in seen and (vk is None or p.vendor_key is None or p.vendor_key == vk) \
                        and not other_variant(p):
                    seen.add(id(p))
                    yield p
        for f in dev.families:
            for p in self.by_family.get(f, ()):
                if id(p) not in seen and not other_variant(p):
                    seen.add(id(p))
                    yield p
        # products whose names carry no digit can only be found by the vendor's name list
        if dev.vendor_key and not toks:
            for p in self.by_vendor.get(dev.vendor_key, ()):
                if id(p) not in seen and not p.tokens:
                    seen.add(id(p))
                    yield p

    def match_product(self, dev: DeviceIdentity, p: IndexedProduct) -> ProductMatch | None:
        reasons: list[str] = []
        if dev.vendor_key and p.vendor_key and dev.vendor_key != p.vendor_key:
            return None
        if dev.vendor_key and p.vendor_key:
            reasons.append(f"vendor '{dev.vendor_text}' is {display_name(p.vendor_key)}")
        orders = dev.norm_orders
        basis = None
        if orders and p.models:
            exact = next((o for o in orders if o in p.model_set), None)
            hit = (exact, exact) if exact else (None if not p.wild else
                                                next(((o, m) for o in orders for m in p.models
                                                      if _is_wild(m) and _wild_match(o, m)), None))
            if hit:
                basis = "order-number"
                reasons.append(f"order number {dev.order_numbers[orders.index(hit[0])]} equals the "
                               f"advisory's {hit[1].upper()}")
            else:
                return None   # both state an order number and they differ: another variant
        if basis is None and p.cpe_key and p.cpe_key in dev.cpe_keys:
            basis = "catalogue-number"
            reasons.append(f"CPE vendor:product {p.cpe_key} equals the advisory's")
        if basis is None:
            cat = sorted(t for t in dev.tokens & p.tokens if _is_catalogue(t))
            if cat:
                basis = "catalogue-number"
                reasons.append(f"catalogue number {cat[0].upper()} appears in '{p.name}'")
            else:
                phrase = next((t for t in dev.phrases if _phrase_in(t, p.text)), None)
                if phrase:
                    basis = "product-name"
                    reasons.append(f"product '{phrase}' appears in '{p.name}'")
        if basis is None and p.families and dev.families & p.families:
            fam = sorted(dev.families & p.families)[0]
            basis = "family"
            reasons.append(f"product family {fam} only ('{p.name}'); the exact model is not listed")
        if basis is None:
            return None
        if p.series and dev.series and p.series != dev.series and basis != "order-number":
            return None
        if p.series and dev.series == p.series:
            reasons.append(f"Series {p.series}")
        # version
        if p.range.kind == "all":
            verdict = "all-versions"
            reasons.append("all versions are affected" + (f" (firmware {dev.firmware})" if dev.firmware else ""))
        else:
            inside = p.range.contains(dev.firmware) if dev.firmware else None
            if inside is False:
                return None
            if inside:
                verdict = "in-range"
                reasons.append(f"firmware {dev.firmware} is in the affected range {p.range.describe()}")
            else:
                verdict = "unknown"
                reasons.append(f"firmware {'not seen' if not dev.firmware else repr(dev.firmware) + ' not comparable'}"
                               f"; affected: {p.range.describe()}")
        verified = verdict != "unknown"
        if basis == "order-number":
            conf = "exact" if verified else "high"
        elif basis in ("catalogue-number", "product-name"):
            conf = "high" if verified else "medium"
        else:
            conf = "medium" if verified else "low"
        return ProductMatch(p, basis, verdict, conf, reasons, dev.firmware)

    def match(self, dev: DeviceIdentity, min_confidence: str = "low") -> list[AdvisoryMatch]:
        """Advisories affecting the device, best match per advisory, strongest first."""
        floor = CONFIDENCE_ORDER.index(min_confidence)
        best: dict[str, ProductMatch] = {}
        for p in self.candidates(dev):
            m = self.match_product(dev, p)
            if m is None or CONFIDENCE_ORDER.index(m.confidence) < floor:
                continue
            cur = best.get(p.advisory_id)
            if cur is None or m.rank > cur.rank:
                best[p.advisory_id] = m
        out = [am for am in (self._advisory_match(aid, m, dev) for aid, m in best.items()) if am]
        # an NVD record for a CVE that a matched vendor advisory already covers adds nothing
        covered = {c.cve for am in out if am.source != "nvd" for c in am.cves}
        out = [am for am in out if am.source != "nvd" or not {c.cve for c in am.cves} <= covered]
        out.sort(key=lambda am: (-len(am.known_exploited), -CONFIDENCE_ORDER.index(am.confidence),
                                 -(am.max_cvss or 0), am.advisory_id))
        return out

    def _vex_says_unaffected(self, dev: DeviceIdentity | None, cve: str | None) -> IndexedProduct | None:
        if dev is None or not cve:
            return None
        for vp in self.vex_by_cve.get(cve.upper(), ()):
            if self.match_product(dev, vp) is not None:
                return vp
        return None

    def _advisory_match(self, advisory_id: str, m: ProductMatch, dev: DeviceIdentity | None = None
                        ) -> AdvisoryMatch | None:
        pid = m.product.product_id
        meta = self.advisories.get(advisory_id, {})
        hits, rems, seen_rem = [], [], set()
        for v in self.vulns.get(advisory_id, []):
            if pid in v.not_affected or pid in v.fixed:
                continue
            if pid not in v.affected:
                continue
            vex = self._vex_says_unaffected(dev, v.cve)
            if vex is not None:
                m.reasons.append(f"{v.cve}: not affected per VEX {vex.advisory_id}")
                continue
            e = self.epss.get(v.cve or "")
            hits.append(CveHit(v.cve, v.title, v.cvss_score, v.cvss_vector, v.severity, v.cwe,
                               self.kev.get(v.cve or ""), e[0] if e else None, e[1] if e else None))
            for r in v.remediations:
                if pid in r.get("product_ids", []) or not r.get("product_ids"):
                    key = (r.get("category"), r.get("details"), r.get("url"))
                    if key not in seen_rem:
                        seen_rem.add(key)
                        rems.append({k: r.get(k) for k in ("category", "details", "url")})
        if not hits:
            return None      # the advisory names the product, but no vulnerability affects it
        fixed_in = resolve_wildcards(m.product.range.fixed_in, m.firmware) or _fix_from_remediations(rems)
        return AdvisoryMatch(advisory_id, meta.get("title") or advisory_id, meta.get("url"),
                             meta.get("published"), meta.get("source") or "csaf", m, hits, rems, fixed_in)

    def match_asset(self, asset, min_confidence: str = "low") -> list[AdvisoryMatch]:
        """Match an inventory Asset (its identity, then its declared entry, then its OUI vendor)."""
        ident = dict(getattr(asset, "identity", {}) or {})
        declared = getattr(asset, "declared", None) or {}
        for k in ("vendor", "product", "firmware", "model", "order_number"):
            if not ident.get(k) and declared.get(k):
                ident[k] = declared[k]
        if not any(ident.get(k) for k in ("product", "model", "order_number")):
            return []
        return self.match(DeviceIdentity.from_identity(ident, getattr(asset, "vendor", None)), min_confidence)


_FIX = re.compile(r"\b(?:update|upgrade|apply)\b[^.]{0,60}?\b(?:to|version|firmware)\s+(V?\d[\w.]*(?:\s+(?:SP|HF|Update)\s*\d+)*)",
                  re.I)


def _fix_from_remediations(rems: list[dict]) -> str | None:
    for r in rems:
        if r.get("category") == "vendor_fix":
            m = _FIX.search(r.get("details") or "")
            if m:
                return m.group(1).rstrip(".")
    return None


def cpe_key(cpe: str | None) -> str | None:
    """"vendor:product" of a CPE 2.3 string (the part that names the product)."""
    if not cpe or not str(cpe).startswith("cpe:2.3:"):
        return None
    from plantguard.knowledge.nvd import parse_cpe23
    c = parse_cpe23(str(cpe))
    return f"{c.vendor.lower()}:{c.product.lower()}" if c and c.vendor not in ("*", "-") else None


def _is_wild(model: str) -> bool:
    """Order numbers with placeholders ("6ES7 315-2EH14-0AB0" is exact; "6AV21xx-*" is not)."""
    return "*" in model or "xx" in model


def _wild_match(order: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(order, pattern.replace("xx", "??"))


def _phrase_ok(phrase: str) -> bool:
    """A product phrase specific enough to look for inside advisory product names."""
    return len(phrase) >= 5 and (any(c.isdigit() for c in phrase) or len(phrase.split()) >= 2)
