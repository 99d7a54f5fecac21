"""The SIEM event model and its renderers: events from a real assessment (the demo plant), each
format on one line whatever a device sent, escaping as each spec says (parsed back here), and
every field a renderer emits named in the published schema subset shipped with the package."""
from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from plantguard.assess import run_assessment
from plantguard.capture.engine import analyze
from plantguard.demo import build_demo
from plantguard.siem import events as E
from plantguard.siem import from_assessment
from plantguard.siem.cef import SEVERITY as CEF_SEVERITY
from plantguard.siem.registry import formats
from plantguard.site import load_site
from plantguard.util.sanitize import visible

HOSTILE = ("evil\r\nCEF:0|x|y|1|2|3|10|forged=1\x00 | = ] \" \\ \x1b[31mred\x1b[0m "
           "\x9b\u202egnp.exe \udcff\udc80 \u2028next é 設備")


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    pcap, site = build_demo(tmp_path_factory.mktemp("demo"))
    return run_assessment(analyze([pcap]), load_site(site), db=None)


@pytest.fixture(scope="module")
def demo_events(contract):
    return from_assessment(contract, failed_only=False, flows=True)


def hostile_events() -> list[E.Event]:
    """One event of each kind with device text in every text field."""
    ep = E.Endpoint(ip=HOSTILE, mac=HOSTILE, port=502, name=HOSTILE)
    rule = E.Rule(HOSTILE, HOSTILE, HOSTILE, ((HOSTILE, (HOSTILE, "SR 1.1")),))
    ev = (E.EvidenceRef(HOSTILE, 7, 1.5, HOSTILE),)
    common = dict(site=HOSTILE, observer=E.Observer(HOSTILE, HOSTILE), source=ep, destination=ep, rule=rule,
                  attack=(HOSTILE, "T0843"), evidence=ev, evidence_total=3, action=HOSTILE,
                  network=E.Network(HOSTILE, HOSTILE, 7, 10, 20),
                  device=E.Device(HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE))
    return [E.Event(kind, HOSTILE, 1713061807.25, HOSTILE, "high", seq=3, outcome="fail" if kind == "finding" else None,
                    end_time=1713061809.5 if kind == "flow" else None, **common) for kind in E.KINDS]


# -- the event model ------------------------------------------------------------------------------

def test_from_assessment_gives_one_event_per_failing_finding_and_asset(contract):
    fails = [f for f in contract["findings"] if f["status"] == "fail"]
    events = from_assessment(contract)
    found = [e for e in events if e.kind == "finding"]
    assert [e.rule.id for e in found] == [f["check"] for f in fails]
    assert all(e.outcome == "fail" and e.severity == f["severity"] for e, f in zip(found, fails))
    assert len([e for e in events if e.kind == "asset"]) == len(contract["assets"])
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)
    assert ids == [e.id for e in from_assessment(contract)]          # stable: redelivery dedups


def test_finding_event_carries_rule_attack_evidence_and_endpoints(contract):
    f = next(f for f in contract["findings"] if f["check"] == "credentials.default" and f["status"] == "fail")
    e = next(e for e in from_assessment(contract) if e.rule and e.rule.title == f["title"])
    assert e.attack == tuple(f["attack"]) and e.rule.practice == f["practice"]
    assert dict(e.rule.controls) == {k: tuple(v) for k, v in f["controls"].items()}
    assert [(x.capture, x.frame) for x in e.evidence] == [(x["capture"], x["frame"]) for x in f["evidence"]]
    assert e.destination.ip == f["assets"][0] and e.source.ip == f["assets"][1]
    assert e.destination.port == f["detail"]["port"]


def test_all_findings_with_outcome_and_flows(contract, demo_events):
    assert len([e for e in demo_events if e.kind == "finding"]) == len(contract["findings"])
    assert {e.outcome for e in demo_events if e.kind == "finding"} == {"pass", "fail"}
    flows = [e for e in demo_events if e.kind == "flow"]
    assert [(e.source.ip, e.destination.ip, e.network.packets) for e in flows] == \
        [(f["src"], f["dst"], f["packets"]) for f in contract["flows"]]


def test_event_id_depends_on_kind_key_and_sequence():
    assert E.event_id("alert", "k", 0) != E.event_id("alert", "k", 1) != E.event_id("audit", "k", 1)
    assert E.event_id("alert", "k", 0) == E.event_id("alert", "k", 0)
    assert re.fullmatch(r"[0-9a-f]{32}", E.event_id("alert", HOSTILE, 5))


def test_heartbeats_are_numbered_events_of_their_observer():
    obs = E.Observer("line1-sensor", "sensor01")
    beats = [E.heartbeat(n, "packets 1200, outbox depth 0", observer=obs, when=1713061807.0 + n) for n in range(3)]
    assert len({b.id for b in beats}) == 3 and {b.key for b in beats} == {"line1-sensor@sensor01"}
    doc = json.loads(formats()["ecs"].render(beats[1]))
    assert doc["event"]["kind"] == "metric" and doc["event"]["sequence"] == 1
    assert doc["observer"] == {"name": "line1-sensor", "hostname": "sensor01", "type": "sensor",
                               "vendor": "plantguard", "product": "plantguard", "version": doc["observer"]["version"]}
    assert json.loads(formats()["ocsf"].render(beats[2]))["unmapped"]["seq"] == 2


def test_bad_kind_or_severity_is_refused():
    with pytest.raises(ValueError, match="kind"):
        E.Event("nonsense", "k", 0.0, "m")
    with pytest.raises(ValueError, match="severity"):
        E.Event("alert", "k", 0.0, "m", "urgent")


# -- one record per line, whatever a device sent ----------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(formats()))
def test_hostile_text_stays_one_printable_line(fmt):
    for e in hostile_events():
        line = formats()[fmt].render(e)
        bad = [ch for ch in line if not ch.isprintable() and ch != "\ufeff"]
        assert not bad, (fmt, e.kind, bad)
        line.encode("utf-8")        # no lone surrogate survives


@pytest.mark.parametrize("fmt", ["ecs", "ocsf"])
def test_json_formats_keep_the_text_visible(fmt):
    e = hostile_events()[0]
    doc = json.loads(formats()[fmt].render(e))
    assert doc["message"] == visible(HOSTILE)


def _cef_split(line: str) -> tuple[list[str], dict[str, str]]:
    """A CEF line parsed as the spec describes: 7 header fields split at unescaped pipes, then
    extension pairs split at unescaped '=' (a key is the word before it)."""
    head, i, field = [], 0, ""
    while len(head) < 7:
        ch = line[i]
        if ch == "\\":
            field += line[i + 1]
            i += 2
            continue
        if ch == "|":
            head.append(field)
            field = ""
        else:
            field += ch
        i += 1
    ext, pairs = line[i:], {}
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext))
    for j, m in enumerate(keys):
        # an escaped '=' never starts a key: the regex would only match after a space or start
        end = keys[j + 1].start() if j + 1 < len(keys) else len(ext)
        raw = ext[m.end():end]
        pairs[m.group(1)] = re.sub(r"\\(.)", lambda x: {"n": "\n", "r": "\r"}.get(x.group(1), x.group(1)), raw)
    return head, pairs


def test_cef_header_and_extension_escaping_round_trip():
    for e in hostile_events():
        line = formats()["cef"].render(e)
        head, ext = _cef_split(line)
        assert head[:4] == ["CEF:0", "plantguard", "plantguard", head[3]]
        assert head[5] == visible(HOSTILE) and head[6] == str(CEF_SEVERITY["high"])
        assert ext["msg"] == visible(HOSTILE, keep="\r\n")
        assert ext["externalId"] == e.id and "forged" not in ext
        assert ext["rt"] == "1713061807250"


def test_cef_extension_keys_are_cef_dictionary_keys(demo_events):
    known = set(json.loads(resources.files("plantguard.siem").joinpath("cef_keys.json").read_text())["keys"])
    for e in hostile_events() + demo_events:
        _, ext = _cef_split(formats()["cef"].render(e))
        assert set(ext) <= known, set(ext) - known


def _sd_params(line: str) -> tuple[str, list[tuple[str, str]]]:
    """The SD-ID and params of the one SD-ELEMENT, unescaping \\" \\\\ \\] (RFC 5424 §6.3.3)."""
    m = re.match(r"<\d+>1 \S+ \S+ plantguard - \S+ \[(\S+) ", line)
    i, out = m.end(), []
    while line[i] != "]":
        name_end = line.index('="', i)
        name, i, value = line[i:name_end], name_end + 2, ""
        while line[i] != '"':
            if line[i] == "\\":
                i += 1
            value += line[i]
            i += 1
        out.append((name, value))
        i += 1
        if line[i] == " ":
            i += 1
    assert line[i + 1:i + 3] == " \ufeff"
    return m.group(1), out


def test_rfc5424_structured_data_escaping_round_trip():
    for e in hostile_events():
        line = formats()["rfc5424"].render(e)
        assert re.match(r"<35>1 2024-04-14T02:30:07\.250000Z [!-~]{1,255} plantguard - [!-~]{1,32} \[", line)
        sd_id, params = _sd_params(line)
        assert sd_id == "plantguard@32473"
        d = dict(params)
        assert d["id"] == e.id and d["title"] == visible(HOSTILE) and d["site"] == visible(HOSTILE)
        assert all(re.fullmatch(r'[!-~]{1,32}', k) and not set(k) & set('=]"') for k, _ in params)
        assert line.endswith("\ufeff" + visible(HOSTILE))


# -- field names against the published schemas ---------------------------------------------------------

def _paths(doc, prefix=""):
    """Dotted paths of the leaves (an array of objects: its items' paths under its name)."""
    for k, v in doc.items():
        p = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _paths(v, p + ".")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                yield from _paths(x, p + ".")
        else:
            yield p, v


def _covered(path: str, names: dict[str, str]) -> str | None:
    """The schema name that covers a path (itself, or an 'object' above it)."""
    if path in names:
        return path
    parts = path.split(".")
    return next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                 if names.get(".".join(parts[:i])) == "object"), None)


ECS_TYPES = {"keyword": str, "match_only_text": str, "date": str, "ip": str, "long": int}


def test_every_ecs_field_is_in_the_shipped_ecs_subset(demo_events):
    spec = json.loads(resources.files("plantguard.siem").joinpath("ecs_fields.json").read_text())
    names = {**spec["fields"], **spec["custom"]}
    seen = set()
    for e in hostile_events() + demo_events:
        doc = json.loads(formats()["ecs"].render(e))
        for path, value in _paths(doc):
            name = _covered(path, names)
            assert name, f"{path} is neither ECS nor plantguard.*"
            assert not path.startswith("plantguard.") or name in spec["custom"]
            seen.add(name)
            if names[name] in ECS_TYPES:
                for v in value if isinstance(value, list) else [value]:
                    assert isinstance(v, ECS_TYPES[names[name]]), (path, v)
            if name in spec["allowed_values"]:
                assert set(value if isinstance(value, list) else [value]) <= set(spec["allowed_values"][name])
    assert seen == set(names), f"listed but never emitted: {set(names) - seen}"


def test_every_ocsf_attribute_is_in_the_shipped_ocsf_subset(demo_events):
    spec = json.loads(resources.files("plantguard.siem").joinpath("ocsf_fields.json").read_text())
    seen_classes = set()
    for e in hostile_events() + demo_events:
        doc = json.loads(formats()["ocsf"].render(e))
        cls = spec["classes"][str(doc["class_uid"])]
        seen_classes.add(doc["class_uid"])
        assert doc["category_uid"] == cls["category_uid"] and doc["class_name"] == cls["name"]
        assert cls["activities"][str(doc["activity_id"])] == doc["activity_name"]
        assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]
        assert spec["severity_id"][str(doc["severity_id"])] == doc["severity"]
        assert isinstance(doc["time"], int) and doc["metadata"]["uid"] == e.id
        names = {a: "object" if a in ("unmapped", "evidences.data") else "attr"
                 for a in spec["base"] + cls["attributes"]}
        for path, _ in _paths(doc):
            assert _covered(path, names), f"class {doc['class_uid']}: {path} is not an attribute we listed"
    assert seen_classes == {0, 2004, 4001, 5001}
