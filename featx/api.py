"""featx.load: one call from a model name to a ready encoder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.artifact import FORMAT_VERSION, Artifact, is_artifact
from featx.config import RepresentationOptions
from featx.encoders.transformer import TransformerEncoder
from featx.environment import cache_dir
from featx.extras import require
from featx.sources import Source, default_model, fetch, inspect_folder, resolve

if TYPE_CHECKING:
    from typing import Unpack

logger = logging.getLogger(__name__)
BACKENDS = ("onnx", "torch")


def _cache_key(source: Source, export_options: dict[str, Any]) -> str:
    """A stable name for the exported copy of ``source`` with ``export_options``."""
    # A new featx version may export differently (say, a better int8 recipe): re-export.
    identity: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "featx": __version__,
        "options": export_options,
    }
    if source.folder is not None:
        # Path plus size and mtime of every file: a changed model folder is re-exported.
        root = source.folder
        identity["folder"] = str(root)
        identity["files"] = sorted(
            (p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")
            if p.is_file()
        )
    else:
        identity["hub_id"] = source.hub_id
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "--", source.name.strip("/")).strip("-.")[-60:]
    return f"{slug or 'model'}-{digest}"


def load(
    model: str | os.PathLike[str] | None = None,
    *,
    backend: str = "onnx",
    precision: str | None = None,
    providers: list[str] | None = None,
    threads: int | None = None,
    batch_size: int = 32,
    max_tokens: int | None = None,
    export_options: dict[str, Any] | None = None,
    **representation: Unpack[RepresentationOptions],
) -> TransformerEncoder:
    """Load an encoder from an artifact, an alias, a hub id or a model folder.

    Anything that is not yet an artifact is exported once into the cache
    (:func:`featx.environment.cache_dir`; needs the ``export`` extra) and loaded from
    there afterwards.

    Args:
        model: Artifact directory, registry alias, hub id ("org/name") or model folder;
            default: the registry's default model (all-MiniLM-L6-v2).
        backend: ``"onnx"`` (default) or ``"torch"`` (the fp32 reference; needs torch).
        precision: ``"fp32"``, ``"int8"`` or ``"fp16"``; default: the artifact's choice.
        providers: ONNX Runtime execution providers (default CPU).
        threads: Intra-op threads (default: the cores this process may use: its affinity
            mask, capped by a container's CPU quota, cgroup ``cpu.max``).
        batch_size: Most texts per forward pass.
        max_tokens: Most padded tokens per forward pass.
        export_options: Keyword arguments for :func:`featx.export` when exporting.
        **representation: Defaults for pooling, normalize, layers, combine, long_text, stride.

    Returns:
        An encoder: ``encoder.encode(texts) -> float32 array (n, dim)``.

    Raises:
        ValueError: If the backend, an alias or an option is unknown.
        ImportError: If exporting or the torch backend is needed but the extra is missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}. Valid values: {', '.join(BACKENDS)}.")
    name = default_model() if model is None else model
    path = Path(os.fspath(name)).expanduser()
    if backend == "torch":
        return _torch_encoder(name, path, batch_size, max_tokens, representation)
    from featx.encoders.onnx import OnnxEncoder

    if not is_artifact(path):
        path = _exported(resolve(name), export_options or {})
    return OnnxEncoder.from_dir(
        path,
        precision=precision,
        providers=providers,
        threads=threads,
        batch_size=batch_size,
        max_tokens=max_tokens,
        **representation,
    )


def _torch_encoder(
    name: str | os.PathLike[str],
    path: Path,
    batch_size: int,
    max_tokens: int | None,
    representation: RepresentationOptions,
) -> TransformerEncoder:
    """The torch reference of a model folder, or of the folder an artifact came from."""
    require("export", "The torch backend")
    from featx.encoders.torch import TorchEncoder

    if is_artifact(path):
        artifact = Artifact.open(path)
        folder = artifact.source_folder()
        spec = artifact.manifest.model  # fed and pooled as exported
    else:
        source = resolve(name)
        folder = source.folder or fetch(source)[0]
        spec = inspect_folder(folder, source.entry)
    return TorchEncoder.from_folder(
        folder, spec=spec, batch_size=batch_size, max_tokens=max_tokens, **representation
    )


def _exported(source: Source, export_options: dict[str, Any]) -> Path:
    """The cached artifact of ``source``, exported now if it is not there yet."""
    target = cache_dir() / _cache_key(source, export_options)
    if is_artifact(target):
        return target
    from featx.exporter import export

    logger.warning("Exporting %s to %s once; later loads reuse it.", source.name, target)
    try:
        export(source.name, target, **export_options)
    except FileExistsError:
        if not is_artifact(target):  # another process finished first: use its artifact
            raise
    return target
