"""Which paths may be read as captures: regular files only. A FIFO given as a capture would block
the open (and then the read) for ever, a character device such as /dev/zero or /dev/urandom would
stream without end, a socket cannot be opened at all; each is refused with one line before any
read. Directories are not refused here: the caller expands them into the captures below them.

`check_capture_path(path)` is the check for a path as given on the command line;
`open_capture(path)` opens a checked path without blocking and checks the opened file again, so a
path swapped for a FIFO between the check and the open is refused too."""
from __future__ import annotations

import os
import stat
from typing import BinaryIO

from plantguard.errors import InputError


def file_kind(mode: int) -> str:
    """'a FIFO', 'a character device', ... for a file mode that is not a regular file."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _refusal(path, mode: int) -> InputError:
    return InputError(f"{path}: cannot read capture ({file_kind(mode)}, not a regular file)")


def check_capture_path(path: str | os.PathLike) -> None:
    """Raise InputError (one line naming the path) unless `path` is a regular file or a directory.
    Symbolic links are followed: a link to a capture is a capture."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read capture ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    raise _refusal(path, mode)


def open_capture(path: str | os.PathLike) -> BinaryIO:
    """The regular file at `path`, opened for reading without waiting on a FIFO's writer; InputError
    when it is anything else (directories included: open the captures below them instead)."""
    check_capture_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"{path}: cannot read capture ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refusal(path, mode)
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)    # no effect on a regular file's reads; restores the usual flags
    return os.fdopen(fd, "rb")
