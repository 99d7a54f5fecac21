"""`-` as a capture argument: the capture comes on standard input (`cat x.pcap | plantguard
inventory -`, `tcpdump -w - | ...`). It is copied, a megabyte at a time, into a temporary file
that the readers then map like any capture (pcap, pcapng, gzip of either: recognised by their
bytes, as for files), and removed afterwards; memory stays bounded whatever the size. The
result names it `<stdin>`, never the temporary file."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from plantguard.cli import fail

STDIN = "-"
STDIN_NAME = "<stdin>"
COPY_BLOCK = 1 << 20


@contextmanager
def spooled(paths) -> Iterator[tuple[list, str | None]]:
    """(the paths with `-` replaced by the spooled file, that file's name or None)."""
    if sum(str(p) == STDIN for p in paths) > 1:
        fail("- (standard input) can be given once")
    if not any(str(p) == STDIN for p in paths):
        yield list(paths), None
        return
    if sys.stdin is None or sys.stdin.isatty():
        fail("-: no capture on standard input (it is a terminal); pipe one in, e.g. cat x.pcap | plantguard ... -")
    fd, tmp = tempfile.mkstemp(prefix="plantguard-stdin-", suffix=".cap")
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                shutil.copyfileobj(sys.stdin.buffer, fh, COPY_BLOCK)
            except OSError as exc:
                fail(f"{STDIN_NAME}: cannot spool the capture to {tmp} ({exc.strerror or exc})")
        if os.path.getsize(tmp) == 0:
            fail(f"{STDIN_NAME}: empty (no capture on standard input)")
        yield [Path(tmp) if str(p) == STDIN else p for p in paths], tmp
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def rename(result, tmp: str | None) -> None:
    """The analysis result names the spooled file `<stdin>` (captures, flows, observations,
    warnings and notes)."""
    if tmp is None:
        return
    for c in result.captures:
        if c.path == tmp:
            c.path = STDIN_NAME
        c.warnings = [w.replace(tmp, STDIN_NAME) for w in c.warnings]
    for f in result.flows:
        if f.capture == tmp:
            f.capture = STDIN_NAME
    for o in result.observations:
        if o.capture == tmp:
            o.capture = STDIN_NAME
    result.notes = [n.replace(tmp, STDIN_NAME) for n in result.notes]
