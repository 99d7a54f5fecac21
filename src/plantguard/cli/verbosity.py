"""-v / -q of the top-level command: one logger, "plantguard", to stderr. WARNING by default,
-v INFO, -vv DEBUG, -q ERROR only and no progress display. Every module logs to a child of it
(logging.getLogger(__name__)); the messages are shown literally (util.sanitize), since a file
name or a device's text may be in them."""
from __future__ import annotations

import logging
import sys

from plantguard.util.sanitize import terminal

LOGGER = "plantguard"
_state = {"quiet": False}


class _Plain(logging.Formatter):
    """'plantguard: info: message', control characters made visible; an exception in one line,
    its traceback only at DEBUG."""

    def format(self, record: logging.LogRecord) -> str:
        text = terminal(f"plantguard: {record.levelname.lower()}: {record.getMessage()}")
        if record.exc_info and logging.getLogger(LOGGER).isEnabledFor(logging.DEBUG):
            text += "\n" + self.formatException(record.exc_info)
        elif record.exc_info and record.exc_info[1] is not None:     # the exception, in one line
            exc = record.exc_info[1]
            first = str(exc).splitlines()[0] if str(exc) else ""
            text += terminal(f" ({type(exc).__name__}{': ' + first if first else ''}; -vv shows the traceback)")
        return text


class _Stderr(logging.StreamHandler):
    """Always the current sys.stderr (a test runner or a pipe wrapper may replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def level_for(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    return (logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG


def configure(verbose: int = 0, quiet: bool = False) -> None:
    """Set the level of the "plantguard" logger and give it one stderr handler (again on every
    invocation: the level is this command line's)."""
    log = logging.getLogger(LOGGER)
    log.setLevel(level_for(verbose, quiet))
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        h = _Stderr()
        h.setFormatter(_Plain())
        log.addHandler(h)
    log.propagate = False
    _state["quiet"] = quiet


def is_quiet() -> bool:
    """-q on the top-level command: no progress display either."""
    return _state["quiet"]
