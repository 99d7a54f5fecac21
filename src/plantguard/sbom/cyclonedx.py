"""CycloneDX JSON and XML: schema validation and reading with cyclonedx-python-lib."""
from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from urllib.parse import quote

from plantguard.sbom.document import MAX_ERRORS, Component, SbomDocument, VexStatement


def _fast_format_checker():
    """The schema's format checks, with IRI checks done by the RFC 3986 validator on the
    percent-encoded text: the default IRI grammar parser takes ~70 ms per value, which turns a
    60-component SBOM into a 7-second validation."""
    from jsonschema import Draft7Validator, FormatChecker
    from rfc3986_validator import validate_rfc3986

    fc = FormatChecker()
    fc.checkers = dict(Draft7Validator.FORMAT_CHECKER.checkers)

    def iri(rule):
        def check(instance) -> bool:
            if not isinstance(instance, str):
                return True
            return bool(validate_rfc3986(quote(instance, safe=":/?#[]@!$&'()*+,;=%-._~"), rule=rule))
        return check
    fc.checkers["iri-reference"] = (iri("URI_reference"), ValueError)
    fc.checkers["iri"] = (iri("URI"), ValueError)
    return fc


_VALIDATORS: dict = {}


SCHEMA_DEPS_MISSING = ("schema not validated: install cyclonedx-python-lib[json-validation,xml-validation] "
                       "(jsonschema, lxml)")


def _json_errors(text: str, spec: str | None, warnings_out: list[str]) -> list[str]:
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        warnings_out.append(SCHEMA_DEPS_MISSING)
        return []
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonValidator
    try:
        sv = SchemaVersion.from_version(str(spec))
    except Exception:  # noqa: BLE001
        return [f"specVersion '{spec}' is not a CycloneDX version this tool can validate"]
    v = _VALIDATORS.get(sv)
    if v is None:
        lib = JsonValidator(sv)
        try:
            v = lib._validator.evolve(format_checker=_fast_format_checker())  # noqa: SLF001
        except Exception:  # noqa: BLE001 - fall back to the library's own validator
            v = lib
        _VALIDATORS[sv] = v
    if hasattr(v, "iter_errors"):
        errs = []
        for e in v.iter_errors(json.loads(text)):
            where = "/".join(str(x) for x in e.absolute_path) or "(document)"
            errs.append(f"schema: {where}: {e.message[:200]}")
            if len(errs) >= MAX_ERRORS:
                break
        return errs
    err = v.validate_str(text)
    return [f"schema: {err}"[:300]] if err else []


def read_cyclonedx_json(path: str, text: str, raw: dict) -> SbomDocument:
    from cyclonedx.model.bom import Bom
    spec = str(raw.get("specVersion") or "")
    doc = SbomDocument(path, "cyclonedx-json", spec or None, raw.get("serialNumber"),
                       raw.get("version") if isinstance(raw.get("version"), int) else None)
    doc.errors += _json_errors(text, spec, doc.warnings)
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    _raw_metadata(doc, meta)
    try:
        with warnings.catch_warnings():     # the library warns about deprecated fields it reads
            warnings.simplefilter("ignore")
            bom = Bom.from_json(raw)
    except Exception as e:  # noqa: BLE001 - the library raises many types on bad input
        doc.errors.append(f"cannot be read as CycloneDX {spec}: {type(e).__name__}: {str(e)[:200]}")
        _raw_components(doc, raw)
        return doc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _from_bom(doc, bom)
    doc.vex = _raw_vex(raw.get("vulnerabilities"))
    return doc


def read_cyclonedx_xml(path: str, data: bytes, root) -> SbomDocument:
    from cyclonedx.model.bom import Bom
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.xml import XmlValidator
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    spec = ns.rsplit("/", 1)[-1] if ns else None
    doc = SbomDocument(path, "cyclonedx-xml", spec, root.get("serialNumber"),
                       int(root.get("version")) if (root.get("version") or "").isdigit() else None)
    try:
        import lxml  # noqa: F401
        err = XmlValidator(SchemaVersion.from_version(spec)).validate_str(data.decode("utf-8-sig"))
        if err:
            doc.errors.append(f"schema: {str(err)[:300]}")
    except ImportError:
        doc.warnings.append(SCHEMA_DEPS_MISSING)
    except Exception as e:  # noqa: BLE001
        doc.errors.append(f"schema: cannot validate CycloneDX XML {spec}: {type(e).__name__}: {str(e)[:200]}")
    q = (lambda t: f"{{{ns}}}{t}") if ns else (lambda t: t)
    md = root.find(q("metadata"))
    meta: dict = {}
    if md is not None:
        if md.find(q("timestamp")) is not None:
            meta["timestamp"] = (md.find(q("timestamp")).text or "").strip()
        meta["authors"] = [{"name": (a.findtext(q("name")) or "").strip()} for a in md.iter(q("author"))]
        for k in ("manufacture", "manufacturer", "supplier"):
            el = md.find(q(k))
            if el is not None:
                meta[k] = {"name": (el.findtext(q("name")) or "").strip()}
        tools = md.find(q("tools"))
        if tools is not None:
            meta["tools"] = [{"name": (t.findtext(q("name")) or "").strip()} for t in tools.iter(q("tool"))] + \
                            [{"name": (t.findtext(q("name")) or "").strip()} for t in tools.iter(q("component"))]
    _raw_metadata(doc, meta)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bom = Bom.from_xml(ET.fromstring(data))
    except Exception as e:  # noqa: BLE001
        doc.errors.append(f"cannot be read as CycloneDX {spec}: {type(e).__name__}: {str(e)[:200]}")
        return doc
    _from_bom(doc, bom)
    for v in bom.vulnerabilities or ():
        if v.analysis and v.analysis.state and v.id:
            doc.vex.append(VexStatement(str(v.id), [str(a.ref) for a in v.affects or ()],
                                        str(v.analysis.state.value), _val(v.analysis.justification),
                                        v.analysis.detail))
    return doc


def _val(x):
    return None if x is None else str(getattr(x, "value", x))


def _raw_metadata(doc: SbomDocument, meta: dict) -> None:
    """Presence of timestamp / authors as the document states them (the library defaults them)."""
    ts = meta.get("timestamp")
    doc.timestamp = str(ts) if ts else None
    authors = [a.get("name") or a.get("email") for a in meta.get("authors") or [] if isinstance(a, dict)]
    for k in ("manufacture", "manufacturer"):
        m = meta.get(k)
        if isinstance(m, dict) and m.get("name"):
            authors.append(f"{m['name']} (manufacturer)")
    doc.authors = [a for a in authors if a]
    sup = meta.get("supplier")
    doc.doc_supplier = sup.get("name") if isinstance(sup, dict) and sup.get("name") else None
    tools = meta.get("tools")
    if isinstance(tools, dict):     # 1.5+: {"components": [...], "services": [...]}
        tools = (tools.get("components") or []) + (tools.get("services") or [])
    doc.tools = [str(t.get("name")) for t in tools or [] if isinstance(t, dict) and t.get("name")]


def _component(c) -> Component:
    supplier, field = None, None
    if c.supplier is not None and c.supplier.name:
        supplier, field = c.supplier.name, "supplier"
    elif getattr(c, "manufacturer", None) is not None and c.manufacturer.name:
        supplier, field = c.manufacturer.name, "manufacturer"
    elif c.publisher:
        supplier, field = c.publisher, "publisher"
    return Component(
        ref=c.bom_ref.value if c.bom_ref and c.bom_ref.value else None, name=c.name or "",
        version=c.version or None, supplier=supplier, supplier_field=field,
        purl=str(c.purl) if c.purl else None, cpe=c.cpe or None,
        swid=c.swid.tag_id if c.swid is not None else None,
        type=_val(c.type), group=c.group or None)


def _from_bom(doc: SbomDocument, bom) -> None:
    if bom.metadata.component is not None:
        doc.primary = _component(bom.metadata.component)
    seen = set()
    for c in bom._get_all_components():   # noqa: SLF001 - nested components, flattened by the library
        if bom.metadata.component is not None and c is bom.metadata.component:
            continue
        if id(c) in seen:
            continue
        seen.add(id(c))
        doc.components.append(_component(c))
    for d in bom.dependencies or ():
        doc.dependencies[d.ref.value] = [x.ref.value for x in d.dependencies or ()]


def _raw_components(doc: SbomDocument, raw: dict) -> None:
    """Best effort when the library cannot read the document: components from the JSON."""
    for c in (raw.get("components") or [])[:100_000]:
        if isinstance(c, dict) and c.get("name"):
            sup = c.get("supplier") if isinstance(c.get("supplier"), dict) else {}
            doc.components.append(Component(c.get("bom-ref"), str(c["name"]), c.get("version"),
                                            sup.get("name"), "supplier" if sup.get("name") else None,
                                            c.get("purl"), c.get("cpe")))
    for d in raw.get("dependencies") or []:
        if isinstance(d, dict) and d.get("ref"):
            doc.dependencies[str(d["ref"])] = [str(x) for x in d.get("dependsOn") or []]


def _raw_vex(vulns) -> list[VexStatement]:
    out = []
    for v in vulns or []:
        if not isinstance(v, dict) or not v.get("id"):
            continue
        a = v.get("analysis") if isinstance(v.get("analysis"), dict) else {}
        refs = [str(x.get("ref")) for x in v.get("affects") or [] if isinstance(x, dict) and x.get("ref")]
        out.append(VexStatement(str(v["id"]), refs, str(a.get("state") or "affected"),
                                a.get("justification"), a.get("detail")))
    return out
