"""What matching reads and returns: the indexed advisory product, the device identity, and the
product / advisory matches with their CVEs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from plantguard.knowledge.families import asset_families, normalise_order_number
from plantguard.knowledge.matching.text import (_SERIES, _SIEMENS_ORDER, _is_wild, _norm, _phrase_ok,
                                                _tokens)
from plantguard.knowledge.vendors import vendor_from_identity, vendor_key
from plantguard.knowledge.versions import VersionRange

CONFIDENCE_ORDER = ("low", "medium", "high", "exact")
_BASIS_RANK = {"order-number": 3, "catalogue-number": 2, "product-name": 2, "family": 1}


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
