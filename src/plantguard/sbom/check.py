"""`plantguard sbom check FILE...`: a verdict per SBOM.

  invalid     the file breaks its format's schema or cannot be read (the reasons are listed)
  incomplete  valid, but minimum elements are missing (which, how many, examples)
  vulnerable  complete, but components match loaded advisories that no VEX statement answers
  complete    valid, every minimum element present, nothing vulnerable found
  vex         a VEX document: its statements are applied to the SBOMs checked with it
VEX documents given in the same call (and CSAF VEX loaded with `intel import`) are applied."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from plantguard.sbom.document import SbomDocument, SbomError, load_sbom
from plantguard.sbom.minimum import Gap, minimum_elements
from plantguard.sbom.vex import VexBook

SBOM_SUFFIXES = (".json", ".xml", ".spdx", ".spdx.json", ".tv", ".yaml", ".yml", ".rdf", ".cdx")


@dataclass
class SbomReport:
    path: str
    verdict: str
    format: str | None = None
    spec_version: str | None = None
    kind: str | None = None
    product: dict | None = None
    components: int = 0
    errors: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    vulnerable: list = field(default_factory=list)     # ComponentFinding
    vex_statements: int = 0
    document: SbomDocument | None = None

    @property
    def reasons(self) -> list[str]:
        if self.verdict == "invalid":
            return self.errors
        if self.verdict == "vex" and self.document is not None:
            return [f"{st.cve}: {st.state}" + (f" ({st.justification})" if st.justification else "")
                    + f" for {', '.join(st.refs[:3]) or ', '.join(p.get('name') or '?' for p in st.products[:3])}"
                    for st in self.document.vex[:20]]
        out = [g.detail + (f" (e.g. {', '.join(g.examples)})" if g.examples else "") for g in self.gaps]
        if self.document is not None:
            out += [f"note: {w}" for w in self.document.warnings]
        out += [f"{v.component.label()}: {v.match.advisory_id} ({', '.join(v.open_cves[:5])})"
                for v in self.vulnerable if v.open_cves]
        return out

    def as_dict(self) -> dict:
        return {"file": self.path, "verdict": self.verdict, "format": self.format,
                "spec_version": self.spec_version, "kind": self.kind, "product": self.product,
                "components": self.components, "errors": self.errors,
                "missing": [g.as_dict() for g in self.gaps],
                "vulnerable_components": [v.as_dict() for v in self.vulnerable],
                "vex_statements": self.vex_statements, "reasons": self.reasons}


def expand(paths) -> list[Path]:
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(SBOM_SUFFIXES))
        else:
            out.append(p)
    return out


def check_files(paths, index=None, extra_vex=None) -> list[SbomReport]:
    """Check every file; never raises for a bad file (its report says why)."""
    docs: list[tuple[Path, SbomDocument | None, str | None]] = []
    for p in expand(paths):
        try:
            docs.append((p, load_sbom(p), None))
        except SbomError as e:
            docs.append((p, None, str(e)))
        except Exception as e:  # noqa: BLE001 - garbage must end in a verdict, not a traceback
            docs.append((p, None, f"{p}: cannot be read: {type(e).__name__}: {e}"))
    book = VexBook([d for _, d, _ in docs if d is not None], extra_vex)
    return [check_document(p, d, err, index, book) for p, d, err in docs]


def check_document(path, doc: SbomDocument | None, error: str | None, index, book: VexBook) -> SbomReport:
    if doc is None:
        return SbomReport(str(path), "invalid", errors=[error or "unreadable"])
    rep = SbomReport(str(path), "complete", doc.format, doc.spec_version, doc.kind,
                     components=len(doc.components), errors=list(doc.errors), vex_statements=len(doc.vex),
                     document=doc)
    if doc.primary:
        rep.product = {"name": doc.primary.label().rsplit("@", 1)[0] if doc.primary.version else doc.primary.label(),
                       "version": doc.primary.version, "supplier": doc.primary.supplier or doc.doc_supplier,
                       "purl": doc.primary.purl, "cpe": doc.primary.cpe}
    if doc.errors:
        rep.verdict = "invalid"
        return rep
    if doc.kind == "vex":
        rep.verdict = "vex"
        return rep
    rep.gaps = minimum_elements(doc)
    if index is not None:
        from plantguard.sbom.match import vulnerable_components
        rep.vulnerable = vulnerable_components(doc, index, book)
    if rep.gaps:
        rep.verdict = "incomplete"
    elif any(v.open_cves for v in rep.vulnerable):
        rep.verdict = "vulnerable"
    return rep


def store_reports(engine, reports: list[SbomReport]) -> int:
    """Keep the checked SBOMs in the store so `assess` can link them to devices."""
    from sqlalchemy import delete, insert, select
    from plantguard.store.sbom_tables import SbomComponentRow, SbomRecord
    now = time.time()
    n = 0
    with engine.begin() as conn:
        for r in reports:
            doc = r.document
            if doc is None:
                continue
            try:
                sha = hashlib.sha256(Path(r.path).read_bytes()).hexdigest()
            except OSError:
                sha = ""
            path = str(Path(r.path).resolve())
            old = [row[0] for row in conn.execute(select(SbomRecord.id).where(SbomRecord.path == path))]
            if old:
                conn.execute(delete(SbomComponentRow).where(SbomComponentRow.sbom_id.in_(old)))
                conn.execute(delete(SbomRecord).where(SbomRecord.id.in_(old)))
            res = conn.execute(insert(SbomRecord).values(
                path=path, sha256=sha, format=r.format, spec_version=r.spec_version, kind=r.kind,
                product_name=(r.product or {}).get("name"), product_version=(r.product or {}).get("version"),
                product_supplier=(r.product or {}).get("supplier"), product_purl=(r.product or {}).get("purl"),
                product_cpe=(r.product or {}).get("cpe"), verdict=r.verdict, components=r.components,
                report=r.as_dict(), checked_at=now))
            sid = res.inserted_primary_key[0]
            rows = [{"sbom_id": sid, "name": c.name, "version": c.version, "supplier": c.supplier,
                     "purl": c.purl, "cpe": c.cpe} for c in doc.components[:100_000]]
            if rows:
                conn.execute(insert(SbomComponentRow), rows)
            n += 1
    return n
