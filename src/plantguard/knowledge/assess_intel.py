"""Shared per-assessment state for the vulnerability and SBOM checks: the intelligence index,
the exposure map and each asset's advisory matches, computed once and kept in ctx.options."""
from __future__ import annotations

from plantguard.knowledge.exposure import ExposureMap
from plantguard.knowledge.intel import has_intel
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex

_KEY = "_intel_state"

NO_INTEL_REASON = ("no vulnerability intelligence loaded: run `plantguard intel import PATH` with CSAF "
                   "advisories and the CISA KEV catalogue, then assess with --db pointing at that store")


class IntelState:
    def __init__(self, ctx):
        self.ctx = ctx
        self.index = IntelIndex.load(ctx.db)
        self.exposure = ExposureMap(getattr(ctx.result, "flows", None), ctx.site)
        self.min_confidence = str((ctx.options or {}).get("vuln_min_confidence", "low"))
        self._matches: dict[str, list] = {}

    def matches(self, asset) -> list:
        key = asset.key
        if key not in self._matches:
            found = self.index.match_asset(asset, self.min_confidence)
            # modules reached through the device (a controller in its chassis) have their own firmware
            for mod in (getattr(asset, "identity", None) or {}).get("modules") or []:
                if isinstance(mod, dict):
                    found += self.index.match(DeviceIdentity.from_identity(mod, getattr(asset, "vendor", None)),
                                              self.min_confidence)
            seen, unique = set(), []
            for am in found:   # the same module may be described twice (several routes or replies)
                if am.advisory_id not in seen:
                    seen.add(am.advisory_id)
                    unique.append(am)
            self._matches[key] = unique
        return self._matches[key]


def intel_state(ctx) -> IntelState | None:
    """The shared state, or None when the store holds no intelligence."""
    opts = ctx.options if isinstance(ctx.options, dict) else {}
    if _KEY in opts:
        return opts[_KEY]
    state = IntelState(ctx) if has_intel(ctx.db) else None
    opts[_KEY] = state
    return state
