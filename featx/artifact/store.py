"""The artifact directory: checksums, atomic writes, verified reads.

An artifact is a directory with ``featx.json`` (the :class:`~featx.artifact.Manifest`)
and the files it lists, each with its sha256 and size. It is written in a staging
directory next to its destination and renamed into place, so readers never see half an
artifact. Files are read once into memory and verified there, so what is checked is what
is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Set
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from featx.artifact.manifest import (
    MANIFEST,
    MEMBERS_DIR,
    READABLE_FORMATS,
    EncoderSection,
    FileEntry,
    Kind,
    Manifest,
)
from featx.errors import ArtifactIntegrityError, ModelLoadError
from featx.files import UMASK, refuse_existing, sha256_file, write_json_atomic

# The manifest's own checksum: the sha256 of its JSON without this key (sorted keys, compact),
# so an edited manifest (a max_length changed by hand) is refused like an edited graph.
SEAL = "manifest_sha256"


def seal_digest(data: dict[str, Any]) -> str:
    """The sha256 of a manifest's JSON form without its seal (see :data:`SEAL`)."""
    body = {key: value for key, value in data.items() if key != SEAL}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write ``manifest`` with its seal to ``directory`` (atomically)."""
    data = manifest.to_dict()
    write_json_atomic(directory / MANIFEST, {**data, SEAL: seal_digest(data)})


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
    refuse_existing(out, force)
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


def seal(directory: Path, manifest: Manifest) -> Manifest:
    """List the sha256 and size of every file in ``directory`` in ``manifest``; write it."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name != MANIFEST:
            files[name] = FileEntry(sha256_file(path), path.stat().st_size)
    sealed = manifest.with_files(files)
    write_manifest(directory, sealed)
    return sealed


@dataclass(frozen=True)
class Artifact:
    """An opened artifact: its path and manifest, files checked for presence and size.

    Use :meth:`read` to get a file's bytes verified against its sha256.
    """

    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Artifact:
        """Open the artifact at ``path``.

        Raises:
            FileNotFoundError: If ``path`` is not a directory with a manifest.
            ModelLoadError: If the manifest is unreadable or of an unknown format.
            ArtifactIntegrityError: If the manifest was edited after it was sealed, or a
                listed file is missing or has the wrong size.
        """
        root = Path(path)
        if not (root / MANIFEST).is_file():
            raise FileNotFoundError(
                f"No {MANIFEST} in {root}: not a featx artifact. "
                f"Create one with: featx export <model> {root}"
            )
        try:
            data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"Cannot read {root / MANIFEST}: {err}") from err
        version = data.get("format_version") if isinstance(data, dict) else None
        if version not in READABLE_FORMATS or not isinstance(data.get("files"), dict):
            readable = " and ".join(map(str, READABLE_FORMATS))
            raise ModelLoadError(
                f"{root / MANIFEST} has format_version {version!r}; this featx reads "
                f"{readable}. Re-export the model with this featx version."
            )
        # Manifests of earlier featx releases have no seal; every sealed one must match it.
        if SEAL in data and data[SEAL] != seal_digest(data):
            raise ArtifactIntegrityError(
                f"{root / MANIFEST} was edited after it was sealed: its {SEAL} does not match "
                "its content. Restore the file or re-export the artifact."
            )
        try:
            manifest = Manifest.from_dict(data)
        except ModelLoadError as err:
            raise ModelLoadError(f"{root / MANIFEST}: {err}") from err
        for name, entry in manifest.files.items():
            file = root / name
            if not file.is_file():
                raise ArtifactIntegrityError(
                    f"Artifact {root} is missing {name}. Re-export it: featx export <model> "
                    f"{root} --force"
                )
            if file.stat().st_size != entry.bytes:
                raise ArtifactIntegrityError(
                    f"Artifact file {file} has {file.stat().st_size} bytes, the manifest says "
                    f"{entry.bytes}: it was altered or truncated. Re-export the artifact."
                )
        return cls(root, manifest)

    def read(self, name: str) -> bytes:
        """Return the bytes of ``name`` after checking them against the manifest's sha256."""
        entry = self.manifest.files.get(name)
        if entry is None:
            raise ArtifactIntegrityError(f"{name} is not listed in {self.path / MANIFEST}.")
        data = (self.path / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise ArtifactIntegrityError(
                f"Checksum mismatch for {self.path / name}: sha256 {digest[:16]}..., manifest "
                f"says {entry.sha256[:16]}.... The file was altered; re-export the artifact "
                "or restore the file."
            )
        return data

    def read_json(self, name: str) -> Any:
        """Read a verified JSON file of the artifact."""
        return json.loads(self.read(name))

    def verify_all(self) -> None:
        """Check every listed file against its sha256 (raises on the first altered one)."""
        for name in self.manifest.files:
            self.read(name)

    def source_folder(self) -> Path:
        """The model folder the root encoder was exported from (torch needs it).

        A fine-tuned encoder keeps its Hugging Face folder inside the artifact (``hf/``).

        Raises:
            ModelLoadError: If the artifact has no encoder.
            FileNotFoundError: If that folder is gone.
        """
        source = self.manifest.source
        if source is None or source.path is None:
            raise ModelLoadError(f"{self.path} holds no encoder exported from a model folder.")
        folder = Path(source.path)
        folder = folder if folder.is_absolute() else self.path / folder
        if not folder.is_dir():
            raise FileNotFoundError(
                f"The torch backend needs the source model folder {folder}, which is gone. "
                "Load the artifact with backend='onnx', or re-export it."
            )
        return folder


def copy_encoder(source: Path, target: Path, *, graphs: Set[str] | None = None) -> Manifest:
    """Copy the root encoder of artifact ``source`` into ``target``, verifying each file.

    A trained artifact used as an encoder gives only its encoder: its head or tagger files
    and further member encoders stay behind. With ``graphs`` (ONNX file names), only those
    graphs are copied: a precision with none of its graphs left is dropped, and a kept
    precision whose full graph is left out keeps its fast graph (the default vector) only.
    Returns the copy's (encoder) manifest, which is written to ``target`` too.

    Raises:
        ModelLoadError: If ``source`` holds no encoder.
        ArtifactIntegrityError: If a file does not match its checksum.
    """
    manifest = Artifact.open(source).manifest
    if manifest.encoder is None:
        raise ModelLoadError(f"{source} holds no encoder to copy.")
    skip = set(manifest.trained_files())
    encoder = manifest.encoder
    if graphs is not None:
        encoder = _with_graphs(encoder, graphs)
        every = {
            v.file for v in (*manifest.encoder.variants.values(), *manifest.encoder.fast.values())
        }
        skip |= every - set(graphs)
    files = {}
    target.mkdir(parents=True, exist_ok=True)
    for name, entry in manifest.files.items():
        if name in skip or name.startswith(f"{MEMBERS_DIR}/"):
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)
        if sha256_file(target / name) != entry.sha256:
            raise ArtifactIntegrityError(
                f"{source / name} does not match its checksum; re-export {source}."
            )
        files[name] = entry
    copied = replace(
        manifest, kind=Kind.ENCODER, head=None, tagger=None, files=files, encoder=encoder
    )
    write_manifest(target, copied)
    return copied


def _with_graphs(encoder: EncoderSection, graphs: Set[str]) -> EncoderSection:
    """The encoder section with only the precisions that keep one of ``graphs``."""
    kept = [
        p
        for p, v in encoder.variants.items()
        if v.file in graphs or (p in encoder.fast and encoder.fast[p].file in graphs)
    ]
    if not kept:
        raise ValueError(f"None of {sorted(graphs)} is a graph of this encoder.")
    default = encoder.default_precision if encoder.default_precision in kept else kept[0]
    return replace(
        encoder,
        variants={p: encoder.variants[p] for p in kept},
        fast={p: v for p, v in encoder.fast.items() if p in kept and v.file in graphs},
        default_precision=default,
    )
