"""The CISA Known Exploited Vulnerabilities catalogue, from its JSON or CSV form."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.I)
KEV_CSV_COLUMNS = {"cveID", "vendorProject", "product", "dateAdded"}


@dataclass
class KevCatalogue:
    version: str | None
    released: str | None
    entries: list[dict]      # rows for intel_kev


def is_kev_json(doc) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("vulnerabilities"), list) and \
        ("catalogVersion" in doc or "dateReleased" in doc)


def is_kev_csv_header(header: list[str]) -> bool:
    return KEV_CSV_COLUMNS <= {h.strip() for h in header}


def _row(item: dict) -> dict | None:
    cve = str(item.get("cveID") or "").strip().upper()
    if not CVE_RE.match(cve):
        return None

    def t(k, n=2000):
        v = item.get(k)
        return str(v).strip()[:n] if v not in (None, "") else None
    return {"cve": cve, "vendor": t("vendorProject", 200), "product": t("product", 200),
            "name": t("vulnerabilityName"), "date_added": t("dateAdded", 20), "due_date": t("dueDate", 20),
            "ransomware": t("knownRansomwareCampaignUse", 20), "required_action": t("requiredAction")}


def read_kev_json(doc: dict) -> KevCatalogue:
    rows = {}
    for item in doc.get("vulnerabilities", []):
        r = _row(item) if isinstance(item, dict) else None
        if r:
            rows[r["cve"]] = r
    return KevCatalogue(str(doc.get("catalogVersion") or "") or None,
                        str(doc.get("dateReleased") or "") or None, list(rows.values()))


def read_kev_csv(text: str) -> KevCatalogue:
    rows = {}
    newest = None
    for item in csv.DictReader(io.StringIO(text)):
        r = _row(item)
        if r:
            rows[r["cve"]] = r
            if r["date_added"] and (newest is None or r["date_added"] > newest):
                newest = r["date_added"]
    # the CSV carries no catalogue version; its newest dateAdded dates it
    return KevCatalogue(None, newest, list(rows.values()))
