"""Ctrl-C must stop an analysis, never be mistaken for a capture that broke something.

Python runs the SIGINT handler when control comes back from compiled code (the numba kernels);
the KeyboardInterrupt it raises then surfaces as a SystemError ("returned a result with an
exception set") whose cause is the KeyboardInterrupt. The per-capture error handlers ask here."""
from __future__ import annotations


def interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt behind `exc` (itself, its cause or its context), if any."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None
