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

The package, by step:
  text    normalisation, model tokens, order-number placeholders, CPE keys
  model   IndexedProduct, DeviceIdentity and the match results (ProductMatch, AdvisoryMatch, CveHit)
  rules   one device against one product: basis, series, version verdict, confidence
  index   IntelIndex: loading and indexing the store, candidate look-up, best match per advisory
"""
from plantguard.knowledge.matching.index import _FIX, IntelIndex, _fix_from_remediations
from plantguard.knowledge.matching.model import (_BASIS_RANK, CONFIDENCE_ORDER, AdvisoryMatch, CveHit,
                                                 DeviceIdentity, IndexedProduct, ProductMatch, VulnInfo)
from plantguard.knowledge.matching.rules import match_product
from plantguard.knowledge.matching.text import (_SERIES, _SIEMENS_ORDER, _WORD, _is_catalogue, _is_wild,
                                                _norm, _phrase_in, _phrase_ok, _tokens, _wild_match, cpe_key)

# everything the single module matching.py defined stays importable from here
__all__ = ["CONFIDENCE_ORDER", "AdvisoryMatch", "CveHit", "DeviceIdentity", "IndexedProduct", "IntelIndex",
           "ProductMatch", "VulnInfo", "cpe_key", "match_product",
           "_BASIS_RANK", "_FIX", "_SERIES", "_SIEMENS_ORDER", "_WORD", "_fix_from_remediations", "_is_catalogue",
           "_is_wild", "_norm", "_phrase_in", "_phrase_ok", "_tokens", "_wild_match"]
