"""The minimum elements a procurement clause asks of an SBOM (after the NTIA minimum elements):
for every component its supplier, name, version and a unique identifier (purl, CPE or SWID);
for the document its author, a timestamp and the dependency relationships of what it describes.
Each gap is reported with how many components lack it and a few examples."""
from __future__ import annotations

from dataclasses import dataclass, field

from plantguard.sbom.document import SbomDocument

EXAMPLES = 3

ELEMENTS = ("supplier", "name", "version", "unique-identifier", "dependencies", "author", "timestamp")


@dataclass
class Gap:
    element: str
    detail: str
    missing: int = 0          # components lacking it (0 for document-level elements)
    total: int = 0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"element": self.element, "detail": self.detail, "missing": self.missing, "total": self.total,
                "examples": self.examples}


def minimum_elements(doc: SbomDocument) -> list[Gap]:
    """The gaps, empty when the document has every minimum element."""
    gaps: list[Gap] = []
    comps = ([doc.primary] if doc.primary else []) + list(doc.components)
    n = len(comps)
    if n == 0:
        gaps.append(Gap("name", "the document lists no component at all (neither a described product "
                                "nor components)"))
    for element, test, what in (
            ("supplier", lambda c: bool(c.supplier), "no supplier"),
            ("name", lambda c: bool(c.name and c.name.strip()), "no name"),
            ("version", lambda c: bool(c.version), "no version"),
            ("unique-identifier", lambda c: bool(c.identifier), "no purl, CPE or SWID tag")):
        lacking = [c for c in comps if not test(c)]
        if lacking:
            gaps.append(Gap(element, f"{len(lacking)} of {n} components have {what}", len(lacking), n,
                            [c.label() or "(unnamed)" for c in lacking[:EXAMPLES]]))
    if doc.components or doc.primary:
        gaps += _dependency_gaps(doc)
    if not doc.authors:
        gaps.append(Gap("author", "no author of the SBOM data (metadata.authors / manufacturer, or an "
                                  "SPDX Person/Organization creator)"
                        + (f"; only tools are named: {', '.join(doc.tools[:3])}" if doc.tools else "")))
    if not doc.timestamp:
        gaps.append(Gap("timestamp", "no timestamp (metadata.timestamp / SPDX Created)"))
    return gaps


def _dependency_gaps(doc: SbomDocument) -> list[Gap]:
    if not doc.components:
        return []          # a single product with nothing inside has no relationships to state
    if not doc.dependencies:
        return [Gap("dependencies", "no dependency relationships (CycloneDX dependencies / SPDX "
                                    "DEPENDS_ON or CONTAINS) between the components")]
    root = doc.primary_id or (doc.primary.ref if doc.primary else None)
    if root and not doc.dependencies.get(root):
        return [Gap("dependencies", f"the described product ({doc.primary.label() if doc.primary else root}) "
                                    "has no relationship to its components")]
    return []
