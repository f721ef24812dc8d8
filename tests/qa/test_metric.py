"""The official SQuAD v1.1 metric, on cases computed by hand."""

from __future__ import annotations

import pytest

from featx.qa import Answer, Question, squad_scores
from featx.qa.metric import exact_match, f1, normalize_answer, question_scores


def test_normalisation_drops_case_punctuation_articles_and_extra_spaces() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and the   plum.") == "apple pear and plum"
    assert normalize_answer("Theatre") == "theatre"  # 'the' only as a whole word


def test_exact_match_and_f1_by_hand() -> None:
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # predicted {denver, broncos, won}, gold {denver, broncos}: P 2/3, R 1, F1 0.8
    assert f1("Denver Broncos won", "Denver Broncos") == pytest.approx(0.8)
    assert f1("a", "the") == 0.0  # both normalise to nothing: no shared token
    assert f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # repeated tokens count


def test_the_best_gold_answer_counts() -> None:
    scores = question_scores("Santa Clara", ["Levi's Stadium", "Santa Clara, California"])
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(0.8)  # P 1, R 2/3


def test_means_over_questions_and_a_missing_prediction_scores_zero() -> None:
    questions = [
        Question("a", "q", "c", (Answer("Denver Broncos", 0),)),
        Question("b", "q", "c", (Answer("1990", 0), Answer("in 1990", 0))),
        Question("c", "q", "c", (Answer("blue", 0),)),
    ]
    scores = squad_scores({"a": "the Denver Broncos.", "b": "1990s"}, questions)
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 / 3)}
    with pytest.raises(ValueError, match="no gold answer"):
        squad_scores({}, [Question("x", "q", "c")])
