"""`plantguard intel import` and `intel status`: load advisories, KEV, NVD and EPSS files into
the store in one transaction with bulk inserts, and say what is loaded and how old it is.

Re-importing a document replaces what the earlier import of the same document loaded."""
from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine

from plantguard.knowledge.csaf import CsafDocument, CsafError, is_csaf, read_csaf
from plantguard.knowledge.epss import is_epss_csv, read_epss_csv
from plantguard.knowledge.kev import is_kev_csv_header, is_kev_json, read_kev_csv, read_kev_json
from plantguard.knowledge.nvd import is_nvd, read_nvd
from plantguard.knowledge.vendors import vendor_key
from plantguard.store.intel_tables import (Advisory, AdvisoryProduct, AdvisoryVuln, EpssScore,
                                           IntelSource, KevEntry)

SUFFIXES = (".json", ".csv", ".json.gz", ".csv.gz")
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class ImportReport:
    files: int = 0
    loaded: dict[str, int] = field(default_factory=dict)   # kind -> documents
    records: dict[str, int] = field(default_factory=dict)  # what -> rows
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    seconds: float = 0.0

    def add(self, what: str, n: int = 1, kind: str | None = None) -> None:
        self.records[what] = self.records.get(what, 0) + n
        if kind:
            self.loaded[kind] = self.loaded.get(kind, 0) + 1


def expand_paths(paths) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(SUFFIXES))
        else:
            out.append(p)
    return out


def _read_bytes(path: Path) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES >> 20} MiB")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


@dataclass
class _Batch:
    """Everything parsed from the files, inserted in one go."""
    sources: list[dict] = field(default_factory=list)
    advisories: list[tuple[dict, CsafDocument]] = field(default_factory=list)
    kev: list[dict] = field(default_factory=list)
    epss: list[dict] = field(default_factory=list)


def import_paths(engine: Engine, paths, progress=None) -> ImportReport:
    """Load every file under `paths`. Files that are not one of the formats are reported in
    `skipped`, never raised; the store changes in one transaction."""
    t0 = time.perf_counter()
    rep = ImportReport()
    batch = _Batch()
    now = time.time()
    for path in expand_paths(paths):
        rep.files += 1
        try:
            _parse_file(path, batch, rep, now)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the import
            rep.skipped.append((str(path), f"{type(e).__name__}: {e}"[:300]))
        if progress:
            progress(path)
    _store(engine, batch, rep)
    rep.seconds = time.perf_counter() - t0
    return rep


def _parse_file(path: Path, batch: _Batch, rep: ImportReport, now: float) -> None:
    data = _read_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    text = data.decode("utf-8-sig", errors="replace")
    src = {"path": str(path), "sha256": sha, "imported_at": now}
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        head = text[:2000]
        first = next((ln for ln in head.splitlines() if ln.strip() and not ln.startswith("#")), "")
        if is_kev_csv_header(first.split(",")):
            cat = read_kev_csv(text)
            batch.sources.append({**src, "kind": "kev", "doc_id": "kev", "doc_date": cat.released,
                                  "records": len(cat.entries)})
            batch.kev = cat.entries
            rep.add("kev entries", 0, kind="kev")
            rep.records["kev entries"] = len(cat.entries)     # a catalogue replaces, never adds
            return
        if is_epss_csv(head):
            date, rows = read_epss_csv(text)
            batch.sources.append({**src, "kind": "epss", "doc_id": "epss", "doc_date": date,
                                  "records": len(rows)})
            batch.epss = rows
            rep.add("epss scores", 0, kind="epss")
            rep.records["epss scores"] = len(rows)
            return
        raise ValueError("CSV is neither the KEV catalogue nor an EPSS score file")
    doc = json.loads(text)
    if is_csaf(doc):
        adv = read_csaf(doc)
        batch.sources.append({**src, "kind": "csaf", "doc_id": adv.id,
                              "doc_date": adv.updated or adv.published, "records": len(adv.vulns)})
        batch.advisories.append(({"source": "csaf"}, adv))
        rep.add("advisories", 1, kind="csaf")
        rep.add("products", len(adv.products))
        rep.add("vulnerabilities", len(adv.vulns))
    elif is_kev_json(doc):
        cat = read_kev_json(doc)
        batch.sources.append({**src, "kind": "kev", "doc_id": "kev",
                              "doc_date": cat.released or cat.version, "records": len(cat.entries)})
        batch.kev = cat.entries
        rep.add("kev entries", 0, kind="kev")
        rep.records["kev entries"] = len(cat.entries)
    elif is_nvd(doc):
        cves = read_nvd(doc)
        batch.sources.append({**src, "kind": "nvd", "doc_id": path.name,
                              "doc_date": doc.get("timestamp"), "records": len(cves)})
        for adv in cves:
            batch.advisories.append(({"source": "nvd"}, adv))
        rep.add("nvd cves", len(cves), kind="nvd")
    else:
        raise CsafError("JSON is not CSAF 2.x, the KEV catalogue or NVD CVE JSON 2.0")


def _store(engine: Engine, batch: _Batch, rep: ImportReport) -> None:
    # the last file loaded for an advisory id wins (e.g. an "Update A" file loaded after the original)
    advisories = {adv.id: (meta, adv) for meta, adv in batch.advisories}
    adv_rows, prod_rows, vuln_rows = [], [], []
    for adv_id, (meta, adv) in advisories.items():
        adv_rows.append({"id": adv_id, "source": meta["source"], "category": adv.category,
                         "title": adv.title[:2000], "publisher": adv.publisher, "published": adv.published,
                         "updated": adv.updated, "url": adv.url})
        for p in adv.products:
            prod_rows.append({"advisory_id": adv_id, "product_id": p.product_id, "vendor": p.vendor,
                              "vendor_key": vendor_key(p.vendor), "product_name": p.product_name,
                              "full_name": p.full_name, "version_text": p.version_text,
                              "version_kind": p.version_kind, "model_numbers": p.model_numbers,
                              "cpe": p.cpe, "purl": p.purl})
        for v in adv.vulns:
            vuln_rows.append({"advisory_id": adv_id, "cve": v.cve, "title": v.title, "cwe": v.cwe,
                              "cvss_version": v.cvss_version, "cvss_vector": v.cvss_vector,
                              "cvss_score": v.cvss_score, "severity": v.severity, "affected": v.affected,
                              "fixed": v.fixed, "not_affected": v.not_affected,
                              "remediations": v.remediations})
    ids = list(advisories)
    with engine.begin() as conn:
        for chunk in _chunks(ids, 500):
            conn.execute(delete(AdvisoryProduct).where(AdvisoryProduct.advisory_id.in_(chunk)))
            conn.execute(delete(AdvisoryVuln).where(AdvisoryVuln.advisory_id.in_(chunk)))
            conn.execute(delete(Advisory).where(Advisory.id.in_(chunk)))
        for s in batch.sources:
            conn.execute(delete(IntelSource).where(IntelSource.kind == s["kind"],
                                                   IntelSource.doc_id == s["doc_id"]))
        # one source row per (kind, doc_id): the last file wins
        sources = {(s["kind"], s["doc_id"]): s for s in batch.sources}
        if sources:
            conn.execute(insert(IntelSource), list(sources.values()))
        if adv_rows:
            conn.execute(insert(Advisory), adv_rows)
        if prod_rows:
            conn.execute(insert(AdvisoryProduct), prod_rows)
        if vuln_rows:
            conn.execute(insert(AdvisoryVuln), vuln_rows)
        if batch.kev:   # a catalogue replaces the previous one whole
            conn.execute(delete(KevEntry))
            conn.execute(insert(KevEntry), batch.kev)
        if batch.epss:
            conn.execute(delete(EpssScore))
            conn.execute(insert(EpssScore), batch.epss)


def _chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


# ---------------------------------------------------------------- status

def _age_days(date_text: str | None, now: datetime) -> float | None:
    if not date_text:
        return None
    s = str(date_text).strip().replace("Z", "+00:00")
    for cut in (s, s[:10]):
        try:
            d = datetime.fromisoformat(cut)
        except ValueError:
            continue
        if d.tzinfo is None:
            d = d.replace(tzinfo=timezone.utc)
        return round((now - d).total_seconds() / 86400, 1)
    return None


def intel_status(engine: Engine, now: datetime | None = None) -> dict:
    """What is loaded and how old it is: per kind, the count, the newest document date, its
    age in days and when it was imported."""
    now = now or datetime.now(timezone.utc)
    out: dict = {"kinds": {}, "totals": {}}
    with engine.connect() as conn:
        rows = conn.execute(select(IntelSource.kind, func.count(), func.max(IntelSource.doc_date),
                                   func.min(IntelSource.doc_date), func.max(IntelSource.imported_at),
                                   func.sum(IntelSource.records))
                            .group_by(IntelSource.kind)).all()
        for kind, n, newest, oldest, imported, records in rows:
            out["kinds"][kind] = {
                "documents": n, "records": int(records or 0), "newest": newest, "oldest": oldest,
                "age_days": _age_days(newest, now),
                "imported": datetime.fromtimestamp(imported, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                if imported else None}
        out["totals"] = {
            "advisories": conn.scalar(select(func.count()).select_from(Advisory)) or 0,
            "products": conn.scalar(select(func.count()).select_from(AdvisoryProduct)) or 0,
            "cves": conn.scalar(select(func.count(func.distinct(AdvisoryVuln.cve)))) or 0,
            "kev": conn.scalar(select(func.count()).select_from(KevEntry)) or 0,
            "epss": conn.scalar(select(func.count()).select_from(EpssScore)) or 0,
        }
    out["loaded"] = bool(out["totals"]["advisories"] or out["totals"]["kev"])
    return out


def has_intel(engine: Engine | None) -> bool:
    if engine is None:
        return False
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(select(func.count()).select_from(Advisory)) or
                        conn.scalar(select(func.count()).select_from(KevEntry)))
    except Exception:  # noqa: BLE001 - a store without the tables has no intel
        return False
