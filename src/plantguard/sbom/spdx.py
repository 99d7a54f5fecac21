"""SPDX 2.x (JSON, tag-value, YAML, XML, RDF) through spdx-tools: parse, validate, read."""
from __future__ import annotations

from plantguard.sbom.document import MAX_ERRORS, Component, SbomDocument


def _actor(a) -> str | None:
    if a is None:
        return None
    name = getattr(a, "name", None)
    return str(name) if name else None      # SpdxNoAssertion / SpdxNone have no name


_UNPARSED = object()       # what _parse gives back when the file could not be parsed


def read_spdx(path: str, fmt: str) -> SbomDocument:
    doc = SbomDocument(path, fmt)
    spdx = _parse(path, doc)
    if spdx is _UNPARSED:
        return doc
    _read_creation_info(spdx.creation_info, doc)
    _validate(spdx, doc)
    by_id = {p.spdx_id: _component(p) for p in spdx.packages}
    described = _read_relationships(spdx.relationships, doc)
    primary_id = next((d for d in described if d in by_id), None)
    if primary_id:
        doc.primary = by_id.pop(primary_id)
        doc.primary_id = primary_id
    doc.components = list(by_id.values())
    return doc


def _parse(path: str, doc: SbomDocument):
    """The spdx-tools Document, or _UNPARSED with the parse errors added to doc."""
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.parse_anything import parse_file
    try:
        return parse_file(path)
    except SPDXParsingError as e:
        msgs = e.get_messages() if hasattr(e, "get_messages") else [str(e)]
        doc.errors += [f"parse: {m}"[:300] for m in msgs[:MAX_ERRORS]]
    except Exception as e:  # noqa: BLE001 - the parsers raise many types on garbage
        doc.errors.append(f"parse: {type(e).__name__}: {str(e)[:200]}")
    return _UNPARSED


def _read_creation_info(ci, doc: SbomDocument) -> None:
    from spdx_tools.spdx.model import ActorType
    doc.spec_version = ci.spdx_version
    doc.serial = ci.document_namespace
    doc.timestamp = ci.created.isoformat() if ci.created else None
    for c in ci.creators or ():
        if c.actor_type in (ActorType.PERSON, ActorType.ORGANIZATION):
            doc.authors.append(c.name)
        else:
            doc.tools.append(c.name)


def _validate(spdx, doc: SbomDocument) -> None:
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    try:
        for m in validate_full_spdx_document(spdx)[:MAX_ERRORS]:
            doc.errors.append(f"spdx: {m.validation_message}"[:300])
    except Exception as e:  # noqa: BLE001
        doc.errors.append(f"spdx: validation failed: {type(e).__name__}: {str(e)[:200]}")


def _component(p) -> Component:
    purl, cpe = _identifiers(p)
    supplier, field = _actor(p.supplier), "supplier"
    if not supplier and _actor(p.originator):
        supplier, field = _actor(p.originator), "originator"
    return Component(p.spdx_id, p.name, p.version or None, supplier, field if supplier else None,
                     purl, cpe, type=str(p.primary_package_purpose.name).lower()
                     if p.primary_package_purpose else None)


def _identifiers(p) -> tuple[str | None, str | None]:
    """The package's first purl and first CPE (2.3 or 2.2) external reference."""
    purl = cpe = None
    for ref in p.external_references or ():
        t = (ref.reference_type or "").lower()
        if t == "purl" and not purl:
            purl = ref.locator
        elif t in ("cpe23type", "cpe22type") and not cpe:
            cpe = ref.locator
    return purl, cpe


def _read_relationships(relationships, doc: SbomDocument) -> list[str]:
    """Add the dependency edges to doc; return the ids the document describes."""
    from spdx_tools.spdx.model import RelationshipType
    depends = (RelationshipType.DEPENDS_ON, RelationshipType.CONTAINS,
               RelationshipType.STATIC_LINK, RelationshipType.DYNAMIC_LINK)
    depended_on = (RelationshipType.DEPENDENCY_OF, RelationshipType.CONTAINED_BY)
    described = []
    for r in relationships:
        a, b = r.spdx_element_id, str(r.related_spdx_element_id)
        if r.relationship_type == RelationshipType.DESCRIBES and a == "SPDXRef-DOCUMENT":
            described.append(b)
        elif r.relationship_type == RelationshipType.DESCRIBED_BY and b == "SPDXRef-DOCUMENT":
            described.append(a)
        elif r.relationship_type in depends:
            doc.dependencies.setdefault(a, []).append(b)
        elif r.relationship_type in depended_on:
            doc.dependencies.setdefault(b, []).append(a)
    return described
