"""A persistent embedding cache: never embed the same text twice with the same settings.

Rows live in SQLite (``$FEATX_CACHE_DIR/embeddings.sqlite``), keyed by the sha256 of
(namespace, text), where the namespace names the model file and the representation
settings. SQLite's locking makes the cache safe for several processes (joblib workers,
parallel searches); the least recently used rows are dropped past ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB of vectors


def default_path() -> Path:
    """The cache file inside featx's cache directory."""
    from featx.api import cache_dir

    return cache_dir() / "embeddings.sqlite"


def namespace(*parts: Any) -> str:
    """A stable name for a model and its settings (JSON of ``parts``, hashed)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class EmbeddingCache:
    """Get and put embedding rows by (namespace, text).

    Args:
        path: The SQLite file; default ``$FEATX_CACHE_DIR/embeddings.sqlite``.
        max_bytes: Vector bytes kept before the least recently used rows are dropped.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes!r}.")
        self.path = Path(path) if path is not None else default_path()
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS rows (key BLOB PRIMARY KEY, vector BLOB NOT NULL,"
                " used REAL NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    @staticmethod
    def _key(space: str, text: str) -> bytes:
        return hashlib.sha256(f"{space}\0{text}".encode()).digest()

    def get(
        self, space: str, texts: Sequence[str]
    ) -> tuple[dict[int, NDArray[np.float32]], list[int]]:
        """Cached rows by input index, and the indices of the texts not cached."""
        keys = [self._key(space, t) for t in texts]
        found: dict[bytes, NDArray[np.float32]] = {}
        with self._connect() as db:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(
                    f"SELECT key, vector FROM rows WHERE key IN ({marks})", chunk
                ):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
            if found:
                now = time.time()
                db.executemany("UPDATE rows SET used = ? WHERE key = ?", [(now, k) for k in found])
        rows = {i: found[k] for i, k in enumerate(keys) if k in found}
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(rows)
        self.misses += len(missing)
        return rows, missing

    def put(self, space: str, texts: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Store one row per text, then drop the least recently used rows past ``max_bytes``."""
        now = time.time()
        records = [
            (self._key(space, t), np.ascontiguousarray(v, dtype=np.float32).tobytes(), now)
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", records)
            total = db.execute("SELECT COALESCE(SUM(LENGTH(vector)), 0) FROM rows").fetchone()[0]
            if total > self.max_bytes:
                db.execute(
                    "DELETE FROM rows WHERE key IN (SELECT key FROM rows ORDER BY used LIMIT "
                    "(SELECT COUNT(*) FROM rows) / 4 + 1)"
                )

    def info(self) -> dict[str, Any]:
        """Path, rows, vector bytes, file size and this instance's hit/miss counts."""
        with self._connect() as db:
            rows, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(vector)), 0) FROM rows"
            ).fetchone()
        return {
            "path": str(self.path),
            "rows": rows,
            "vector_bytes": size,
            "file_bytes": self.path.stat().st_size,
            "hits": self.hits,
            "misses": self.misses,
        }

    def clear(self) -> None:
        """Drop every row."""
        with self._connect() as db:
            db.execute("DELETE FROM rows")
