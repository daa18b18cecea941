"""Atomic file writes: a temporary file beside the target, then a rename.

Every file densevid writes (submissions, reports, feature arrays and their sidecars)
goes through here, so a killed run never leaves a half-written file behind under the
real name, and resuming can trust any file that exists.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from densevid.errors import DensevidError


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[Any]], Any], *, binary: bool = False
) -> Path:
    """Calls ``write(file)`` on a temporary file beside ``path``, syncs it, renames it.

    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600, so
    a report can be served by a web server like any other file. Failures to write
    become one DensevidError naming the file; the old file, if any, is left as it was.
    """
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        mode = "wb" if binary else "w"
        text_args = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **text_args) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except OSError as e:
        _remove(tmp)
        raise DensevidError(f"{p}: cannot write ({e.strerror or e})") from e
    except UnicodeEncodeError as e:  # a lone surrogate, e.g. from a JSON "\ud800"
        _remove(tmp)
        bad = e.object[e.start : e.end]
        raise DensevidError(
            f"{p}: cannot write {bad!r}: not valid Unicode text ({e.reason})"
        ) from e
    except BaseException:
        _remove(tmp)
        raise
    return p


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Writes UTF-8 text atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda f: f.write(text))


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


@functools.cache
def _umask() -> int:
    """The process umask, read once (reading it means setting it, briefly)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
