"""The artifact directory: manifest, checksums, atomic writes, verified reads.

An artifact is a directory with ``featx.json`` (the manifest) and the files it lists,
each with its sha256 and size. It is written in a staging directory next to its
destination and renamed into place, so readers never see half an artifact. Files are
read once into memory and verified there, so what is checked is what is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx._atomic import UMASK, atomic_write
from featx.errors import ArtifactIntegrityError, ModelLoadError

MANIFEST = "featx.json"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (a temporary file, then a rename)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def is_artifact(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a featx manifest."""
    return (Path(path) / MANIFEST).is_file()


@contextmanager
def staging(out: Path, *, force: bool) -> Iterator[Path]:
    """Yield an empty staging directory; on success, move it to ``out`` atomically.

    Refuses an existing ``out`` unless ``force``; with ``force`` the old artifact is
    replaced only once the new one is complete. On error nothing is left behind.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists. Choose another path or pass force=True.")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        os.chmod(stage, 0o777 & ~UMASK)
        yield stage
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            os.replace(out, old)
            os.replace(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def seal(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the sha256 and size of every file in ``directory`` to ``manifest`` and write it."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name != MANIFEST:
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {**manifest, "format_version": FORMAT_VERSION, "files": files}
    write_json_atomic(directory / MANIFEST, manifest)
    return manifest


@dataclass(frozen=True)
class Artifact:
    """An opened artifact: its path and manifest, files checked for presence and size.

    Use :meth:`read` to get a file's bytes verified against its sha256.
    """

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Artifact:
        """Open the artifact at ``path``.

        Raises:
            FileNotFoundError: If ``path`` is not a directory with a manifest.
            ModelLoadError: If the manifest is unreadable or of an unknown format.
            ArtifactIntegrityError: If a listed file is missing or has the wrong size.
        """
        root = Path(path)
        if not (root / MANIFEST).is_file():
            raise FileNotFoundError(
                f"No {MANIFEST} in {root}: not a featx artifact. "
                f"Create one with: featx export <model> {root}"
            )
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"Cannot read {root / MANIFEST}: {err}") from err
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if version != FORMAT_VERSION or not isinstance(manifest.get("files"), dict):
            raise ModelLoadError(
                f"{root / MANIFEST} has format_version {version!r}; this featx reads "
                f"{FORMAT_VERSION}. Re-export the model with this featx version."
            )
        for name, entry in manifest["files"].items():
            file = root / name
            if not file.is_file():
                raise ArtifactIntegrityError(
                    f"Artifact {root} is missing {name}. Re-export it: featx export <model> "
                    f"{root} --force"
                )
            if file.stat().st_size != entry["bytes"]:
                raise ArtifactIntegrityError(
                    f"Artifact file {file} has {file.stat().st_size} bytes, the manifest says "
                    f"{entry['bytes']}: it was altered or truncated. Re-export the artifact."
                )
        return cls(root, manifest)

    def read(self, name: str) -> bytes:
        """Return the bytes of ``name`` after checking them against the manifest's sha256."""
        entry = self.manifest["files"].get(name)
        if entry is None:
            raise ArtifactIntegrityError(f"{name} is not listed in {self.path / MANIFEST}.")
        data = (self.path / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise ArtifactIntegrityError(
                f"Checksum mismatch for {self.path / name}: sha256 {digest[:16]}..., manifest "
                f"says {entry['sha256'][:16]}.... The file was altered; re-export the artifact "
                "or restore the file."
            )
        return data

    def read_json(self, name: str) -> Any:
        """Read a verified JSON file of the artifact."""
        return json.loads(self.read(name))
