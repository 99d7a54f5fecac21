"""SPDX 2.x (JSON, tag-value, YAML, XML, RDF) through spdx-tools: parse, validate, read."""
from __future__ import annotations

from plantguard.sbom.document import MAX_ERRORS, Component, SbomDocument


def _actor(a) -> str | None:
    if a is None:
        return None
    name = getattr(a, "name", None)
    return str(name) if name else None      # SpdxNoAssertion / SpdxNone have no name


def read_spdx(path: str, fmt: str) -> SbomDocument:
    from spdx_tools.spdx.model import ActorType, RelationshipType
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    doc = SbomDocument(path, fmt)
    try:
        spdx = parse_file(path)
    except SPDXParsingError as e:
        msgs = e.get_messages() if hasattr(e, "get_messages") else [str(e)]
        doc.errors += [f"parse: {m}"[:300] for m in msgs[:MAX_ERRORS]]
        return doc
    except Exception as e:  # noqa: BLE001 - the parsers raise many types on garbage
        doc.errors.append(f"parse: {type(e).__name__}: {str(e)[:200]}")
        return doc
    ci = spdx.creation_info
    doc.spec_version = ci.spdx_version
    doc.serial = ci.document_namespace
    doc.timestamp = ci.created.isoformat() if ci.created else None
    for c in ci.creators or ():
        if c.actor_type in (ActorType.PERSON, ActorType.ORGANIZATION):
            doc.authors.append(c.name)
        else:
            doc.tools.append(c.name)
    try:
        for m in validate_full_spdx_document(spdx)[:MAX_ERRORS]:
            doc.errors.append(f"spdx: {m.validation_message}"[:300])
    except Exception as e:  # noqa: BLE001
        doc.errors.append(f"spdx: validation failed: {type(e).__name__}: {str(e)[:200]}")
    by_id = {}
    for p in spdx.packages:
        purl = cpe = None
        for ref in p.external_references or ():
            t = (ref.reference_type or "").lower()
            if t == "purl" and not purl:
                purl = ref.locator
            elif t in ("cpe23type", "cpe22type") and not cpe:
                cpe = ref.locator
        supplier, field = _actor(p.supplier), "supplier"
        if not supplier and _actor(p.originator):
            supplier, field = _actor(p.originator), "originator"
        comp = Component(p.spdx_id, p.name, p.version or None, supplier, field if supplier else None,
                         purl, cpe, type=str(p.primary_package_purpose.name).lower()
                         if p.primary_package_purpose else None)
        by_id[p.spdx_id] = comp
    described = []
    for r in spdx.relationships:
        a, b = r.spdx_element_id, str(r.related_spdx_element_id)
        if r.relationship_type == RelationshipType.DESCRIBES and a == "SPDXRef-DOCUMENT":
            described.append(b)
        elif r.relationship_type == RelationshipType.DESCRIBED_BY and b == "SPDXRef-DOCUMENT":
            described.append(a)
        elif r.relationship_type in (RelationshipType.DEPENDS_ON, RelationshipType.CONTAINS,
                                     RelationshipType.STATIC_LINK, RelationshipType.DYNAMIC_LINK):
            doc.dependencies.setdefault(a, []).append(b)
        elif r.relationship_type in (RelationshipType.DEPENDENCY_OF, RelationshipType.CONTAINED_BY):
            doc.dependencies.setdefault(b, []).append(a)
    primary_id = next((d for d in described if d in by_id), None)
    if primary_id:
        doc.primary = by_id.pop(primary_id)
        doc.primary_id = primary_id
    doc.components = list(by_id.values())
    return doc
