"""One device against one advisory product: the basis of the match, the version verdict, and
the confidence they give together, each step with the reason it adds.

  1. vendor      a different vendor is no match
  2. basis       order number, else CPE / catalogue number, else product name, else family
                 (when both sides state an order number, only an equal one matches)
  3. series      a different Series letter is no match (unless the order numbers are equal)
  4. version     in the affected range, all versions affected, or unknown; outside: no match
  5. confidence  from the basis and whether the version was verified
"""
from __future__ import annotations

from plantguard.knowledge.matching.model import DeviceIdentity, IndexedProduct, ProductMatch
from plantguard.knowledge.matching.text import _is_catalogue, _is_wild, _phrase_in, _wild_match
from plantguard.knowledge.vendors import display_name

# basis -> (confidence with the firmware unknown, with the firmware verified)
_CONFIDENCE = {
    "order-number": ("high", "exact"),
    "catalogue-number": ("medium", "high"),
    "product-name": ("medium", "high"),
    "family": ("low", "medium"),
}

Step = tuple[str, str]      # (what was decided, the reason for it)


def match_product(dev: DeviceIdentity, p: IndexedProduct) -> ProductMatch | None:
    """How the device matches the product, or None when it does not."""
    if dev.vendor_key and p.vendor_key and dev.vendor_key != p.vendor_key:
        return None
    reasons: list[str] = []
    if dev.vendor_key and p.vendor_key:
        reasons.append(f"vendor '{dev.vendor_text}' is {display_name(p.vendor_key)}")
    basis = _basis(dev, p)
    if basis is None or not _same_series(dev, p, basis[0]):
        return None
    reasons.append(basis[1])
    if p.series and dev.series == p.series:
        reasons.append(f"Series {p.series}")
    verdict = _version_verdict(dev, p)
    if verdict is None:
        return None
    reasons.append(verdict[1])
    confidence = _CONFIDENCE[basis[0]][verdict[0] != "unknown"]
    return ProductMatch(p, basis[0], verdict[0], confidence, reasons, dev.firmware)


# ---------------------------------------------------------------- basis

def _basis(dev: DeviceIdentity, p: IndexedProduct) -> Step | None:
    """The strongest evidence that the device is the product, with its reason."""
    if dev.norm_orders and p.models:
        return _order_number(dev, p)   # both state an order number: equal, or another variant
    return _cpe(dev, p) or _catalogue_number(dev, p) or _product_name(dev, p) or _family(dev, p)


def _order_number(dev: DeviceIdentity, p: IndexedProduct) -> Step | None:
    orders = dev.norm_orders
    exact = next((o for o in orders if o in p.model_set), None)
    if exact:
        hit = (exact, exact)
    elif p.wild:
        hit = next(((o, m) for o in orders for m in p.models if _is_wild(m) and _wild_match(o, m)), None)
    else:
        hit = None
    if not hit:
        return None
    return "order-number", (f"order number {dev.order_numbers[orders.index(hit[0])]} equals the "
                            f"advisory's {hit[1].upper()}")


def _cpe(dev: DeviceIdentity, p: IndexedProduct) -> Step | None:
    if p.cpe_key and p.cpe_key in dev.cpe_keys:
        return "catalogue-number", f"CPE vendor:product {p.cpe_key} equals the advisory's"
    return None


def _catalogue_number(dev: DeviceIdentity, p: IndexedProduct) -> Step | None:
    cat = sorted(t for t in dev.tokens & p.tokens if _is_catalogue(t))
    if cat:
        return "catalogue-number", f"catalogue number {cat[0].upper()} appears in '{p.name}'"
    return None


def _product_name(dev: DeviceIdentity, p: IndexedProduct) -> Step | None:
    phrase = next((t for t in dev.phrases if _phrase_in(t, p.text)), None)
    if phrase:
        return "product-name", f"product '{phrase}' appears in '{p.name}'"
    return None


def _family(dev: DeviceIdentity, p: IndexedProduct) -> Step | None:
    if p.families and dev.families & p.families:
        fam = sorted(dev.families & p.families)[0]
        return "family", f"product family {fam} only ('{p.name}'); the exact model is not listed"
    return None


def _same_series(dev: DeviceIdentity, p: IndexedProduct, basis: str) -> bool:
    """False when both state a different Series letter (an equal order number overrides it)."""
    return not (p.series and dev.series and p.series != dev.series and basis != "order-number")


# ---------------------------------------------------------------- version

def _version_verdict(dev: DeviceIdentity, p: IndexedProduct) -> Step | None:
    """in-range | all-versions | unknown, with the reason; None when the firmware is outside the
    affected range (already fixed)."""
    if p.range.kind == "all":
        return "all-versions", "all versions are affected" + (f" (firmware {dev.firmware})" if dev.firmware else "")
    inside = p.range.contains(dev.firmware) if dev.firmware else None
    if inside is False:
        return None
    if inside:
        return "in-range", f"firmware {dev.firmware} is in the affected range {p.range.describe()}"
    return "unknown", (f"firmware {'not seen' if not dev.firmware else repr(dev.firmware) + ' not comparable'}"
                       f"; affected: {p.range.describe()}")
