"""Applying envelopes on the central store, on SQLite and on PostgreSQL: effect-once per
(sensor_id, seq), in order, a gap stops the batch, repeats of an alert are one alert, assets keep
their history, and items that do not validate are counted, not applied."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from plantguard.central.envelope import SCHEMA_VERSION, Envelope
from plantguard.server import tables as t
from plantguard.server.ingest import IngestRefused, apply_batch
from plantguard.store.db import open_engine, session_factory

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def env(seq, kind, body, sensor="s-1", site="Plant A", version=SCHEMA_VERSION, at=None):
    return Envelope(sensor_id=sensor, seq=seq, schema_version=version, kind=kind, site=site,
                    captured_at=at or T0 + timedelta(minutes=seq), sent_at=None, body=body)


def asset(ip, vendor="Siemens", role="plc", **kw):
    return {"ip": ip, "vendor": vendor, "role": role, "protocols": ["s7comm"], **kw}


@pytest.fixture
def store(store_url):
    engine = open_engine(store_url)
    sessions = session_factory(engine)
    with sessions() as s:
        site = t.Site(name="Plant A")
        s.add(site)
        s.flush()
        s.add_all([t.Sensor(id="s-1", name="line-1", site_id=site.id, health={}),
                   t.Sensor(id="s-2", name="line-2", site_id=site.id, health={})])
        s.commit()
    yield sessions
    engine.dispose()


def count(sessions, model, *where):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_each_envelope_applies_once_and_in_order(store):
    batch = [env(1, "run", {"kind": "assess", "run_id": "r1", "packets": 10}),
             env(2, "inventory", {"assets": [asset("10.0.0.1"), asset("10.0.0.2")]}),
             env(3, "alerts", {"alerts": [{"id": "e1", "kind": "alert", "key": "k", "message": "write to PLC",
                                           "severity": "high", "time": T0.timestamp()}]})]
    with store() as s:
        done = apply_batch(s, "s-1", batch)
    assert done.applied == [1, 2, 3] and done.duplicates == [] and done.next_seq == 4
    with store() as s:                       # the same batch again: at-least-once transport
        again = apply_batch(s, "s-1", batch)
    assert again.applied == [] and again.duplicates == [1, 2, 3] and again.next_seq == 4
    assert count(store, t.Envelope) == 3
    assert count(store, t.Asset) == 2 and count(store, t.Alert) == 1 and count(store, t.Run) == 1


def test_a_gap_stops_the_batch_and_names_the_next_seq(store):
    with store() as s:
        done = apply_batch(s, "s-1", [env(1, "health", {"version": "0.1.0"}), env(3, "health", {})])
    assert done.applied == [1] and done.gap and done.next_seq == 2
    with store() as s:
        done = apply_batch(s, "s-1", [env(5, "health", {})])
    assert done.applied == [] and done.gap and done.next_seq == 2
    assert count(store, t.Envelope) == 1


def test_concurrent_deliveries_of_one_batch_apply_it_once(store):
    batch = [env(i, "inventory", {"assets": [asset(f"10.0.1.{i}")]}) for i in range(1, 21)]
    results = []

    def deliver():
        with store() as s:
            results.append(apply_batch(s, "s-1", batch))
    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(len(r.applied) for r in results) == [0, 0, 0, 20]
    assert count(store, t.Envelope) == 20 and count(store, t.Asset) == 20


def test_asset_history_new_changed_gone(store):
    with store() as s:
        apply_batch(s, "s-1", [env(1, "inventory", {"assets": [asset("10.0.0.1", firmware="V4.2")]}),
                               env(2, "inventory", {"assets": [asset("10.0.0.1", vendor="Siemens AG")]}),
                               env(3, "inventory", {"assets": [], "gone": ["10.0.0.1"]})])
    with store() as s:
        a = s.scalar(select(t.Asset))
        changes = [(c.change, (c.before or {}).get("vendor"), (c.after or {}).get("vendor"))
                   for c in s.scalars(select(t.AssetChange).order_by(t.AssetChange.id))]
    assert changes == [("new", None, "Siemens"), ("changed", "Siemens", "Siemens AG"), ("gone", "Siemens AG", None)]
    assert a.gone_at is not None and a.vendor == "Siemens AG"


def test_invalid_items_are_counted_not_applied(store):
    with store() as s:
        apply_batch(s, "s-1", [env(1, "inventory", {"assets": [asset("10.0.0.1"), {"ip": 5}, "junk",
                                                                 {"role": "plc"}]}),
                               env(2, "findings", {"findings": [{"check": "x"}]})])
    with store() as s:
        sensor = s.get(t.Sensor, "s-1")
    assert count(store, t.Asset) == 1
    assert sensor.health["rejected_items"] == 4
    assert count(store, t.Envelope) == 2      # the envelopes themselves are applied: the outbox moves on


def test_refusals(store):
    with store() as s, pytest.raises(IngestRefused) as exc:
        apply_batch(s, "s-1", [env(1, "health", {}, sensor="s-2")])
    assert exc.value.status == 403
    with store() as s, pytest.raises(IngestRefused) as exc:
        apply_batch(s, "s-1", [env(1, "health", {}, site="Plant B")])
    assert exc.value.status == 403 and "Plant A" in exc.value.detail
    with store() as s, pytest.raises(IngestRefused) as exc:
        apply_batch(s, "s-1", [env(1, "health", {}, version="0.9")])
    assert exc.value.status == 426 and "too old" in exc.value.detail
    with store() as s, pytest.raises(IngestRefused) as exc:
        apply_batch(s, "unknown", [env(1, "health", {}, sensor="unknown")])
    assert exc.value.status == 403
    assert count(store, t.Envelope) == 0


def test_clock_skew_is_kept_beside_receive_time(store):
    late = T0 + timedelta(hours=3)
    e = env(1, "health", {}).model_copy(update={"sent_at": late})
    with store() as s:
        apply_batch(s, "s-1", [e], received_at=T0)
    with store() as s:
        sensor = s.get(t.Sensor, "s-1")
        row = s.scalar(select(t.Envelope))
    assert sensor.clock_skew_s == pytest.approx(3 * 3600)
    assert row.captured_at.replace(tzinfo=timezone.utc) == T0 + timedelta(minutes=1)


def test_nul_characters_a_device_sent_do_not_block_the_sensor(store):
    with store() as s:
        done = apply_batch(s, "s-1", [env(1, "inventory", {"assets": [asset("10.0.0.9", vendor="Sie\x00mens",
                                                                          hostnames=["plc\x00-1"])]}),
                                      env(2, "alerts", {"alerts": [{"id": "n1", "message": "name \x00 here",
                                                                     "severity": "high"}]})])
    assert done.applied == [1, 2]
    with store() as s:
        a = s.scalar(select(t.Asset))
        al = s.scalar(select(t.Alert))
    assert a.vendor == "Sie\u2400mens" and a.data["hostnames"] == ["plc\u2400-1"]
    assert al.message == "name \u2400 here"


def test_identity_product_and_firmware_are_kept_for_filters(store):
    with store() as s:
        apply_batch(s, "s-1", [env(1, "inventory", {"assets": [
            asset("10.0.0.1", identity={"product": "1756-ENBT/A", "firmware": "4.3"}), asset("10.0.0.2")]})])
    with store() as s:
        rows = {a.key: (a.product, a.firmware) for a in s.scalars(select(t.Asset))}
    assert rows == {"10.0.0.1": ("1756-ENBT/A", "4.3"), "10.0.0.2": (None, None)}
    from plantguard.server.api.common import Principal
    from plantguard.server.api.inventory import asset_query
    viewer = Principal("token", "t", "viewer")
    with store() as s:
        assert [a.key for a, _ in s.execute(asset_query(s, viewer, firmware="4.3"))] == ["10.0.0.1"]
        assert [a.key for a, _ in s.execute(asset_query(s, viewer, q="enbt"))] == ["10.0.0.1"]
