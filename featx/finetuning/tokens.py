"""Fine-tuning for token classification: when frozen word vectors are not enough.

The encoder's top layers and a per-piece linear tag classifier train on the first piece
of every word (the other pieces are ignored by the loss), with the same optimiser,
schedules, precision and early stopping as sentence fine-tuning
(:class:`~featx.finetuning.trainer.Training`). The classifier also sees the words' shape
flags when the tagger's CRF will (``shape``). It is a training aid: the result is
an encoder artifact (ONNX, behind the export's parity gate, with its Hugging Face folder
under ``hf/``) whose last hidden state now carries the tags, and the tagger's CRF head is
then trained on its frozen word vectors as on any encoder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray

from featx.batching import pad_batch
from featx.config import Representation
from featx.encoders.torch import TorchEncoder, load_hf_model, load_hf_tokenizer
from featx.environment import want_progress
from featx.finetuning.export import export_encoder, seal_finetuned
from featx.finetuning.model import Head
from featx.finetuning.settings import Settings, SettingsOptions
from featx.finetuning.setup import Feed, feeder, starting_point, torch_device
from featx.finetuning.trainer import Data, Training, run_report
from featx.tagging.features import SHAPES, word_shapes
from featx.words import join_words

if TYPE_CHECKING:
    from typing import Unpack

IGNORE = -100  # pieces that are not the first of a word carry no tag


class TokenModel(torch.nn.Module):
    """Encoder + a tag classifier on every piece of the last hidden state.

    With ``shape``, the classifier also sees each word's shape flags (on its first piece,
    fed as ``shape``): the tagger's CRF gets them beside the encoder's vectors, so the
    encoder is trained for what the flags do not already say (an uncased model cannot see
    case at all).
    """

    def __init__(
        self, encoder: torch.nn.Module, n_tags: int, dropout: float, *, shape: bool = False
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.shape = shape
        config: Any = encoder.config
        width = int(config.hidden_size) + (len(SHAPES) if shape else 0)
        self.head = Head(width, n_tags, (), dropout)

    def features(self, feed: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last hidden state (batch, pieces, dim) in fp32, and the shape flags if used."""
        feed = dict(feed)
        flags = feed.pop("shape", None)
        hidden = self.encoder(**feed, return_dict=True).last_hidden_state.float()
        return hidden if flags is None else torch.cat([hidden, flags], dim=-1)

    def forward(self, feed: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tag logits of every piece."""
        return self.head(self.features(feed))


def tagged_windows(
    encoder: TorchEncoder,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[int]],
    *,
    shape: bool = False,
) -> tuple[list[NDArray[np.int32]], list[NDArray[np.int64]]]:
    """Model windows of the sentences and, per window, each piece's tag (or IGNORE).

    A word is tagged on its first piece, in the window where it has the most context; a
    sentence longer than the model's window is cut into overlapping windows. With
    ``shape``, a window is (pieces, 2): the piece ids, and the word's shape flags as bits
    on its first piece (:func:`shaped_feeder` unpacks them).
    """
    windows: list[NDArray[np.int32]] = []
    labels: list[NDArray[np.int64]] = []
    for words, sentence_tags in zip(sentences, tags, strict=True):
        text, spans = join_words(words)
        bits = word_shapes(words) @ (1 << np.arange(len(SHAPES))) if shape else None
        for window in encoder.word_windows(text, spans):
            window_labels = np.full(len(window.ids), IGNORE, dtype=np.int64)
            for w, pieces in zip(window.words, window.pieces, strict=True):
                window_labels[pieces[0]] = sentence_tags[w]
            ids = window.ids
            if bits is not None:
                window_bits = np.zeros(len(ids), dtype=np.int32)
                for w, pieces in zip(window.words, window.pieces, strict=True):
                    window_bits[pieces[0]] = bits[w]
                ids = np.stack([np.asarray(ids, dtype=np.int32), window_bits], axis=1)
            windows.append(ids)
            labels.append(window_labels)
    return windows, labels


def shaped_feeder(feed: Feed) -> Feed:
    """``feed`` for :func:`tagged_windows`' (pieces, 2) windows: adds the ``shape`` flags."""

    def shaped(windows: list[NDArray[np.int32]]) -> dict[str, torch.Tensor]:
        inputs = feed([w[:, 0] for w in windows])
        bits, _ = pad_batch([w[:, 1] for w in windows], 0)  # right-padded like the ids
        flags = (bits[..., None] >> np.arange(len(SHAPES))) & 1
        return {**inputs, "shape": torch.from_numpy(flags.astype(np.float32))}

    return shaped


def _padded(labels: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    out = np.full((len(labels), max(len(x) for x in labels)), IGNORE, dtype=np.int64)
    for i, row in enumerate(labels):
        out[i, : len(row)] = row
    return out


# Sentences of the training set that calibrate the int8 graph, and that probe it.
N_CALIBRATION = 256
N_PROBES = 64
Scorer = Callable[[list[list[int]]], float]


def finetune_encoder(
    model: str | os.PathLike[str],
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[int]],
    *,
    n_tags: int,
    out: Path,
    dev: tuple[Sequence[Sequence[str]], Scorer] | None = None,
    shape: bool = False,
    device: str = "auto",
    show_progress: bool | None = None,
    **settings: Unpack[SettingsOptions],
) -> dict[str, Any]:
    """Fine-tune ``model`` to tag words; write the encoder artifact to ``out``.

    Args:
        model: A registry alias, model folder, hub id, or an artifact with ``hf/``.
        sentences: Training sentences as word lists.
        tags: Their tag indices, one per word.
        n_tags: Number of tags.
        out: Where to write the encoder artifact (must not exist).
        dev: Dev sentences and a scorer of predicted tag indices (higher is better),
            for early stopping and keeping the best weights.
        shape: The tag classifier also sees the words' shape flags
            (:func:`~featx.tagging.features.word_shapes`), as the tagger's CRF will.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        show_progress: Progress bars; ``None`` shows them on a terminal.
        **settings: :class:`~featx.finetuning.Settings` (``train_layers`` > 0).

    Returns:
        The fine-tuning report (also saved in the artifact as ``finetune.json``).
    """
    chosen = Settings(**settings)
    if chosen.train_layers == 0 or chosen.mixup or chosen.lora or chosen.hidden:
        raise ValueError(
            "Token fine-tuning trains encoder layers with a linear tag classifier: give "
            "train_layers > 0 (or 'all'), without mixup, lora or hidden (a frozen encoder "
            "needs no fine-tuning: train the tagger on it directly)."
        )
    source_dir, name, spec = starting_point(model)
    torch.manual_seed(chosen.seed)
    hf_model = load_hf_model(source_dir, attention_dropout=chosen.attention_dropout)
    token_model = TokenModel(hf_model, n_tags, chosen.dropout, shape=shape)
    reference = TorchEncoder(
        hf_model, load_hf_tokenizer(source_dir), spec, representation=Representation()
    )
    windows, labels = tagged_windows(reference, sentences, tags, shape=shape)
    feed = shaped_feeder(feeder(reference)) if shape else feeder(reference)
    torch_dev = torch_device(device)
    score = None if dev is None else _dev_scorer(token_model, reference, feed, dev, torch_dev)
    training = Training(
        token_model,  # type: ignore[arg-type]
        Data([windows], _padded(labels)),
        chosen,
        task="tokens",
        n_out=n_tags,
        num_layers=spec.num_layers,
        feed=feed,
        device=torch_dev,
    )
    history = training.run(score, "f1", show_progress=want_progress(show_progress))
    token_model.to("cpu")
    report = run_report(
        history,
        chosen,
        torch_dev,
        model=name,
        task="tokens",
        shape_flags=shape,
        n_train=len(sentences),
        n_dev=0 if dev is None else len(dev[0]),
    )
    _export(token_model, source_dir, out, spec.max_length, sentences, report, show_progress)
    return report


def _export(
    token_model: TokenModel,
    source_dir: Path,
    out: Path,
    max_length: int,
    sentences: Sequence[Sequence[str]],
    report: dict[str, Any],
    show_progress: bool | None,
) -> None:
    """Export the fine-tuned encoder, calibrated and probed on training sentences."""
    rng = np.random.default_rng(0)
    texts = [" ".join(sentences[i]) for i in rng.permutation(len(sentences))]
    texts = texts[: N_CALIBRATION + N_PROBES]
    export_encoder(
        token_model.encoder,
        source_dir,
        out,
        max_length=max_length,
        calibration_texts=texts[:N_CALIBRATION],
        probe_texts=texts[N_CALIBRATION:],
        show_progress=show_progress,
    )
    seal_finetuned(out, report, what="fine-tuned for tokens", task="tokens")


def _dev_scorer(
    model: TokenModel,
    reference: TorchEncoder,
    feed: Feed,
    dev: tuple[Sequence[Sequence[str]], Scorer],
    device: torch.device,
) -> Callable[[], dict[str, float]]:
    """Scores the dev sentences' predicted tags (entity F1)."""
    sentences, scorer = dev
    blank = [[0] * len(s) for s in sentences]
    windows, labels = tagged_windows(reference, sentences, blank, shape=model.shape)

    def score() -> dict[str, float]:
        return {"f1": scorer(_regroup(_predict(model, feed, windows, labels, device), sentences))}

    return score


@torch.no_grad()
def _predict(
    model: TokenModel,
    feed: Feed,
    windows: list[NDArray[np.int32]],
    labels: list[NDArray[np.int64]],
    device: torch.device,
) -> list[int]:
    """Argmax tag of every tagged piece, in window order."""
    out: list[int] = []
    order = np.argsort([len(w) for w in windows], kind="stable")
    by_window: dict[int, list[int]] = {}
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        inputs = {k: v.to(device) for k, v in feed([windows[r] for r in rows]).items()}
        predicted = model(inputs).argmax(-1).cpu().numpy()
        for b, r in enumerate(rows):
            where = np.nonzero(labels[r] != IGNORE)[0]
            by_window[int(r)] = predicted[b, where].tolist()
    for r in range(len(windows)):
        out.extend(by_window[r])
    return out


def _regroup(flat: list[int], sentences: Sequence[Sequence[str]]) -> list[list[int]]:
    out, position = [], 0
    for words in sentences:
        out.append(flat[position : position + len(words)])
        position += len(words)
    return out
