"""Which SBOM describes which device: declared in the site file (`sboms: [{file, asset|product}]`
or an asset's `sbom:`), or matched by identity (the SBOM's product and supplier against the
device's product and vendor) for SBOMs kept in the store by `plantguard sbom check`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from plantguard.knowledge.vendors import vendor_key
from plantguard.site import declared_site


@dataclass
class SbomSource:
    path: str
    product: dict | None = None          # {name, version, supplier}
    declared_for: str | None = None      # asset IP/name or product text from the site file
    stored_report: dict | None = None    # from the store
    assets: list[str] = field(default_factory=list)
    how: list[str] = field(default_factory=list)


def _norm(s) -> str:
    return re.sub(r"[\s_]+", " ", str(s or "").lower()).strip()


def asset_names(asset) -> set[str]:
    ident = asset.identity or {}
    names = {asset.key}
    names |= set(asset.ips or ())
    for v in (ident.get("name"), (asset.declared or {}).get("name"), *(asset.hostnames or ())):
        if v:
            names.add(str(v))
    return {_norm(n) for n in names}


def asset_products(asset) -> list[str]:
    ident = asset.identity or {}
    declared = asset.declared or {}
    vals = [ident.get(k) or declared.get(k) for k in ("product", "model", "order_number")]
    return [_norm(v) for v in vals if v]


def product_matches(product_text: str, asset) -> bool:
    """The SBOM's product names the device's product (either contains the other, word-bounded)."""
    p = _norm(product_text)
    if len(p) < 3:
        return False
    for a in asset_products(asset):
        if len(a) >= 3 and (re.search(rf"(?<![a-z0-9]){re.escape(a)}(?![a-z0-9])", p) or
                            re.search(rf"(?<![a-z0-9]){re.escape(p)}(?![a-z0-9])", a)):
            return True
    return False


def _vendor_ok(supplier, asset) -> bool:
    sk = vendor_key(supplier)
    ak = vendor_key((asset.identity or {}).get("vendor") or (asset.declared or {}).get("vendor") or asset.vendor)
    return not sk or not ak or sk == ak


def link_sboms(site, assets, stored: list[dict]) -> list[SbomSource]:
    """Every SBOM the assessment knows of, with the devices each describes."""
    sources: dict[str, SbomSource] = {}
    declared = declared_site(site) is not None
    if declared:
        for entry in getattr(site, "sboms", None) or []:
            src = sources.setdefault(str(entry["file"]), SbomSource(str(entry["file"])))
            target = entry.get("asset") or entry.get("product")
            src.declared_for = target
            for a in assets:
                if entry.get("asset") and _norm(entry["asset"]) in asset_names(a):
                    src.assets.append(a.key)
                    src.how.append(f"site file: sboms entry for asset {entry['asset']}")
                elif entry.get("product") and product_matches(entry["product"], a):
                    src.assets.append(a.key)
                    src.how.append(f"site file: sboms entry for product '{entry['product']}'")
        for a in assets:
            f = (a.declared or {}).get("sbom")
            if f:
                src = sources.setdefault(str(f), SbomSource(str(f)))
                src.assets.append(a.key)
                src.how.append(f"site file: asset {a.key} declares it")
    for rec in stored:
        path = rec["path"]
        if any(Path(path) == Path(p) for p in sources):
            src = next(s for p, s in sources.items() if Path(p) == Path(path))
            src.stored_report = rec.get("report")
            src.product = src.product or rec.get("product")
            continue
        src = SbomSource(path, rec.get("product"), stored_report=rec.get("report"))
        prod = rec.get("product") or {}
        if prod.get("name"):
            for a in assets:
                if product_matches(prod["name"], a) and _vendor_ok(prod.get("supplier"), a):
                    src.assets.append(a.key)
                    src.how.append(f"identity: SBOM product '{prod['name']}' matches the device's product")
        sources[path] = src
    for s in sources.values():
        s.assets = list(dict.fromkeys(s.assets))
    return list(sources.values())


def stored_sboms(engine) -> list[dict]:
    if engine is None:
        return []
    from sqlalchemy import select

    from plantguard.store.sbom_tables import SbomRecord
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(SbomRecord.__table__)).all()
    except Exception:  # noqa: BLE001 - a store without the table holds no SBOM
        return []
    return [{"path": r.path, "verdict": r.verdict, "kind": r.kind, "report": r.report,
             "product": {"name": r.product_name, "version": r.product_version, "supplier": r.product_supplier}}
            for r in rows if r.kind != "vex"]
