"""Few-shot contrastive fine-tuning (SetFit's recipe): pairs, training, export, head, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

import featx  # noqa: E402
from featx.artifact import Artifact  # noqa: E402
from featx.cli import main  # noqa: E402
from featx.finetuning.contrastive import ITERATIONS, iterations, pairs  # noqa: E402

POSITIVE = ["the movie was great", "i love the film", "a great and good movie", "love it"]
NEGATIVE = ["the movie was terrible", "i hate the film", "a terrible and bad movie", "hate it"]
TEXTS = POSITIVE * 2 + NEGATIVE * 2
LABELS = ["pos"] * 8 + ["neg"] * 8


def test_pairs_are_same_class_then_other_class_for_every_text() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    rows = pairs(labels, np.random.default_rng(0))
    assert len(rows) == 2 * ITERATIONS * len(labels)
    first, second, same = rows.T
    assert np.array_equal(labels[first] == labels[second], same == 1)
    assert (same == 1).sum() == (same == 0).sum()
    assert np.bincount(first).tolist() == [2 * ITERATIONS] * len(labels)
    # Past MAX_PAIRS / 40 texts, fewer rounds keep an epoch within MAX_PAIRS pairs.
    many = np.arange(1000) % 2
    assert iterations(1000) == 2 and len(pairs(many, np.random.default_rng(0))) == 4000
    assert iterations(10_000) == 1


def test_contrastive_fine_tuning_moves_the_encoder_and_saves_a_predictor(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "few-shot"
    result = featx.finetune(
        TEXTS,
        LABELS,
        model=str(tiny_model_dirs["bert"]),
        method="contrastive",
        out=out,
        dev=(TEXTS, LABELS),
        lr=1e-3,
        show_progress=False,
    )
    report = result.report
    assert report["method"] == "contrastive" and report["n_pairs"] == 2 * ITERATIONS * 16
    assert report["settings"]["train_layers"] == "all" and report["settings"]["epochs"] == 1
    assert report["settings"]["attention_dropout"] == 0.1  # SetFit's, unlike other methods
    losses = [s["loss"] for s in report["history"]["steps"]]
    assert len(losses) == report["n_pairs"] // 16
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # the pairs were learnt
    predictor = featx.Predictor.load(out)
    assert predictor.metrics["finetune"]["method"] == "contrastive"
    assert predictor.metrics["dev"]["accuracy"] >= 0.75
    assert predictor.predict(TEXTS) == result.predictor.predict(TEXTS)
    # The saved encoder is the fine-tuned one (not the starting weights), with its hf/ folder.
    manifest = Artifact.open(out).manifest
    assert manifest.finetune is not None and "contrastive" in manifest.source.name
    assert (out / manifest.finetune.hf / "config.json").is_file()
    before = featx.load(str(tiny_model_dirs["bert"])).encode(TEXTS[:2])
    after = featx.load(str(out)).encode(TEXTS[:2])
    assert not np.allclose(before, after, atol=1e-3)


def test_contrastive_refuses_what_it_cannot_learn_from(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model = str(tiny_model_dirs["bert"])
    scores = [float(i % 3) for i in range(len(TEXTS))]
    with pytest.raises(ValueError, match="learns from class labels of single texts"):
        featx.finetune(TEXTS, scores, model=model, method="contrastive", out=tmp_path / "a")
    with pytest.raises(ValueError, match="Unknown method 'setfit'"):
        featx.finetune(TEXTS, LABELS, model=model, method="setfit", out=tmp_path / "b")
    with pytest.raises(ValueError, match="drop param_grid"):
        featx.finetune(
            TEXTS, LABELS, model=model, method="contrastive", out=tmp_path / "c",
            dev=(TEXTS, LABELS), param_grid={"lr": [1e-4, 1e-3]},
        )  # fmt: skip


def test_the_cli_runs_contrastive_fine_tuning(tiny_model_dirs: dict[str, Path], tmp_path: Path):
    data = tmp_path / "train.tsv"
    rows = "".join(f"{t}\t{y}\n" for t, y in zip(TEXTS, LABELS, strict=True))
    data.write_text("text\tlabel\n" + rows)
    out = tmp_path / "cli"
    args = ["finetune", "-m", str(tiny_model_dirs["bert"]), "--data", str(data)]
    args += ["--method", "contrastive", "--lr", "1e-3", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"trained the encoder on {2 * ITERATIONS * 16:,} pairs" in result.output
    predicted = CliRunner().invoke(main, ["predict", str(out), "--input", str(data)])
    assert predicted.exit_code == 0, predicted.output
    assert len([json.loads(line) for line in predicted.stdout.splitlines()]) == 16
