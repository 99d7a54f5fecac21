"""The envelope wire format: a batch survives a round trip; hostile input (a decompression bomb,
garbage, a truncated frame, wrong types, extra keys) is refused with one line, fast and in
bounded memory; schema versions are judged as central.md says."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import zstandard

from plantguard.central import envelope
from plantguard.central.envelope import Envelope, EnvelopeError, decode_batch, encode_batch, version_verdict

T = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=timezone.utc)


def env(seq=1, **kw) -> Envelope:
    fields = dict(sensor_id="s-1", seq=seq, schema_version=envelope.SCHEMA_VERSION, kind="inventory",
                  site="plant a", captured_at=T, body={"assets": [{"ip": "10.0.0.1"}], "gone": []})
    return Envelope(**{**fields, **kw})


def raw(records) -> bytes:
    return zstandard.ZstdCompressor().compress(json.dumps(records).encode())


def good_record(**kw) -> dict:
    return {**json.loads(env().model_dump_json()), **kw}


def refused(data: bytes, **kw) -> str:
    with pytest.raises(EnvelopeError) as e:
        decode_batch(data, **kw)
    text = str(e.value)
    assert text and "\n" not in text and len(text) < 300
    return text


def test_round_trip_keeps_every_field():
    envs = [env(1), env(2, kind="health", sent_at=T, body={"outbox_depth": 3, "text": "ünïcode ☃"})]
    data = encode_batch(envs)
    assert data[:4] == b"\x28\xb5\x2f\xfd"            # a zstd frame
    assert decode_batch(data) == envs


def test_a_gigabyte_bomb_is_refused_fast_in_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.zst"
    cobj = zstandard.ZstdCompressor(level=1).compressobj()   # streamed: the frame declares no size
    zeros = b"\0" * (1 << 20)
    with open(bomb, "wb") as f:
        for _ in range(1024):
            f.write(cobj.compress(zeros))
        f.write(cobj.flush())
    assert bomb.stat().st_size < 1 << 20 and zstandard.frame_content_size(bomb.read_bytes()) == -1
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report the peak of
    # the pytest process that forked it
    probe = (
        "import re, sys, time\n"
        "from plantguard.central.envelope import EnvelopeError, decode_batch\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    decode_batch(data)\n"
        "    print('accepted')\n"
        "except EnvelopeError as e:\n"
        "    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "    print(time.monotonic() - t, hwm, e)\n")
    out = subprocess.run([sys.executable, "-c", probe, str(bomb)], capture_output=True, text=True, timeout=60)
    seconds, maxrss_kib, message = out.stdout.split(" ", 2)
    assert "expands past" in message, out.stdout + out.stderr
    assert float(seconds) < 2.0
    assert int(maxrss_kib) < 400 << 10          # the 64 MiB ceiling plus the interpreter, never 1 GiB


def test_a_frame_declaring_too_much_is_refused_before_decompressing():
    data = zstandard.ZstdCompressor().compress(b" " * 5000)
    assert "declares 5000" in refused(data, max_bytes=4096)


@pytest.mark.parametrize("data", [b"not zstd at all", b"\x28\xb5\x2f\xfd" + b"\xff" * 40, b"\0" * 3])
def test_garbage_is_refused(data):
    refused(data)


def test_truncated_batches_are_refused():
    data = encode_batch([env(i) for i in range(1, 50)])
    for cut in (1, 4, 10, len(data) // 2, len(data) - 1):
        refused(data[:cut])


@pytest.mark.parametrize("record", [
    good_record(seq="1"),                           # no coercion of text to numbers
    good_record(seq=0),
    good_record(seq=True),
    good_record(kind="exfiltrate"),
    good_record(captured_at="2026-12-03T12:00:00"),   # a time without its zone
    good_record(captured_at=1764763200),
    good_record(body=["not", "a", "mapping"]),
    good_record(schema_version="one"),
    good_record(sensor_id=""),
    good_record(sensor_id="x" * 65),
    {k: v for k, v in good_record().items() if k != "site"},
    good_record(extra="key"),
])
def test_wrong_types_missing_and_extra_keys_are_refused(record):
    refused(raw([record]))


@pytest.mark.parametrize("doc", [[], {"sensor_id": "s-1"}, "text", None, [[good_record()]]])
def test_a_batch_must_be_a_non_empty_array_of_envelopes(doc):
    refused(raw(doc))


def test_deep_nesting_is_refused_not_a_crash():
    deep = b'[{"sensor_id":"s","seq":1,"schema_version":"1.0","kind":"run","site":"","captured_at":' \
           b'"2026-12-03T12:00:00Z","body":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}]"
    t = time.monotonic()
    refused(zstandard.ZstdCompressor().compress(deep))
    assert time.monotonic() - t < 2


def test_version_verdicts(monkeypatch):
    assert version_verdict(envelope.SCHEMA_VERSION) == "ok"
    monkeypatch.setattr(envelope, "SCHEMA_VERSION", "1.3")
    assert [version_verdict(v) for v in ("1.3", "1.0", "1.2", "1.4", "1.30", "0.9", "2.3", "2", "x.y", "", None)] \
        == ["ok", "older", "older", "newer", "newer", "too-old", "too-old", "too-old", "too-old", "too-old",
            "too-old"]
