"""Fine-tuning for question answering on tiny models of every family, and the qa artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from featx.artifact import Artifact, Kind
from featx.artifact.describe import describe
from featx.config import Precision
from featx.errors import ModelLoadError
from featx.qa import Answer, Answerer, Question

pytest.importorskip("torch")
from conftest import toy_questions  # noqa: E402

from featx.qa import finetune  # noqa: E402  (needs torch)


def test_every_family_learns_to_answer_and_saves_a_qa_artifact(
    tiny_model_dirs: dict[str, Path], family: str, tmp_path: Path
) -> None:
    train = toy_questions(40)
    answerer = finetune(
        train,
        model=tiny_model_dirs[family],
        out=tmp_path / "qa",
        dev=train[:8],
        epochs=30,
        lr=1e-3,
        batch_size=8,
        patience=None,  # 8 toy dev questions can stall for 2 epochs and stop it early
        show_progress=False,
    )
    scores = answerer.evaluate(train[:20], records=True)
    assert scores["f1"] >= 80.0, scores
    record = scores["records"][0]
    context = train[0].context
    assert context[record["start"] : record["end"]] == record["answer"]  # a slice, no spaces
    assert record["answer"] == record["answer"].strip()
    manifest = Artifact.open(tmp_path / "qa").manifest
    assert manifest.kind is Kind.QA and manifest.finetune is not None
    gate = answerer.metrics["dev_gate"]
    assert gate["checked"] and set(gate["fp32"]) == {"exact_match", "f1"}
    assert answerer.encoder.precision == ("int8" if gate["passes"] else "fp32")
    # Encoder and span head in one graph per precision, checked against the two-step path.
    assert dict(answerer.section.graphs) == {"fp32": "qa.onnx", "int8": "qa_int8.onnx"}
    assert answerer.span_session is not None
    two_step = Answerer.load(tmp_path / "qa")
    two_step.span_session = None
    assert [s.text for s in two_step.answer_batch([(q.question, q.context) for q in train])] == [
        s.text for s in answerer.answer_batch([(q.question, q.context) for q in train])
    ]
    lines = "\n".join(describe(Artifact.open(tmp_path / "qa")))
    assert "kind:       qa" in lines and "dev gate:   F1 fp32" in lines
    assert "qa graphs:  fp32 qa.onnx, int8 qa_int8.onnx" in lines
    one = Answerer.load(tmp_path / "qa", precision="fp32").answer(
        "what color is the car?", "the quick car is green and the lazy dog is slow"
    )
    assert set(one) == {"answer", "score", "start", "end"}


def test_an_int8_graph_that_fails_the_gate_is_rebuilt_and_answering_opens_one_graph(
    tiny_model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import featx.finetuning.span_gate as span_gate

    monkeypatch.setattr(span_gate, "MAX_INT8_LOSS", -1e9)  # no int8 graph can pass
    train = toy_questions(16)
    out = tmp_path / "qa"
    answerer = finetune(train, model=tiny_model_dirs["bert"], out=out, dev=train[:8],
                        epochs=2, show_progress=False)  # fmt: skip
    gate = answerer.metrics["dev_gate"]
    assert gate["int8_fp32_matmuls"] == 2 and "first_try" in gate  # every rebuild tried
    assert not gate["passes"] and answerer.encoder.precision == "fp32"
    artifact = Artifact.open(out)
    artifact.verify_all()  # the rebuilt int8 graphs are sealed like every other file
    encoder = artifact.manifest.encoder
    assert encoder is not None and encoder.variants[Precision.INT8].recipe["fp32_matmuls"] == 2
    # No pooled embedding graphs in a qa artifact: answers come from the span graphs.
    assert encoder.fast == {} and not list(out.glob("model_fast*"))
    int8 = Answerer.load(out, precision="int8")
    assert int8.answer(train[0].question, train[0].context)["answer"] in train[0].context
    assert int8.encoder._session is None  # the encoder graph was never opened
    assert int8.encoder.encode(["the fox is red"]).shape == (1, 32)  # opens it on demand


def test_without_dev_fp32_is_the_default_and_the_window_report_is_kept(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    long = Question(
        "long", "what color is the fox?", "the fox is red. " + "words " * 200, (Answer("red", 11),)
    )
    answerer = finetune(
        [*toy_questions(8), long],
        model=tiny_model_dirs["bert"],
        out=tmp_path / "qa",
        epochs=1,
        show_progress=False,
    )
    assert answerer.encoder.precision == "fp32"
    windows = answerer.metrics["finetune"]["windows"]
    assert windows["contexts_in_several_windows"] == 1 and windows["windows"] > 9


def test_bad_input_is_refused_before_any_work(
    tiny_model_dirs: dict[str, Path], tiny_artifacts: dict[str, Path], tmp_path: Path
) -> None:
    model = tiny_model_dirs["bert"]
    with pytest.raises(ValueError, match="questions is empty"):
        finetune([], model=model, out=tmp_path / "a")
    with pytest.raises(ValueError, match="has no answer"):
        finetune([Question("x", "q?", "ctx")], model=model, out=tmp_path / "a")
    with pytest.raises(ValueError, match="not a featx.qa.Question"):
        finetune([("q?", "ctx")], model=model, out=tmp_path / "a")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="train_layers > 0"):
        finetune(toy_questions(2), model=model, out=tmp_path / "a", train_layers=0)
    with pytest.raises(ModelLoadError, match="not a question answerer"):
        Answerer.load(tiny_artifacts["bert"])
    assert not (tmp_path / "a").exists()


def test_answer_batch_refuses_bad_pairs(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    answerer = finetune(
        toy_questions(4),
        model=tiny_model_dirs["distilbert"],
        out=tmp_path / "qa",
        epochs=1,
        show_progress=False,
    )
    with pytest.raises(ValueError, match="pair 1: the context is empty"):
        answerer.answer_batch([("q?", "some context"), ("q?", " ")])
    with pytest.raises(ValueError, match=r"give \(question, context\)"):
        answerer.answer_batch(["just a string"])  # type: ignore[list-item]
