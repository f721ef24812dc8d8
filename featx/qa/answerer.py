"""``Answerer``: extractive question answering from a ``qa`` artifact, on ONNX Runtime.

The artifact's root encoder is the fine-tuned encoder (ONNX, verified like any other);
the span head is a (dim, 2) matrix over its last hidden state, read from an npz file
without pickle. Questions go through :class:`~featx.qa.windows.SpanPreparer` and
:func:`~featx.qa.decode.best_spans`, so answers are slices of the given contexts.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.artifact import Artifact, Kind, QASection
from featx.artifact.sections import QA_OUTPUT
from featx.batching import model_feed, plan_batches
from featx.encoders.onnx import OnnxEncoder, make_session
from featx.errors import ModelLoadError
from featx.qa.decode import Span, best_spans
from featx.qa.metric import question_scores, squad_scores
from featx.qa.squad import Question, check_question
from featx.qa.windows import SpanPreparer, SpanWindows

logger = logging.getLogger(__name__)
# Span logits (windows, pieces, 2) of a batch of windows: ids, segment ids, pad id.
SpanRun = Callable[[list[NDArray[np.int32]], list[NDArray[np.int32]]], NDArray[np.float32]]


def span_logits(
    windows: SpanWindows, run: SpanRun, *, batch_size: int = 32, max_tokens: int = 16384
) -> tuple[list[NDArray[np.float32]], list[NDArray[np.float32]]]:
    """Start and end logits of every window, in window order."""
    starts: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(windows.ids)
    ends = list(starts)
    lengths = [len(w) for w in windows.ids]
    for rows in plan_batches(lengths, batch_size=batch_size, max_tokens=max_tokens):
        out = run([windows.ids[r] for r in rows], [windows.type_ids[r] for r in rows])
        for b, r in enumerate(rows):
            starts[r], ends[r] = out[b, : lengths[r], 0], out[b, : lengths[r], 1]
    return starts, ends


class Answerer:
    """Answers questions with spans of their contexts.

    Load one with :meth:`load`; :meth:`answer` takes one question and its context,
    :meth:`answer_batch` many, :meth:`evaluate` scores SQuAD questions.
    """

    def __init__(
        self,
        encoder: OnnxEncoder,
        weight: NDArray[np.float32],
        bias: NDArray[np.float32],
        section: QASection,
        metrics: dict[str, Any] | None = None,
        span_session: Any = None,
    ) -> None:
        self.encoder, self.weight, self.bias, self.section = encoder, weight, bias, section
        self.metrics = metrics or {}
        # The encoder + span head graph of this precision, if the artifact has it: one
        # run gives the logits; else the encoder's graph runs and the head in numpy.
        self.span_session = span_session
        self.preparer = SpanPreparer(
            encoder.tokenizer,
            encoder.max_length,
            stride=section.stride,
            max_question=section.max_question,
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        precision: str | None = None,
        threads: int | None = None,
        encoder: OnnxEncoder | None = None,
    ) -> Answerer:
        """Load a ``qa`` artifact, checking every file it reads.

        ``encoder`` is the artifact's own encoder already loaded (a server's one session);
        by default it is loaded here with ``precision`` and ``threads``.

        Raises:
            ModelLoadError: If it is not a question answerer, or its head is malformed.
            ArtifactIntegrityError: If a file does not match its checksum.
        """
        from featx.artifact.estimators import open_trained

        artifact = open_trained(path, Kind.QA)
        section, weight, bias = read_span_head(artifact)
        if encoder is None:
            # With a span graph of this precision the encoder's own graph runs only if
            # asked for embeddings: it opens then, so answering holds one graph.
            encoder = OnnxEncoder.from_dir(
                artifact.path, precision=precision, threads=threads, lazy=bool(section.graphs)
            )
        if weight.shape != (encoder.dim, 2) or bias.shape != (2,):
            raise ModelLoadError(
                f"{artifact.path}: the span head is {weight.shape}, not ({encoder.dim}, 2)."
            )
        graph = section.graphs.get(str(encoder.precision))
        session = None
        if graph is not None:
            session = make_session(artifact.read(graph), threads=threads)
        return cls(encoder, weight, bias, section, artifact.read_json(section.metrics), session)

    def run_windows(self, ids: list[NDArray[np.int32]], types: list[NDArray[np.int32]]) -> Any:
        """Span logits (windows, pieces, 2) of a batch of windows and their segment ids."""
        spec = self.encoder.spec
        feed = model_feed(ids, spec.pad_id, spec.input_names, types)
        if self.span_session is not None:
            return self.span_session.run([QA_OUTPUT], feed)[0]
        (hidden,) = self.encoder.forward(feed, (spec.num_layers,))
        return hidden @ self.weight + self.bias

    def answer_batch(
        self, pairs: Sequence[tuple[str, str]], *, max_answer_length: int | None = None
    ) -> list[Span]:
        """The best span of each (question, context) pair.

        Raises:
            ValueError: If a question or context is not a non-empty string.
        """
        return self._answer(pairs, max_answer_length)[0]

    def _answer(
        self, pairs: Sequence[Any], max_answer_length: int | None
    ) -> tuple[list[Span], dict[str, int]]:
        # The windows' report is returned, not kept: one Answerer serves many threads.
        checked = [check_question(*_pair(p, i), where=f"pair {i}") for i, p in enumerate(pairs)]
        windows = self.preparer.windows(checked)
        if windows.questions_cut:
            logger.warning(
                "%d of %d questions are longer than %d pieces and were cut to fit.",
                windows.questions_cut,
                len(checked),
                self.section.max_question,
            )
        starts, ends = span_logits(
            windows,
            self.run_windows,
            batch_size=self.encoder.batch_size,
            max_tokens=self.encoder.max_tokens,
        )
        length = max_answer_length or self.section.max_answer_length
        contexts = [c for _, c in checked]
        spans = best_spans(starts, ends, windows, contexts, max_answer_length=length)
        return spans, windows.report()

    def answer(self, question: str, context: str) -> dict[str, Any]:
        """The answer to one question: ``{"answer", "score", "start", "end"}``."""
        return self.answer_batch([(question, context)])[0].to_dict()

    def evaluate(self, questions: Sequence[Question], *, records: bool = False) -> dict[str, Any]:
        """SQuAD exact match and F1 (x100) of ``questions``; per-question records on request."""
        spans, report = self._answer(questions, None)
        scores: dict[str, Any] = squad_scores(
            {q.id: s.text for q, s in zip(questions, spans, strict=True)}, questions
        )
        scores.update(n_questions=len(questions), windows=report)
        if records:
            scores["records"] = [
                {"id": q.id, **s.to_dict(), **question_scores(s.text, [a.text for a in q.answers])}
                for q, s in zip(questions, spans, strict=True)
            ]
        return scores


def _pair(pair: object, i: int) -> tuple[object, object]:
    if isinstance(pair, Question):
        return pair.question, pair.context
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"pair {i}: give (question, context), got {pair!r:.60}.")
    return pair[0], pair[1]


def read_span_head(
    artifact: Artifact,
) -> tuple[QASection, NDArray[np.float32], NDArray[np.float32]]:
    """The qa section and the span head's weight and bias of an opened ``qa`` artifact.

    Raises:
        ModelLoadError: If the head file is not a span head.
        ArtifactIntegrityError: If it does not match its checksum.
    """
    section = artifact.manifest.qa
    assert section is not None  # a qa manifest has its qa section
    try:
        with np.load(io.BytesIO(artifact.read(section.file)), allow_pickle=False) as data:
            return section, data["weight"].astype(np.float32), data["bias"].astype(np.float32)
    except (KeyError, ValueError, OSError) as err:
        raise ModelLoadError(f"{artifact.path / section.file}: not a span head ({err}).") from err
