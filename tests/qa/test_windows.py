"""Question/context windows: offsets back to the context, labels, long contexts, decoding."""

from __future__ import annotations

import numpy as np
import pytest

import featx
from featx.qa import Answer, read_squad
from featx.qa.decode import best_spans
from featx.qa.windows import NO_ANSWER, SpanPreparer


@pytest.fixture(scope="module")
def minilm_tokenizer(real_artifact):
    return featx.load(str(real_artifact)).tokenizer


def test_labels_point_at_the_answer_in_every_window_that_holds_it(shared_data, minilm_tokenizer):
    questions = read_squad(shared_data("squad", "dev.jsonl"))[:300]
    preparer = SpanPreparer(minilm_tokenizer, 128, stride=32)
    windows = preparer.windows(
        [(q.question, q.context) for q in questions], [q.answers[0] for q in questions]
    )
    assert windows.report()["contexts_in_several_windows"] > 0
    labelled = set()
    for w, owner in enumerate(windows.owner):
        q, offsets = questions[owner], windows.offsets[w]
        assert len(windows.ids[w]) <= 128
        if windows.starts[w] == NO_ANSWER:
            continue
        labelled.add(int(owner))
        start, end = offsets[windows.starts[w], 0], offsets[windows.ends[w], 1]
        # The pieces cover the answer: whole words around it, never other text.
        assert q.answers[0].text in q.context[start:end]
        assert end - start <= len(q.answers[0].text) + 12
    assert len(labelled) >= 0.99 * len(questions)
    # Every character of every context is in some window.
    for i, q in enumerate(questions[:50]):
        mine = [windows.offsets[w] for w in np.flatnonzero(windows.owner == i)]
        covered = np.zeros(len(q.context), dtype=bool)
        for offsets in mine:
            for s, e in offsets[offsets[:, 0] >= 0]:
                covered[s:e] = True
        text_chars = np.asarray([not ch.isspace() for ch in q.context])
        assert covered[text_chars].all()


def test_a_long_question_is_cut_and_counted(minilm_tokenizer):
    preparer = SpanPreparer(minilm_tokenizer, 64)
    assert (preparer.max_question, preparer.stride) == (16, 22)
    windows = preparer.windows([("why " * 40 + "?", "because it is so.")])
    assert windows.questions_cut == 1
    assert windows.report() == {
        "questions": 1,
        "windows": 1,
        "questions_cut": 1,
        "contexts_in_several_windows": 0,
    }


def test_a_window_too_small_is_refused_with_the_fix(minilm_tokenizer):
    with pytest.raises(ValueError, match="Use a smaller stride or max_question"):
        SpanPreparer(minilm_tokenizer, 64, stride=60)


def test_decoding_picks_the_best_span_over_windows_as_a_slice_of_the_context(minilm_tokenizer):
    context = "Paris is the capital of France. " * 8 + "Berlin is the capital of Germany."
    preparer = SpanPreparer(minilm_tokenizer, 48, stride=8)
    windows = preparer.windows([("What is the capital of Germany?", context)])
    assert len(windows.ids) >= 2
    wanted = Answer("Berlin", context.index("Berlin"))
    target = preparer.windows([("What is the capital of Germany?", context)], [wanted])
    starts, ends = [], []
    for w in range(len(windows.ids)):
        s, e = np.zeros(len(windows.ids[w]), np.float32), np.zeros(len(windows.ids[w]), np.float32)
        if target.starts[w] != NO_ANSWER:
            s[target.starts[w]], e[target.ends[w]] = 9.0, 9.0
        s[0] = e[0] = 20.0  # the no-answer position is never an answer
        starts.append(s)
        ends.append(e)
    (span,) = best_spans(starts, ends, windows, [context])
    assert (span.text, span.start, span.end) == ("Berlin", wanted.start, wanted.end)
    assert 0.0 < span.score <= 1.0
    (short,) = best_spans(starts, ends, windows, [context], max_answer_length=1)
    assert short.text == "Berlin"  # one piece
    with pytest.raises(ValueError, match="at least 1"):
        best_spans(starts, ends, windows, [context], n_best=0)
