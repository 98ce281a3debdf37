"""Atomic file writes: a temporary file beside the target, then one ``os.replace``.

A reader (or a crash) never sees a half-written output, model or checkpoint file. The temp file
is named ``.NAME.XXXXXXXX.tmp`` and, on POSIX, holds an exclusive ``flock`` until it has been
renamed into place: a temp file of that pattern that nobody has locked was left by a process that
died (SIGKILL, power loss), and :func:`remove_stale_temps` deletes exactly those.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no locks, and an open file cannot be renamed
    fcntl = None

_UMASK = os.umask(0)
os.umask(_UMASK)

# mkstemp's random part: 8 characters of [a-z0-9_] (tempfile._RandomNameSequence).
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def atomic_write(path: str | os.PathLike, write: Callable) -> None:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    replaced = False
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "live": see remove_stale_temps
            write(f)
            f.flush()
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual mode
            if fcntl is not None:
                os.replace(tmp, path)  # still locked, so a cleaner never takes it for stale
                replaced = True
        if not replaced:
            os.replace(tmp, path)
    except BaseException:
        if not replaced and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def remove_stale_temps(folder: str | os.PathLike, suffixes: Iterable[str]) -> list[Path]:
    """Delete the temp files :func:`atomic_write` left in ``folder`` for targets ending in one of
    ``suffixes`` (``.png`` ...) whose writer is gone; returns them. Nothing else is touched: not
    other names, not sub-folders, not a temp file another live process is writing (it is locked).
    Without ``fcntl`` (Windows) nothing is removed, as liveness cannot be told.
    """
    folder, ends = Path(folder), tuple(s.lower() for s in suffixes)
    if fcntl is None or not folder.is_dir():
        return []
    removed = []
    for entry in os.scandir(folder):
        m = _TEMP_NAME.match(entry.name)
        if not m or not m["name"].lower().endswith(ends):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            with open(entry.path, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(entry.path)
        except OSError:  # locked by a live writer (BlockingIOError), or gone, or not ours to touch
            continue
        removed.append(Path(entry.path))
    return removed
