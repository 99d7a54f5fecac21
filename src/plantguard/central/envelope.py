"""The envelope: one unit of sensor -> central data, carrying (sensor_id, seq, schema_version,
captured_at, sent_at) beside its body. A batch is a JSON array of envelopes, zstd-compressed.

Both sides import this module, so there is one definition of the wire format. Anything decoded is
hostile: decode_batch stream-decompresses with a ceiling on the output (a small frame that expands
to gigabytes is refused after max_bytes, never held), parses strictly (no coercion, no extra keys)
and turns every problem into one EnvelopeError line."""
from __future__ import annotations

import io
import json
from typing import Any, Literal

import zstandard
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from plantguard.errors import InputError

SCHEMA_VERSION = "1.0"          # major.minor: same major and an older or equal minor is accepted
KINDS = ("run", "inventory", "findings", "alerts", "flows", "baseline", "health")
Kind = Literal["run", "inventory", "findings", "alerts", "flows", "baseline", "health"]
CONTENT_TYPE = "application/vnd.plantguard.envelopes+zstd"
MAX_BATCH_BYTES = 64 << 20      # decompressed size of one batch
_CHUNK = 1 << 20
_LEVEL = 3


class EnvelopeError(InputError):
    """Input that is not a valid envelope batch, as one line."""


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    sensor_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)
    schema_version: str = Field(pattern=r"^\d{1,4}\.\d{1,4}$")
    kind: Kind
    site: str = Field(max_length=200)
    captured_at: AwareDatetime
    sent_at: AwareDatetime | None = None
    body: dict[str, Any]


_BATCH = TypeAdapter(list[Envelope])


def encode_batch(envs: list[Envelope]) -> bytes:
    """The envelopes as one zstd frame holding a JSON array."""
    return zstandard.ZstdCompressor(level=_LEVEL).compress(_BATCH.dump_json(envs))


def decode_batch(data: bytes, max_bytes: int = MAX_BATCH_BYTES) -> list[Envelope]:
    """The envelopes of an encoded batch; EnvelopeError when it is not zstd, expands past
    max_bytes, is not a JSON array of valid envelopes, or is empty."""
    raw = _decompress(data, max_bytes)
    try:
        envs = _BATCH.validate_json(raw, strict=True)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "batch"
        raise EnvelopeError(f"bad envelope batch: {where}: {_one_line(err.get('msg', 'invalid'))}") from None
    if not envs:
        raise EnvelopeError("bad envelope batch: no envelopes")
    return envs


def _decompress(data: bytes, max_bytes: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)) or not data:
        raise EnvelopeError("bad envelope batch: empty")
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError:
        raise EnvelopeError("bad envelope batch: not zstd data") from None
    if declared > max_bytes:
        raise EnvelopeError(f"envelope batch too large: declares {declared} bytes, limit {max_bytes}")
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as r:
            while chunk := r.read(_CHUNK):
                out += chunk
                if len(out) > max_bytes:       # a frame need not declare its size: stop at the ceiling
                    raise EnvelopeError(f"envelope batch too large: expands past {max_bytes} bytes")
    except zstandard.ZstdError as e:
        raise EnvelopeError(f"bad envelope batch: {_one_line(str(e))}") from None
    if not out:
        raise EnvelopeError("bad envelope batch: truncated or empty zstd frame")
    return bytes(out)


def version_verdict(theirs: str) -> Literal["ok", "older", "too-old", "newer"]:
    """How a peer's schema version compares with ours: ok (equal), older (same major, older
    minor: accepted), newer (same major, newer minor), too-old (another major, or unreadable)."""
    mine, other = _parse(SCHEMA_VERSION), _parse(theirs)
    if other is None or other[0] != mine[0]:
        return "too-old"
    if other[1] == mine[1]:
        return "ok"
    return "older" if other[1] < mine[1] else "newer"


def _parse(version: Any) -> tuple[int, int] | None:
    if not isinstance(version, str):
        return None
    major, dot, minor = version.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)


def body_json(body: dict) -> bytes:
    """A body as compact JSON (what the size bounds count); ValueError when it is not JSON-safe."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]
