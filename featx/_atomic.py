"""Atomic file writes: write a temporary file beside the target, then rename it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private files; featx's outputs get the usual permissions.
UMASK = _read_umask()


def atomic_write(target: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a temporary binary file, then rename it to ``target``.

    Readers see the old file or the complete new one, never a partial one; on error
    the temporary file is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
