"""Shipping an artifact to the executors: once per application, named by its content."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

from featx.artifact import MANIFEST, Artifact

logger = logging.getLogger("featx.spark")


# Per driver process: (application id, manifest sha256) -> the name it was shipped under.
_SHIPPED: dict[tuple[str, str], str] = {}


def ship(spark: SparkSession, opened: Artifact, sha: str) -> str:
    """Add the artifact to the application once; return its SparkFiles name."""
    try:
        sc = spark.sparkContext
    except Exception as err:  # Spark Connect sessions have no SparkContext
        raise ValueError(
            "featx.spark ships the artifact through the SparkContext, which this session "
            "does not expose (Spark Connect?). Pass ship=False and make the artifact readable "
            "at the same path on every executor (or send it with spark-submit --archives)."
        ) from err
    key = (sc.applicationId, sha)
    if key not in _SHIPPED:
        # Named by content: two artifacts of one folder name cannot collide in SparkFiles,
        # and shipping the same artifact twice is a no-op.
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", opened.path.resolve().name)[-40:]
        name = f"featx-{slug}-{sha[:16]}"
        archive = _archive_dir() / f"{name}.tar"
        if not archive.exists():
            pack(opened, archive)
        logger.info("Shipping artifact %s to the executors as %s", opened.path, name)
        sc.addArchive(f"{archive}#{name}")
        _SHIPPED[key] = name
    return _SHIPPED[key]


@functools.lru_cache(maxsize=1)
def _archive_dir() -> Path:
    # Executors may fetch the archive at any time while the application runs: keep it
    # until this process exits.
    folder = Path(tempfile.mkdtemp(prefix="featx-spark-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def pack(opened: Artifact, archive: Path) -> None:
    """Write the manifest and the files it lists (nothing else) to an uncompressed tar."""
    # Uncompressed: ONNX weights barely compress, and packing stays at disk speed.
    partial = archive.with_name(f".{archive.name}.{os.getpid()}")
    names = [MANIFEST, *opened.manifest.files]
    folders = sorted({p.as_posix() for n in names for p in Path(n).parents if p != Path(".")})
    with tarfile.open(partial, "w") as tar:
        for name in [*folders, *names]:  # folders first: encoders/1/ of a multi-model head
            tar.add(opened.path / name, arcname=name, recursive=False)
    os.replace(partial, archive)
