"""Reading a firewall configuration as text, refusing what is not one: binary bytes, a file or a
line beyond any real device's size. Shared by the line-based vendor parsers."""
from __future__ import annotations

from pathlib import Path

from plantguard.firewall.errors import FirewallConfigError

MAX_BYTES = 64 * 1024 * 1024       # far beyond any device configuration
MAX_LINE = 64 * 1024               # a real configuration line (even a certificate chunk) is shorter


def read_config(path: str | Path) -> str:
    """The file's text; FirewallConfigError naming the file when it cannot be a configuration."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise FirewallConfigError(str(p), None, f"{size} bytes is not a device configuration")
        data = p.read_bytes()
    except OSError as exc:
        raise FirewallConfigError(str(p), None, f"cannot read: {exc.strerror or exc}") from None
    return decode_config(data, str(p))


def decode_config(data: bytes, path: str) -> str:
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise FirewallConfigError(path, line, "binary data (NUL byte), not a configuration text")
    sample = data[:65536]
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 13))
    if sample and control * 20 > len(sample):            # more than 5 % control bytes
        raise FirewallConfigError(path, None, "binary data (control bytes), not a configuration text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        try:
            text = data.decode("latin-1")
        except UnicodeDecodeError:                      # pragma: no cover - latin-1 decodes all
            raise FirewallConfigError(path, None, f"not text: {exc.reason}") from None
    check_lines(text, path)
    return text


def check_lines(text: str, path: str) -> None:
    start = 0
    lineno = 1
    while True:
        end = text.find("\n", start)
        stop = len(text) if end < 0 else end
        if stop - start > MAX_LINE:
            raise FirewallConfigError(path, lineno, f"line of {stop - start} characters "
                                      f"(more than {MAX_LINE}): not a configuration line")
        if end < 0:
            return
        start, lineno = end + 1, lineno + 1
