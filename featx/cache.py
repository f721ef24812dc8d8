"""A persistent embedding cache: never embed the same text twice with the same settings.

Rows live in SQLite (``$FEATX_CACHE_DIR/embeddings.sqlite``), keyed by the sha256 of
(namespace, text), where the namespace names the model file and the representation
settings. SQLite's locking makes the cache safe for several processes (joblib workers,
parallel searches); the least recently used rows are dropped past ``max_bytes``.

In front of the file, each process keeps the rows it read or wrote in memory (bounded):
a search reads the same folds dozens of times, and a key always maps to the same row.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.environment import cache_dir

DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB of vectors
MEMORY_MAX_BYTES = 256 << 20  # rows kept in this process, across cache instances
# Least-recently-used order is kept to this many seconds: a hit on a row used more
# recently does not rewrite it.
TOUCH_AFTER_S = 60.0


def default_path() -> Path:
    """The cache file inside featx's cache directory."""
    return cache_dir() / "embeddings.sqlite"


def namespace(*parts: Any) -> str:
    """A stable name for a model and its settings (JSON of ``parts``, hashed)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class MemoryRows:
    """This process's recently used rows by (cache file, key), within a byte budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.rows: OrderedDict[tuple[str, bytes], NDArray[np.float32]] = OrderedDict()
        self.lock = threading.Lock()  # a threaded server may share one process

    def get(self, key: tuple[str, bytes]) -> NDArray[np.float32] | None:
        """The row of ``key``, now the most recently used, or None."""
        with self.lock:
            row = self.rows.get(key)
            if row is not None:
                self.rows.move_to_end(key)
            return row

    def put(self, key: tuple[str, bytes], row: NDArray[np.float32]) -> None:
        """Keep ``row``, dropping the least recently used rows past the budget."""
        with self.lock:
            if key in self.rows:
                return
            self.rows[key] = row
            self.bytes += row.nbytes
            while self.bytes > self.max_bytes:
                self.bytes -= self.rows.popitem(last=False)[1].nbytes

    def drop(self, file: str) -> None:
        """Forget every row of the cache file ``file``."""
        with self.lock:
            for key in [k for k in self.rows if k[0] == file]:
                self.bytes -= self.rows.pop(key).nbytes


_MEMORY = MemoryRows(MEMORY_MAX_BYTES)


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
        self._file = str(self.path.resolve())
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._use_wal()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS rows (key BLOB PRIMARY KEY, vector BLOB NOT NULL,"
                " used REAL NOT NULL)"
            )

    def _use_wal(self) -> None:
        """Put the file in WAL mode (readers never wait for a writer); it stays so.

        Switching needs a moment alone with the file, and SQLite does not wait for it:
        when two processes create the cache at once, the second retries.
        """
        deadline = time.monotonic() + 60
        while True:
            db = sqlite3.connect(self.path, timeout=60)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # a file system without WAL keeps its mode
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
            finally:
                db.close()
            time.sleep(0.05)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60)
        try:
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
        for key in keys:
            row = _MEMORY.get((self._file, key))
            if row is not None:
                found[key] = row
        stale: list[bytes] = []
        now = time.time()
        unique = [k for k in dict.fromkeys(keys) if k not in found]
        if unique:
            with self._connect() as db:
                for start in range(0, len(unique), 500):
                    chunk = unique[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for key, blob, used in db.execute(
                        f"SELECT key, vector, used FROM rows WHERE key IN ({marks})", chunk
                    ):
                        found[key] = np.frombuffer(blob, dtype=np.float32)
                        _MEMORY.put((self._file, key), found[key])
                        if used < now - TOUCH_AFTER_S:
                            stale.append(key)
                if stale:  # rows read again within a minute are not rewritten
                    db.executemany(
                        "UPDATE rows SET used = ? WHERE key = ?", [(now, k) for k in stale]
                    )
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
        for (key, _, _), vector in zip(records, vectors, strict=True):
            _MEMORY.put((self._file, key), np.array(vector, dtype=np.float32))
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
        _MEMORY.drop(self._file)
        with self._connect() as db:
            db.execute("DELETE FROM rows")
