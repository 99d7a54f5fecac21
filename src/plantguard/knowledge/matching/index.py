"""The loaded intelligence, indexed once (by vendor, catalogue/order tokens, family, CPE), and
matched per device: candidate products by look-up, each decided by matching.rules, the best per
advisory kept with the CVEs that affect it."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from plantguard.knowledge.families import FAMILY_TEXT, families_in_text, normalise_order_number
from plantguard.knowledge.matching.model import (CONFIDENCE_ORDER, AdvisoryMatch, CveHit, DeviceIdentity,
                                                 IndexedProduct, ProductMatch, VulnInfo)
from plantguard.knowledge.matching.rules import match_product
from plantguard.knowledge.matching.text import (_SERIES, _SIEMENS_ORDER, _is_wild, _norm, _tokens,
                                                _wild_match, cpe_key)
from plantguard.knowledge.vendors import vendor_key
from plantguard.knowledge.versions import VersionRange, parse_range, resolve_wildcards
from plantguard.store.intel_tables import (Advisory, AdvisoryProduct, AdvisoryVuln, EpssScore,
                                           KevEntry)


_VERSION_TOKEN = re.compile(r"v?\d+(?:\.\d+)+[a-z]?")


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
        # a version number ("versions prior to 1.10") names no model
        rest = [t for t in toks if not _VERSION_TOKEN.fullmatch(t)
                and not any(part in fam_text for part in re.split(r"[-/.]", t) if len(part) >= 3)]
        return bool(rest)

    # -- matching
    def candidates(self, dev: DeviceIdentity) -> Iterable[IndexedProduct]:
        """The products worth deciding for the device, each once: by CPE, by order number (exact,
        then with placeholders), by model token, by family, and by vendor for names without a digit."""
        seen: set[int] = set()

        def unseen(products: Iterable[IndexedProduct], keep=None) -> Iterable[IndexedProduct]:
            for p in products:
                if id(p) not in seen and (keep is None or keep(p)):
                    seen.add(id(p))
                    yield p

        # sets are walked in sorted order: the first of two equally ranked products wins, and that
        # must not depend on the interpreter's hash seed
        for k in sorted(dev.cpe_keys):
            yield from unseen(self.by_cpe.get(k, ()))
        for o in dev.norm_orders:
            yield from unseen(self.by_model.get(o, ()))
            yield from unseen(p for pat, p in self.wild_models if _wild_match(o, pat))
        orders = set(dev.norm_orders)

        def same_model(p: IndexedProduct) -> bool:
            return not _other_variant(orders, p)

        def same_vendor_and_model(p: IndexedProduct) -> bool:
            vk = dev.vendor_key
            return (vk is None or p.vendor_key is None or p.vendor_key == vk) and same_model(p)

        for t in sorted(dev.tokens):
            yield from unseen(self.by_token.get(t, ()), same_vendor_and_model)
        for f in sorted(dev.families):
            yield from unseen(self.by_family.get(f, ()), same_model)
        # products whose names carry no digit can only be found by the vendor's name list
        if dev.vendor_key and not dev.tokens:
            yield from unseen(self.by_vendor.get(dev.vendor_key, ()), lambda p: not p.tokens)

    def match_product(self, dev: DeviceIdentity, p: IndexedProduct) -> ProductMatch | None:
        """How the device matches one indexed product, or None (see matching.rules)."""
        return match_product(dev, p)

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


def _other_variant(orders: set[str], p: IndexedProduct) -> bool:
    """Both state order numbers and none is shared."""
    return bool(orders) and bool(p.model_set) and not p.wild and not (orders & p.model_set)


_FIX = re.compile(r"\b(?:update|upgrade|apply)\b[^.]{0,60}?\b(?:to|version|firmware)\s+(V?\d[\w.]*(?:\s+(?:SP|HF|Update)\s*\d+)*)",
                  re.I)


def _fix_from_remediations(rems: list[dict]) -> str | None:
    for r in rems:
        if r.get("category") == "vendor_fix":
            m = _FIX.search(r.get("details") or "")
            if m:
                return m.group(1).rstrip(".")
    return None
