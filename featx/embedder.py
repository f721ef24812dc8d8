"""Embedder: a scikit-learn transformer from texts (or text pairs) to embeddings.

``Pipeline([("embed", Embedder("minilm")), ("clf", LogisticRegression())])`` just works:
``__init__`` only stores, ``fit`` loads the encoder, and the fitted encoder pickles as a
reference (artifact path and options), so clones and joblib workers stay cheap.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featx.api import load
from featx.artifact import Artifact
from featx.config import LongText, parse_enum
from featx.encoders.base import Encoder
from featx.errors import TruncationWarning
from featx.text import check_texts, pair_columns, text_column

_REPRESENTATION = ("pooling", "normalize", "layers", "combine", "long_text")


class Embedder(TransformerMixin, BaseEstimator):
    """Embed texts with a featx encoder inside scikit-learn pipelines.

    Args:
        model: An artifact directory, alias, hub id or model folder (loaded with
            :func:`featx.load`), or a ready encoder such as ``HashEncoder()``; None: the
            registry's default model.
        pooling: Pooling override (``"mean"``, ``"cls"``, ``"max"``, ...); ``None`` keeps
            the model's.
        normalize: L2-normalise override; ``None`` keeps the model's.
        layers: Hidden-state layer(s) override, e.g. ``-1`` or ``(-4, -3, -2, -1)``, or
            ``"all"`` for every hidden state (the embedding layer and each block).
        combine: How several layers combine: ``"mean"`` or ``"concat"``.
        long_text: ``"truncate"``, ``"chunk_mean"`` or ``"chunk_max"``.
        batch_size: Most texts per forward pass.
        precision: ``"fp32"`` or ``"int8"``; ``None`` takes the artifact's default.
        threads: ONNX Runtime threads; ``None`` uses every core this process may use.
        cache: Reuse embeddings across fits, folds and processes: ``True`` for the
            default cache file, a path for another one, ``None``/``False`` for none.

    Input is a sequence of str (list, 1-D array, pandas Series) or, for sentence pairs, a
    two-column array or DataFrame: pairs give SBERT features ``[u, v, |u - v|, u * v]``.

    Example:
        >>> from featx import Embedder, HashEncoder
        >>> Embedder(HashEncoder(dim=4)).fit_transform(["a cat", "a dog"]).shape
        (2, 4)
    """

    def __init__(
        self,
        model: str | Encoder | None = None,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        layers: int | Sequence[int] | str | None = None,
        combine: str | None = None,
        long_text: str | None = None,
        batch_size: int = 32,
        precision: str | None = None,
        threads: int | None = None,
        cache: bool | str | None = None,
    ) -> None:
        self.model = model
        self.pooling = pooling
        self.normalize = normalize
        self.layers = layers
        self.combine = combine
        self.long_text = long_text
        self.batch_size = batch_size
        self.precision = precision
        self.threads = threads
        self.cache = cache

    def _options(self) -> dict[str, Any]:
        options = {k: getattr(self, k) for k in _REPRESENTATION if getattr(self, k) is not None}
        if options.get("layers") == "all":
            num_layers = getattr(getattr(self.get_encoder(), "spec", None), "num_layers", None)
            if num_layers is None:
                raise ValueError("layers='all' needs a Transformer encoder (an artifact).")
            options["layers"] = tuple(range(num_layers + 1))
        elif isinstance(options.get("layers"), str):
            raise ValueError(f"layers takes 'all', an int or ints, got {self.layers!r}.")
        return options

    def fit(self, X: Any, y: object = None) -> Embedder:
        """Load the encoder; ``X`` and ``y`` are accepted for the pipeline contract only."""
        if not (self.model is None or isinstance(self.model, str | Encoder)):
            raise TypeError(
                f"Embedder(model=...) takes a str or an encoder, got {type(self.model).__name__}"
                " (a str is an artifact, alias or folder; None takes the default model)."
            )
        self.__dict__.pop("encoder_", None)
        self.__dict__.pop("cache_", None)
        self.dim_ = self._encode(["featx"]).shape[1]
        self.n_pair_columns_ = pair_columns(X)
        if self.cache:
            from featx.cache import namespace

            self.cache_space_ = namespace(*self._cache_identity())
        self.n_features_out_ = self.dim_ * (4 if self.n_pair_columns_ == 2 else 1)
        return self

    def get_encoder(self) -> Any:
        """The encoder, loaded on first use (after ``fit`` or unpickling)."""
        if "encoder_" not in self.__dict__:
            if self.model is None or isinstance(self.model, str):
                self.encoder_ = _load(
                    self.model, _stamp(self.model), self.precision, self.threads, self.batch_size
                )
            else:
                self.encoder_ = self.model
        return self.encoder_

    def _cache(self) -> Any:
        """The embedding cache, opened on first use; ``None`` without one."""
        if not self.cache:
            return None
        if "cache_" not in self.__dict__:
            from featx.cache import EmbeddingCache

            self.cache_ = EmbeddingCache(None if self.cache is True else self.cache)
        return self.cache_

    def __getstate__(self) -> dict[str, Any]:
        # Pickle by reference: the encoder and the cache reopen lazily where unpickled.
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k not in ("encoder_", "cache_", "n_tokens_")}

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        cache = self._cache()
        if cache is None:
            return self._encode(texts)
        rows, missing = cache.get(self.cache_space_, texts)
        if missing:
            todo = list(dict.fromkeys(texts[i] for i in missing))  # each distinct text once
            with warnings.catch_warnings():
                # The encoder sees only the distinct new texts; the warning below counts rows.
                warnings.simplefilter("ignore", TruncationWarning)
                fresh = self._encode(todo)
            cache.put(self.cache_space_, todo, fresh)
            by_text = dict(zip(todo, fresh, strict=True))
            rows.update({i: by_text[texts[i]] for i in missing})
        out = np.empty((len(texts), self.dim_), dtype=np.float32)
        for i, row in rows.items():
            out[i] = row
        self._warn_truncated(texts)
        return out

    def _warn_truncated(self, texts: list[str]) -> None:
        """Warn of cut texts among all of ``texts``, cached or new (counted as rows)."""
        encoder = self.get_encoder()
        rep = getattr(encoder, "representation", None)
        if rep is None or not hasattr(encoder, "count_tokens"):
            return  # not a Transformer: nothing is cut
        mode = self._options().get("long_text", rep.long_text)
        if parse_enum(LongText, mode, "long_text") is not LongText.TRUNCATE:
            return
        counts: dict[str, int] = self.__dict__.setdefault("n_tokens_", {})
        new = [t for t in dict.fromkeys(texts) if t not in counts]
        if new:  # tokenising alone, once per distinct text
            counts.update(zip(new, encoder.count_tokens(new).tolist(), strict=True))
        n_tokens = np.array([counts[t] for t in texts], dtype=np.int64)
        warning = TruncationWarning.of(n_tokens, n_tokens > encoder.max_length, encoder.max_length)
        if warning is not None:
            warnings.warn(warning, stacklevel=4)

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        return np.asarray(self.get_encoder().encode(texts, **self._options()), dtype=np.float32)

    def graphs_used(self) -> set[str] | None:
        """The encoder artifact's graph files this embedder runs (None: not an artifact)."""
        used = getattr(self.get_encoder(), "graphs_used", None)
        return None if used is None else used(**self._options())

    def _cache_identity(self) -> list[Any]:
        """What makes two embeddings of one text equal: the graph run and the settings."""
        encoder = self.get_encoder()
        path = getattr(encoder, "path", None)
        used = self.graphs_used() if path is not None else None
        if path is not None and used:
            files = Artifact.open(path).manifest.files
            model = ",".join(files[name].sha256 for name in sorted(used))
        else:  # an in-memory or torch encoder
            model = f"{encoder!r} {path}"
        rep = getattr(encoder, "representation", None)
        return [model, rep.to_dict() if rep is not None else None, self._options()]

    def transform(self, X: Any) -> NDArray[np.float32]:
        """Embed ``X`` -> float32 array (n, dim), or (n, 4 * dim) for sentence pairs."""
        check_is_fitted(self, "dim_")
        columns = pair_columns(X)
        if columns != self.n_pair_columns_:
            raise ValueError(
                f"Embedder was fitted on {self.n_pair_columns_ or 'single'}-column input but got "
                f"{columns or 'single'}-column input."
            )
        if columns == 2:
            pairs = np.asarray(X, dtype=object)
            u = self._embed(check_texts(pairs[:, 0], "X[:, 0]"))
            v = self._embed(check_texts(pairs[:, 1], "X[:, 1]"))
            return pair_features(u, v)
        return self._embed(check_texts(text_column(X), "X"))

    def get_feature_names_out(self, input_features: Any = None) -> NDArray[np.object_]:
        """Output column names: ``embed0..``; for pairs ``u0.., v0.., absdiff0.., prod0..``."""
        check_is_fitted(self, "n_features_out_")
        if self.n_pair_columns_ == 2:
            dim = self.n_features_out_ // 4
            parts = ("u", "v", "absdiff", "prod")
            return np.asarray([f"{p}{i}" for p in parts for i in range(dim)], dtype=object)
        return np.asarray([f"embed{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags


def pair_features(u: NDArray[np.float32], v: NDArray[np.float32]) -> NDArray[np.float32]:
    """SBERT's features of text pairs from their vectors: ``[u, v, |u - v|, u * v]``."""
    return np.hstack([u, v, np.abs(u - v), u * v]).astype(np.float32)


def _stamp(model: str | None) -> int | None:
    """When the artifact at ``model`` was last written (None for aliases and hub ids)."""
    if model is None:
        return None
    try:
        return os.stat(os.path.join(model, "featx.json")).st_mtime_ns
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _load(
    model: str | None,
    stamp: int | None,
    precision: str | None,
    threads: int | None,
    batch_size: int,
) -> Any:
    """Load each encoder once per process: clones made by a search reuse one session.

    ``stamp`` is only part of the key, so that a re-exported artifact is loaded afresh.
    """
    return load(model, precision=precision, threads=threads, batch_size=batch_size)
