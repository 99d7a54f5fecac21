"""SBOM components -> loaded advisories / NVD records, with VEX applied.

A component is matched like a device (vendor, name, version, CPE) by the same index. When the
component has a package URL of an ecosystem `univers` knows (npm, pypi, maven, golang, ...),
an in-range verdict is re-checked with that ecosystem's version ordering."""
from __future__ import annotations

import re
from dataclasses import dataclass

from plantguard.knowledge.matching import AdvisoryMatch, DeviceIdentity, IntelIndex, cpe_key
from plantguard.knowledge.vendors import vendor_key
from plantguard.sbom.document import Component, SbomDocument
from plantguard.sbom.vex import VexBook

# purl type -> univers range scheme
_UNIVERS_SCHEMES = {"npm": "npm", "pypi": "pypi", "maven": "maven", "golang": "golang", "gem": "gem",
                    "cargo": "cargo", "nuget": "nuget", "composer": "composer", "deb": "deb", "rpm": "rpm",
                    "conan": "conan", "hex": "hex", "apk": "apk", "alpm": "alpm", "github": "github"}


@dataclass
class ComponentFinding:
    component: Component
    match: AdvisoryMatch
    open_cves: list[str]                 # CVEs not answered by a suppressing VEX statement
    suppressed: list[dict]               # [{cve, state, justification}] the VEX answered

    def as_dict(self) -> dict:
        d = self.match.as_dict()
        return {"component": self.component.label(), "purl": self.component.purl, "cpe": self.component.cpe,
                "advisory": d["advisory"], "title": d["title"], "confidence": d["confidence"],
                "reasons": d["reasons"], "fixed_in": d["fixed_in"], "max_cvss": d["max_cvss"],
                "severity": d["severity"], "known_exploited": d["known_exploited"],
                "open_cves": self.open_cves, "vex_suppressed": self.suppressed}


def component_identity(c: Component) -> DeviceIdentity:
    vendor = c.supplier
    purl_type = None
    if c.purl:
        try:
            from packageurl import PackageURL
            p = PackageURL.from_string(c.purl)
            purl_type = p.type
            vendor = vendor or p.namespace
        except ValueError:
            pass
    keys = set()
    if c.cpe:
        k = cpe_key(c.cpe)
        if k:
            keys.add(k)
            vendor = vendor or k.split(":")[0]
    ident = {"vendor": vendor, "product": c.label().rsplit("@", 1)[0] if c.version else c.label(),
             "model": c.name, "firmware": c.version}
    dev = DeviceIdentity.from_identity(ident)
    dev.cpe_keys = keys
    dev.families = set()            # software components do not belong to hardware families
    if purl_type:
        dev.purl_type = purl_type   # type: ignore[attr-defined]
    return dev


def _ecosystem_contains(purl_type: str | None, version: str | None, rng) -> bool | None:
    scheme = _UNIVERS_SCHEMES.get(purl_type or "")
    if not scheme or not version or rng.kind != "range":
        return None
    try:
        from univers.version_range import VersionRange
        from univers.versions import InvalidVersion  # noqa: F401
        constraints = "|".join(f"{c.op}{re.sub(r'^[vV]', '', c.version.raw)}" for c in rng.constraints)
        vr = VersionRange.from_string(f"vers:{scheme}/{constraints}")
        return vr.version_class(re.sub(r"^[vV]", "", version)) in vr
    except Exception:  # noqa: BLE001 - univers raises many types for versions it cannot read
        return None


def vulnerable_components(doc: SbomDocument, index: IntelIndex, vex: VexBook,
                          min_confidence: str = "medium") -> list[ComponentFinding]:
    out = []
    for c in ([doc.primary] if doc.primary else []) + doc.components:
        if not c.name:
            continue
        dev = component_identity(c)
        if not dev.vendor_key and not dev.cpe_keys and not dev.order_numbers:
            # a name alone from an unknown supplier would match too loosely
            dev.vendor_key = vendor_key(c.group) if c.group else None
        for am in index.match(dev, min_confidence):
            if am.match.version_verdict == "in-range":
                eco = _ecosystem_contains(getattr(dev, "purl_type", None), c.version, am.match.product.range)
                if eco is False:
                    continue
            open_cves, suppressed = [], []
            for hit in am.cves:
                st = vex.verdict(doc, c, hit.cve) if hit.cve else None
                if st is not None and st.suppresses:
                    suppressed.append({"cve": hit.cve, "state": st.state, "justification": st.justification})
                else:
                    open_cves.append(hit.cve)
            out.append(ComponentFinding(c, am, [x for x in open_cves if x], suppressed))
    return out
