"""featx.train_ner: a named-entity tagger on frozen or fine-tuned word vectors."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.files import refuse_existing
from featx.finetuning.settings import TrainingOptions
from featx.sources import default_model
from featx.tagging.features import TokenEmbedder
from featx.tagging.tagger import Tagger, fit_tagger
from featx.tagging.tags import detect_scheme, entity_scores, tag_order, to_iob2
from featx.text import dev_pair
from featx.words import split_words

if TYPE_CHECKING:
    from typing import Unpack

logger = logging.getLogger(__name__)

# L2 strength of the CRF: chosen on CoNLL-2003 dev (benchmarks/README.md).
DEFAULT_C2 = 100.0


def train_ner(
    X: Sequence[Sequence[str]] | Sequence[str],
    y: Sequence[Sequence[str]],
    *,
    model: str | os.PathLike[str] | None = None,
    dev: tuple[Any, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    layers: int | tuple[int, ...] | None = None,
    combine: str = "mean",
    subword: str | None = None,
    context: int = 1,
    shape: bool = True,
    c2: float | Sequence[float] = DEFAULT_C2,
    max_iter: int = 300,
    train_layers: int | str = 0,
    force: bool = False,
    show_progress: bool | None = None,
    **finetune: Unpack[TrainingOptions],
) -> Tagger:
    """Train a named-entity tagger on word lists (or raw texts) and their tags.

    Args:
        X: Training sentences: word lists (CoNLL) or raw texts (split by
            :func:`featx.words.split_words`).
        y: One tag per word, in IOB2, IOB1 or BIOES (converted to IOB2).
        model: The encoder: an alias, hub id, model folder or artifact; None: the
            registry's default model.
        dev: ``(X_dev, y_dev)`` sentences and tags: scored for the report, used to pick
            ``c2`` when several are given, and for early stopping when fine-tuning.
        out: Save the tagger here (needed when fine-tuning: the tagger then holds the
            fine-tuned encoder).
        layers: Hidden states to read; default: the middle two layers of a frozen
            encoder (they carry more word-level information than the last, which
            sentence-embedding models tune for pooling), the last of a fine-tuned one.
        combine: ``"mean"``, ``"sum"`` or ``"concat"`` of ``layers``.
        subword: ``"first"``, ``"mean"`` or ``"last"`` piece per word (default: first;
            last for decoders).
        context: Neighbouring words on each side whose vectors each word also sees.
        shape: Add word-shape flags (capitalisation, digits, punctuation): the default
            model is uncased, so this is where case comes from. When fine-tuning, the
            tag classifier sees them too, so the encoder learns what they do not say.
        c2: CRF L2 strength, or several to choose from on the dev set.
        max_iter: Most L-BFGS iterations of the CRF.
        train_layers: 0 keeps the encoder frozen; N (or ``"all"``) fine-tunes the top N
            layers for the tags first.
        force: Replace ``out`` if it exists.
        show_progress: Progress bars; ``None`` shows them on a terminal.
        **finetune: Fine-tuning settings (``epochs``, ``lr``, ``batch_size``, ``seed``, ...;
            see :class:`featx.finetuning.Settings`).

    Returns:
        The fitted :class:`Tagger` (loaded back from ``out`` when saved).

    Raises:
        ValueError: Mismatched words and tags, invalid tags, a search without dev data,
            or fine-tuning without ``out``.
    """
    started = time.perf_counter()
    data, grid = _checked(X, y, dev, c2, out, force, train_layers, finetune)
    features = {"layers": layers, "combine": combine, "subword": subword}
    features.update(context=context, shape=shape)
    # Fine-tuning writes its encoder in a private folder beside ``out``, kept until saved.
    work = _work_dir(Path(out)) if train_layers != 0 and out is not None else None
    try:
        model = default_model() if model is None else model
        tagger = _train(
            model, data, features, grid, max_iter, work, train_layers, show_progress, dict(finetune)
        )
        tagger.metrics["train_seconds"] = round(time.perf_counter() - started, 2)
        if out is None:
            return tagger
        tagger.save(out, force=force)
        return Tagger.load(out)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class _Data:
    """Checked training sentences and IOB2 tags, and the dev set's (if any)."""

    X: Any
    tags: list[list[str]]
    X_dev: Any = None
    dev_tags: list[list[str]] | None = None


def _checked(
    X: Any,
    y: Any,
    dev: tuple[Any, Any] | None,
    c2: float | Sequence[float],
    out: str | os.PathLike[str] | None,
    force: bool,
    train_layers: int | str,
    finetune: Mapping[str, Any],
) -> tuple[_Data, list[float]]:
    """The checked data and c2 grid, or the error that says what to fix."""
    tags = _checked_tags(X, y, "y")
    X_dev, dev_tags = None, None
    if dev is not None:
        X_dev, y_dev = dev_pair(dev)
        dev_tags = _checked_tags(X_dev, y_dev, "y_dev")
    grid = [float(c2)] if isinstance(c2, int | float) else [float(c) for c in c2]
    if not grid or min(grid) < 0:
        raise ValueError(f"c2 must be >= 0 (or a non-empty list of such), got {c2!r}.")
    if len(grid) > 1 and dev_tags is None:
        raise ValueError("Several c2 values need a dev set (dev=(X_dev, y_dev)) to choose by.")
    refuse_existing(out, force)
    if finetune and train_layers == 0:
        raise ValueError(
            f"{sorted(finetune)} are fine-tuning settings: give train_layers > 0 to fine-tune."
        )
    if train_layers != 0 and out is None:
        raise ValueError("Fine-tuning writes a new encoder: give out= to save the tagger in.")
    return _Data(X, tags, X_dev, dev_tags), grid


def _train(
    model: Any,
    data: _Data,
    features: dict[str, Any],
    grid: list[float],
    max_iter: int,
    work: Path | None,
    train_layers: int | str,
    show_progress: bool | None,
    finetune: dict[str, Any],
) -> Tagger:
    """Fine-tune the encoder into ``work`` first if asked, then fit the CRF (best c2 on dev)."""
    encoder: Any = model
    report: dict[str, Any] = {}
    if train_layers != 0:
        assert work is not None  # train_ner made it
        encoder = work / "encoder"
        settings = {**finetune, "train_layers": train_layers}
        report = _finetune(model, data, encoder, features["shape"], show_progress, settings)
        features = {**features, "layers": features["layers"] or (-1,)}
    embedder = TokenEmbedder(
        encoder if hasattr(encoder, "encode_tokens") else str(encoder), **features
    )
    if embedder.layers is None:
        embedder.layers = _middle_layers(embedder.get_encoder().spec.num_layers)
    tagger, search, dev_scores = _fit(embedder, data, grid, max_iter)
    tagger.metrics = {
        "dev": dev_scores,
        "n_train": len(data.tags),
        "settings": _settings(model, embedder, tagger, train_layers),
        "search": search,
        "finetune": {k: report[k] for k in ("settings", "best", "train_seconds")}
        if report
        else None,
    }
    return tagger


def _work_dir(out: Path) -> Path:
    """A private folder beside ``out`` for the fine-tuned encoder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.ner-"))


def _settings(
    model: Any, embedder: TokenEmbedder, tagger: Tagger, train_layers: int | str
) -> dict[str, Any]:
    layers = embedder.layers
    return {
        "model": str(getattr(model, "path", model)),
        "layers": [layers] if isinstance(layers, int) else list(layers or ()),
        "combine": embedder.combine,
        "subword": embedder.subword,
        "context": embedder.context,
        "shape": embedder.shape,
        "c2": tagger.crf.c2,
        "train_layers": train_layers,
    }


def _fit(
    embedder: TokenEmbedder, data: _Data, grid: list[float], max_iter: int
) -> tuple[Tagger, list[dict[str, float]], dict[str, Any] | None]:
    """The tagger of the best ``c2`` on dev, the search, and its dev scores (if dev)."""
    best: tuple[float, Tagger, dict[str, Any] | None] | None = None
    search = []
    features = embedder.fit().transform(data.X)  # once for every c2
    for c2 in grid:
        tagger = fit_tagger(
            embedder, data.X, data.tags, c2=c2, max_iter=max_iter, features=features
        )
        scores = None if data.dev_tags is None else tagger.evaluate(data.X_dev, data.dev_tags)
        if scores is not None and len(grid) > 1:
            search.append({"c2": c2, "dev_f1": scores["micro"]["f1"]})
            logger.info("c2=%s: dev F1 %.4f", c2, scores["micro"]["f1"])
        f1 = -1.0 if scores is None else scores["micro"]["f1"]
        if best is None or f1 > best[0]:
            best = (f1, tagger, scores)
    assert best is not None
    return best[1], search, best[2]


def _finetune(
    model: Any,
    data: _Data,
    out: Path,
    shape: bool,
    show_progress: bool | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    from featx.extras import require

    require("export", "Fine-tuning a tagger")
    from featx.finetuning.tokens import finetune_encoder

    labels = tag_order(data.tags)
    index = {t: i for i, t in enumerate(labels)}
    words = [split_words(x)[0] if isinstance(x, str) else list(x) for x in data.X]
    dev = None
    dev_tags = data.dev_tags
    if data.X_dev is not None and dev_tags is not None:
        dev_words = [split_words(x)[0] if isinstance(x, str) else list(x) for x in data.X_dev]

        def scorer(predicted: list[list[int]]) -> float:
            named = [[labels[i] for i in p] for p in predicted]
            return float(entity_scores(dev_tags, named)["micro"]["f1"])

        dev = (dev_words, scorer)
    return finetune_encoder(
        model,
        words,
        [[index[t] for t in s] for s in data.tags],
        n_tags=len(labels),
        out=out,
        dev=dev,
        shape=shape,
        show_progress=show_progress,
        **settings,
    )


def _middle_layers(num_layers: int) -> tuple[int, ...]:
    middle = num_layers // 2
    return (middle, middle + 1) if num_layers > 1 else (num_layers,)


def _checked_tags(X: Any, y: Any, what: str) -> list[list[str]]:
    """IOB2 tags of ``y``, checked against the words of ``X`` (one tag per word)."""
    if y is None:
        raise ValueError(f"{what} is missing: give one tag list per sentence.")
    if isinstance(X, str) or isinstance(y, str):
        raise TypeError("Give lists of sentences (word lists or texts) and of tag lists.")
    X, y = list(X), [list(tags) for tags in y]
    if len(X) != len(y):
        raise ValueError(f"{len(X)} sentences but {len(y)} tag lists in {what}.")
    for i, (sentence, tags) in enumerate(zip(X, y, strict=True)):
        n = len(split_words(sentence)[0]) if isinstance(sentence, str) else len(sentence)
        if n == 0:
            raise ValueError(f"Sentence {i} is empty; drop empty sentences before training.")
        if n != len(tags):
            raise ValueError(
                f"Sentence {i} has {n} words but {len(tags)} tags in {what}: give one tag "
                "per word (for raw texts, per word of featx.words.split_words)."
            )
    return [to_iob2(tags, scheme) for scheme in [detect_scheme(y)] for tags in y]
