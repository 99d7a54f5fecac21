"""SBOM files read through their ecosystems' libraries into one plain shape.

CycloneDX (JSON, XML) is validated against its schema and read with cyclonedx-python-lib; SPDX
(JSON, tag-value, and the other serialisations spdx-tools reads) with spdx-tools. The library
models fill defaults for some absent fields (CycloneDX gets a timestamp of "now"), so whether
the document itself states a timestamp or an author is read from the document, not the model."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

MAX_SBOM_BYTES = 200 * 1024 * 1024
MAX_ERRORS = 20


@dataclass
class Component:
    ref: str | None
    name: str
    version: str | None = None
    supplier: str | None = None       # supplier, or manufacturer/publisher when that is all there is
    supplier_field: str | None = None  # which field gave it
    purl: str | None = None
    cpe: str | None = None
    swid: str | None = None
    type: str | None = None
    group: str | None = None

    @property
    def identifier(self) -> str | None:
        return self.purl or self.cpe or self.swid

    def label(self) -> str:
        n = f"{self.group}/{self.name}" if self.group else self.name
        return f"{n}@{self.version}" if self.version else n


@dataclass
class VexStatement:
    cve: str
    refs: list[str]                    # bom-refs / urn:cdx refs / product ids it is about
    state: str                         # not_affected | resolved | false_positive | exploitable | in_triage | affected | fixed | under_investigation
    justification: str | None = None
    detail: str | None = None
    products: list[dict] = field(default_factory=list)   # CSAF VEX: [{name, version, purl, cpe}]

    @property
    def suppresses(self) -> bool:
        return self.state in ("not_affected", "resolved", "false_positive", "fixed", "resolved_with_pedigree")


@dataclass
class SbomDocument:
    path: str
    format: str                        # cyclonedx-json | cyclonedx-xml | spdx-json | spdx-tag-value | spdx-* | csaf-vex
    spec_version: str | None = None
    serial: str | None = None
    version: int | None = None
    primary: Component | None = None   # what the SBOM describes (metadata.component / DESCRIBES)
    primary_id: str | None = None      # its SPDX id (CycloneDX: primary.ref)
    components: list[Component] = field(default_factory=list)
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    authors: list[str] = field(default_factory=list)       # people / organisations that wrote it
    tools: list[str] = field(default_factory=list)
    timestamp: str | None = None
    doc_supplier: str | None = None
    vex: list[VexStatement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)        # schema / parse / validation problems
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def kind(self) -> str:
        if self.format == "csaf-vex" or (self.vex and not self.components and
                                         not (self.primary and self.dependencies)):
            return "vex"
        return "sbom"


class SbomError(ValueError):
    """The file is not an SBOM plantguard can read (the message says why)."""


def load_sbom(path) -> SbomDocument:
    """Read and validate one SBOM or VEX file. Raises SbomError for a file that is no SBOM at
    all; schema problems of a real SBOM are reported in .errors."""
    p = Path(path)
    if not p.is_file():
        raise SbomError(f"{p}: no such file")
    if p.stat().st_size > MAX_SBOM_BYTES:
        raise SbomError(f"{p}: larger than {MAX_SBOM_BYTES >> 20} MiB")
    data = p.read_bytes()
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SbomError(f"{p}: not valid JSON ({e})") from None
        if isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
            from plantguard.sbom.cyclonedx import read_cyclonedx_json
            return read_cyclonedx_json(str(p), data.decode("utf-8-sig"), doc)
        if isinstance(doc, dict) and ("spdxVersion" in doc or "SPDXID" in doc):
            from plantguard.sbom.spdx import read_spdx
            return read_spdx(str(p), "spdx-json")
        if isinstance(doc, dict) and isinstance(doc.get("document"), dict) and \
                doc["document"].get("category") == "csaf_vex":
            from plantguard.sbom.vex import read_csaf_vex
            return read_csaf_vex(str(p), doc)
        raise SbomError(f"{p}: JSON, but neither CycloneDX (bomFormat), SPDX (spdxVersion) nor CSAF VEX")
    if head.startswith(b"<"):
        try:
            root = ET.fromstring(data)
        except ET.ParseError as e:
            raise SbomError(f"{p}: not well-formed XML ({e})") from None
        if "cyclonedx.org/schema/bom" in root.tag:
            from plantguard.sbom.cyclonedx import read_cyclonedx_xml
            return read_cyclonedx_xml(str(p), data, root)
        if "spdx" in root.tag.lower() or root.tag.endswith("RDF"):
            from plantguard.sbom.spdx import read_spdx
            return read_spdx(str(p), "spdx-xml" if "rdf" not in root.tag.lower() else "spdx-rdf")
        raise SbomError(f"{p}: XML, but not a CycloneDX BOM (namespace http://cyclonedx.org/schema/bom/...)")
    text = data[:4096].decode("utf-8", errors="replace")
    if re.search(r"^\s*SPDXVersion\s*:", text, re.M):
        from plantguard.sbom.spdx import read_spdx
        return read_spdx(str(p), "spdx-tag-value")
    if re.search(r"^\s*spdxVersion\s*:", text, re.M):
        from plantguard.sbom.spdx import read_spdx
        return read_spdx(str(p), "spdx-yaml")
    raise SbomError(f"{p}: not a CycloneDX (JSON/XML) or SPDX (JSON/tag-value) document")
