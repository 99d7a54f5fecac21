"""The published OpenAPI document: served without a credential, a well-formed OpenAPI 3 document
whose asset, flow and finding schemas are the JSON report contract's models; and schemathesis
over every operation of the in-process app with an admin token: no 5xx, answers as documented."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from plantguard import contract
from support.central_app import central_app

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with central_app(f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'central.db'}") as c:
        yield c


@pytest.fixture(scope="module")
def document(served):
    r = served.client.get("/openapi.json")          # no credential
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_openapi_document_is_valid(document):
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate is not None:
        validate(document)
    # Structure checks, with or without the validator.
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
    for ref in set(_refs(document)):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/api/v1/"), path
        for method, op in item.items():
            assert method in HTTP_METHODS, (path, method)
            assert op["responses"] and all(re.fullmatch(r"[1-5]\d\d|default", code) for code in op["responses"])
            assert op.get("summary"), f"{method} {path} has no summary"
            for p in op.get("parameters", []):
                assert p["in"] in ("path", "query", "header", "cookie") and "schema" in p
                if p["in"] == "path":
                    assert p["required"] and "{" + p["name"] + "}" in path
            operation_ids.append(op["operationId"])
    assert len(operation_ids) == len(set(operation_ids)) and len(operation_ids) >= 25


def _component(document, model) -> dict:
    """The component schema FastAPI published for a pydantic model (maybe under an -Output name)."""
    schemas = document["components"]["schemas"]
    for name in (model.__name__, f"{model.__name__}-Output"):
        if name in schemas:
            return schemas[name]
    raise AssertionError(f"{model.__name__} is not in the published schemas: {sorted(schemas)}")


@pytest.mark.parametrize("model, wrapper, field", [(contract.Asset, "AssetOut", "asset"),
                                                   (contract.Flow, "FlowOut", "flow"),
                                                   (contract.Finding, "FindingOut", "finding")])
def test_records_are_the_report_contracts_models(document, model, wrapper, field):
    published = _component(document, model)
    own = model.model_json_schema()
    assert list(published["properties"]) == list(own["properties"])
    assert sorted(published.get("required", [])) == sorted(own.get("required", []))
    for name, prop in own["properties"].items():
        assert published["properties"][name].get("description") == prop.get("description"), name
    assert published.get("additionalProperties") == own.get("additionalProperties")
    # and the API's record wraps exactly that schema
    ref = document["components"]["schemas"][wrapper]["properties"][field]["$ref"]
    assert document["components"]["schemas"][ref.rsplit("/", 1)[1]] is published


def test_input_the_store_cannot_hold_is_a_422_like_fastapis_own(store_url):
    """What schemathesis found: ids past the INTEGER range and NUL characters were 500s (SQLite
    cannot bind the number, PostgreSQL refuses both), checks in the routes answered 422 with a string
    detail where the document promises HTTPValidationError's list."""
    with central_app(store_url) as c:
        h = c.headers("admin")
        answers = [c.client.get(f"/api/v1/assets/{2**63}", headers=h),
                   c.client.get("/api/v1/audit", params={"cursor": 2**31}, headers=h),
                   c.client.get("/api/v1/alerts", params={"severity": "loud"}, headers=h),
                   c.client.post(f"/api/v1/alerts/{c.ids['alert_id']}/state", json={"state": "closed"}, headers=h),
                   c.client.post("/api/v1/tokens", json={"role": "sensor"}, headers=h)]
        for r in answers:
            assert r.status_code == 422, (r.request.url, r.status_code, r.text)
            detail = r.json()["detail"]
            assert isinstance(detail, list) and all({"loc", "msg", "type"} <= set(d) for d in detail), r.text
        assert c.client.get(f"/api/v1/assets/{2**31 - 1}", headers=h).status_code == 404
        # SQLite stores NUL characters; PostgreSQL cannot
        nul = [c.client.get("/api/v1/runs", params={"site": "A\x00"}, headers=h),
               c.client.post("/api/v1/login", json={"username": "a\x00b", "password": "x"})]
        expected = [422, 422] if store_url.startswith("postgresql") else [200, 401]
        assert [r.status_code for r in nul] == expected, [r.text for r in nul]


EXAMPLES = 50          # per operation: ~25 s for the whole API on SQLite and PostgreSQL


@pytest.mark.slow
def test_api_fuzz_no_server_error_and_documented_answers(store_url):
    """Every operation, EXAMPLES generated requests each, as an admin. (schemathesis.pytest.from_fixture
    fails on pytest 9, reading Function._nodeid, so each operation's strategy is driven here.)"""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error, response_schema_conformance
    failures, operations = {}, 0
    with central_app(store_url) as served:
        headers = served.headers("admin")
        for result in schemathesis.openapi.from_asgi("/openapi.json", served.client.app).get_all_operations():
            operation = result.ok()
            operations += 1

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)
            def call(case):
                case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])
            try:
                call()
            except (Exception, BaseExceptionGroup) as exc:    # collected: one run names every failing operation
                failures[operation.label] = str(exc)[:1500]
    assert operations >= 25
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
