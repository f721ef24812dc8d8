"""Files featx writes: atomically (a temporary file, then a rename), never over one by accident."""

from __future__ import annotations

import hashlib
import json
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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (a temporary file, then a rename)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_existing(
    path: str | os.PathLike[str] | None, force: bool, *, hint: str = "pass force=True"
) -> None:
    """Raise FileExistsError if ``path`` exists and ``force`` is false (before any work).

    ``hint`` names the override in the caller's terms (``--force`` on the command line).
    """
    if path is not None and Path(path).exists() and not force:
        raise FileExistsError(f"{path} already exists. Choose another path or {hint}.")
