"""Fine-tuning end to end: tiny models of every family, the real default model, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

import torch  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

import featx  # noqa: E402
from featx.cli import main  # noqa: E402
from featx.encoders.torch import ATTENTION_DROPOUT_KEYS, load_hf_model  # noqa: E402
from featx.errors import ModelLoadError  # noqa: E402
from featx.finetuning import Settings, finetune  # noqa: E402
from featx.finetuning.model import TextModel, freeze, transformer_layers  # noqa: E402
from featx.finetuning.trainer import (  # noqa: E402
    autocast_dtype,
    cpu_supports_bf16,
    learning_rate_factor,
    length_batches,
    param_groups,
)
from featx.predictor import Predictor  # noqa: E402

POSITIVE = ["the movie was great", "i love the film", "a great and good movie", "love it"]
NEGATIVE = ["the movie was terrible", "i hate the film", "a terrible and bad movie", "hate it"]
TEXTS = POSITIVE * 3 + NEGATIVE * 3
LABELS = ["pos"] * 12 + ["neg"] * 12
# Big enough steps that a tiny random model learns the toy task in a few epochs.
FAST = {"lr": 3e-3, "head_lr": 1e-2, "warmup": 0.0, "batch_size": 8, "patience": None}


def _tune(model: Any, out: Path, *, X: Any = TEXTS, y: Any = LABELS, **overrides: Any) -> Any:
    """``finetune`` on the toy data with the fast settings, quietly."""
    settings = {**FAST, **overrides}
    return finetune(X, y, model=str(model), out=out, show_progress=False, **settings)


def _weights(folder: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


def _frozen_prefixes(family: str, n_layers: int, train_layers: int) -> tuple[str, ...]:
    """Weight names that must not change when the top ``train_layers`` train."""
    block = {
        "bert": "encoder.layer",
        "roberta": "encoder.layer",
        "distilbert": "transformer.layer",
        "modernbert": "layers",
        "gpt2": "h",
        "qwen3": "layers",
    }
    frozen = [f"{block[family]}.{i}." for i in range(n_layers - train_layers)]
    embeddings = {"gpt2": ("wte.", "wpe."), "qwen3": ("embed_tokens.",)}.get(
        family, ("embeddings.",)
    )
    return (*frozen, *embeddings)


def test_each_family_fine_tunes_exports_and_keeps_frozen_weights_identical(
    family: str, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    source = tiny_model_dirs[family]
    out = tmp_path / "ft"
    result = _tune(source, out, dev=(TEXTS, LABELS), train_layers=1, epochs=2)
    # A normal artifact: a predictor, an encoder, the Hugging Face folder, a report.
    predictor = Predictor.load(out)
    assert predictor.labels == ["neg", "pos"]
    assert set(predictor.predict(TEXTS)) <= {"neg", "pos"}
    assert featx.load(out).encode(["good film"]).shape[0] == 1
    manifest = json.loads((out / "featx.json").read_text())
    assert manifest["finetune"]["hf"] == "hf" and (out / "hf" / "config.json").is_file()
    assert (out / "finetune.json").is_file() and (out / "finetune_curves.png").is_file()
    # Trained without attention dropout (the default), so the saved config says so.
    config = json.loads((out / "hf" / "config.json").read_text())
    assert [config[k] for k in ATTENTION_DROPOUT_KEYS if k in config] == [0.0]
    gate = result.report["dev_gate"]
    assert gate["checked"] and gate["metric"] == "accuracy" and gate["agreement"] >= 0.9

    before, after = _weights(source), _weights(out / "hf")
    frozen = _frozen_prefixes(family, 2, 1)
    checked = changed = 0
    for name, tensor in before.items():
        key = name if name in after else name.split(".", 1)[-1]  # base-model prefixes
        if key not in after:
            continue
        if any(key.startswith(p) or key.startswith(f"{family}.{p}") for p in frozen):
            np.testing.assert_array_equal(after[key], tensor, err_msg=key)
            checked += 1
        elif not np.array_equal(after[key], tensor):
            changed += 1
    assert checked > 0 and changed > 0


def test_a_tiny_model_learns_the_toy_task(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    result = _tune(
        tiny_model_dirs["bert"],
        tmp_path / "ft",
        dev=(TEXTS, LABELS),
        train_layers="all",
        epochs=12,
    )
    assert result.report["best"]["accuracy"] == 1.0
    # The exported artifact (ONNX + numpy head) predicts what the torch model did.
    assert result.predictor.predict(POSITIVE + NEGATIVE) == ["pos"] * 4 + ["neg"] * 4
    history = result.report["history"]
    assert (
        len(history["evals"]) == 12 and history["steps"][0]["loss"] > history["steps"][-1]["loss"]
    )


def test_head_only_leaves_the_whole_encoder_identical(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    source = tiny_model_dirs["distilbert"]
    result = _tune(source, tmp_path / "ft", train_layers=0, epochs=3)
    before, after = _weights(source), _weights(tmp_path / "ft" / "hf")
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert result.report["trainable_parameters"]["trainable"] == 32 * 2 + 2


@pytest.mark.parametrize("hidden", [(), (16,)])
def test_the_numpy_head_equals_the_torch_head(
    hidden: tuple[int, ...], tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ft"
    _tune(tiny_model_dirs["bert"], out, train_layers=1, epochs=2, hidden=hidden, autocast="fp32")
    predictor = Predictor.load(out)
    head = predictor.estimator.steps[-1][1]
    features = featx.load(out, backend="torch").encode(TEXTS)
    linears = [torch.nn.Linear(w.shape[1], w.shape[0]) for w in head.weights]
    for linear, w, b in zip(linears, head.weights, head.biases, strict=True):
        linear.weight.data, linear.bias.data = torch.from_numpy(w), torch.from_numpy(b)
    x = torch.from_numpy(features)
    for i, linear in enumerate(linears):
        x = linear(x) if i == len(linears) - 1 else torch.relu(linear(x))
    np.testing.assert_allclose(head.decision_function(features), x.detach().numpy(), atol=1e-5)
    # fp32 ONNX + numpy head against torch features + torch head.
    expected = torch.softmax(x, dim=1).detach().numpy()
    got = Predictor.load(out).estimator.set_params(embed__precision="fp32").predict_proba(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_regression_multilabel_and_pairs(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = str(tiny_model_dirs["bert"])
    scores = [4.5, 4.0, 4.2, 3.9] * 3 + [0.5, 1.0, 0.2, 0.8] * 3
    result = _tune(
        model,
        tmp_path / "reg",
        X=TEXTS,
        y=scores,
        dev=(TEXTS, scores),
        train_layers="all",
        epochs=8,
    )
    assert result.predictor.task.value == "regression"
    predicted = np.asarray(result.predictor.predict(TEXTS))
    assert 0.0 < predicted.mean() < 5.0  # the target scaling is folded back into the head
    assert result.report["best"]["spearman"] > 0.5

    tags = [["movie", "good"] if lab == "pos" else ["movie"] for lab in LABELS]
    result = _tune(model, tmp_path / "ml", X=TEXTS, y=tags, dev=(TEXTS, tags), epochs=2)
    assert result.predictor.labels == ["good", "movie"]
    assert all(isinstance(row, list) for row in result.predictor.predict(TEXTS[:3]))

    other = [(i * 5) % len(TEXTS) for i in range(len(TEXTS))]
    pairs = np.array([[TEXTS[i], TEXTS[j]] for i, j in enumerate(other)], dtype=object)
    same = ["same" if LABELS[i] == LABELS[j] else "different" for i, j in enumerate(other)]
    result = _tune(model, tmp_path / "pairs", X=pairs, y=same, dev=(pairs, same), epochs=2)
    assert result.predictor.n_pair_columns == 2
    assert len(result.predictor.predict(pairs[:4])) == 4


def test_search_mixup_and_augmentation(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = str(tiny_model_dirs["bert"])
    result = finetune(
        TEXTS,
        LABELS,
        model=model,
        out=tmp_path / "s",
        dev=(TEXTS, LABELS),
        epochs=2,
        param_grid={"lr": [1e-7, 3e-3], "train_layers": [1, "all"]},
        mixup=0.4,
        augment="swap,delete",
        show_progress=False,
        **{k: v for k, v in FAST.items() if k != "lr"},
    )
    runs = result.report["search"]
    assert len(runs) == 4
    best = max(runs, key=lambda r: r["best"]["accuracy"])
    assert result.report["best"]["accuracy"] == best["best"]["accuracy"]
    assert result.report["n_train"] > len(TEXTS)  # augmented copies of the training texts


def test_bad_input_is_refused_before_training(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model = str(tiny_model_dirs["bert"])
    out = tmp_path / "x"

    def run(X: Any = TEXTS, y: Any = LABELS, **kwargs: Any) -> None:
        finetune(X, y, model=model, out=out, show_progress=False, **kwargs)

    with pytest.raises(ValueError, match="Too few examples per class"):
        run(TEXTS + ["odd"], LABELS + ["rare"])
    with pytest.raises(ValueError, match="never occur in the training"):
        run(dev=(["x"], ["other"]))
    with pytest.raises(ValueError, match="so the dev set must too"):
        run(dev=(np.array([["a", "b"]], dtype=object), ["pos"]))
    with pytest.raises(ValueError, match="needs y_dev"):
        run(dev=(["x"], None))
    with pytest.raises(ValueError, match="A search needs a dev set"):
        run(param_grid={"lr": [1e-4, 1e-3]})
    with pytest.raises(ValueError, match="Cannot search"):
        run(dev=(TEXTS, LABELS), param_grid={"colour": [1, 2]})
    with pytest.raises(ValueError, match="GiB but"):
        run(batch_size=10**9)
    with pytest.raises(ValueError, match="train_layers"):
        run(train_layers=-1)
    with pytest.raises(ValueError, match="schedule"):
        run(schedule="exponential")
    featx.export(model, tmp_path / "plain", quantize=False, show_progress=False)
    with pytest.raises(ModelLoadError, match="needs the Hugging Face model"):
        finetune(TEXTS, LABELS, model=str(tmp_path / "plain"), out=out)
    assert not out.exists()


def test_learning_rates_schedule_and_bf16() -> None:
    assert learning_rate_factor(0, 100, 10, "linear") == pytest.approx(0.1)
    assert learning_rate_factor(10, 100, 10, "linear") == pytest.approx(1.0)
    assert learning_rate_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert learning_rate_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert learning_rate_factor(99, 100, 10, "constant") == 1.0
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    expected = torch.bfloat16 if cpu_supports_bf16() else None
    assert autocast_dtype("auto", torch.device("cpu")) is expected
    with pytest.raises(ValueError, match="needs a GPU"):
        autocast_dtype("fp16", torch.device("cpu"))
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=500)
    batches = length_batches(lengths, 16, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 4  # similar lengths share a batch


def test_layerwise_rates_and_no_decay_on_biases_and_norms(tiny_model_dirs: dict[str, Path]) -> None:
    from featx.config import Representation
    from featx.encoders.torch import load_hf_model

    encoder = load_hf_model(tiny_model_dirs["bert"])
    model = TextModel(encoder, Representation(), 2)
    settings = Settings(train_layers=2, lr=1e-4, layer_decay=0.5, weight_decay=0.1)
    trainable = freeze(model, settings.train_layers, 2)
    assert not any(n.startswith("encoder.embeddings") for n in trainable)
    groups = param_groups(model, settings, 2)
    by_param = {id(p): g for g in groups for p in g["params"]}
    top, below = transformer_layers(encoder, 2)[1], transformer_layers(encoder, 2)[0]
    assert by_param[id(top.attention.self.query.weight)]["lr"] == pytest.approx(1e-4)
    assert by_param[id(below.attention.self.query.weight)]["lr"] == pytest.approx(5e-5)
    assert by_param[id(top.attention.self.query.weight)]["weight_decay"] == 0.1
    assert by_param[id(top.output.LayerNorm.weight)]["weight_decay"] == 0.0
    assert by_param[id(top.attention.self.query.bias)]["weight_decay"] == 0.0
    assert id(encoder.embeddings.word_embeddings.weight) not in by_param


def test_cli_finetune_then_predict_and_serve(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "train.tsv"
    data.write_text(
        "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in zip(TEXTS, LABELS, strict=True))
    )
    out = tmp_path / "model"
    runner = CliRunner()
    args = [
        "finetune",
        "--model",
        str(tiny_model_dirs["roberta"]),
        "--data",
        str(data),
        "--dev",
        str(data),
        "--out",
        str(out),
        "--train-layers",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--param-grid",
        "lr=1e-4,3e-3",
        "--augment",
        "swap",
        "--no-progress",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "int8 gate" in result.output and "wrote" in result.output
    info = runner.invoke(main, ["info", str(out)])
    assert "fine-tuned: from" in info.output and "dev gate:   accuracy" in info.output
    result = runner.invoke(main, ["predict", str(out), "--input", "-"], input="i love the film\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0])["label"] in ("neg", "pos")

    bad = tmp_path / "dev.tsv"
    bad.write_text("sentence\tlabel\nhello\tpos\n")
    result = runner.invoke(main, [*args[:6], str(bad), "--out", str(tmp_path / "m2")])
    assert result.exit_code != 0 and "does not fit" in result.output

    from server import create_app

    client = create_app({"MODELS": {"ft": str(out)}}).test_client()
    answer = client.post("/predict", json={"model": "ft", "texts": POSITIVE})
    assert answer.status_code == 200
    served = [row["label"] for row in answer.get_json()["predictions"]]
    assert served == Predictor.load(out).predict(POSITIVE)


SENTIMENT = [
    ("a wonderful, moving film with a great cast", 1),
    ("one of the best movies of the year", 1),
    ("funny, warm and beautifully acted", 1),
    ("i loved every minute of it", 1),
    ("a delightful and clever comedy", 1),
    ("an excellent story, well told", 1),
    ("a dull, lifeless and boring mess", 0),
    ("the worst film i have seen in years", 0),
    ("tedious, predictable and far too long", 0),
    ("i hated every minute of it", 0),
    ("a clumsy and painfully unfunny comedy", 0),
    ("a terrible story, badly told", 0),
]


@pytest.mark.real
def test_the_default_model_fine_tunes_on_a_small_subset(tmp_path: Path) -> None:
    texts = [t for t, _ in SENTIMENT] * 2
    labels = [y for _, y in SENTIMENT] * 2
    out = tmp_path / "minilm-ft"
    result = featx.finetune(
        texts,
        labels,
        model="minilm",
        out=out,
        dev=(texts[:12], labels[:12]),
        train_layers=1,
        epochs=5,
        lr=2e-4,
        head_lr=5e-3,
        batch_size=8,
        show_progress=False,
    )
    report = result.report
    assert report["autocast_used"] in ("bfloat16", "fp32")
    assert report["trainable_parameters"]["trainable"] < report["trainable_parameters"]["total"] / 5
    gate = report["dev_gate"]
    assert gate["checked"] and gate["agreement"] >= 0.9 and "onnx_int8" in gate
    predictor = featx.Predictor.load(out)
    assert predictor.predict(["a wonderful film", "a boring mess"]) == [1, 0]
    # The same artifact still embeds, with its fine-tuned encoder.
    assert featx.load(out).encode(["a wonderful film"]).shape == (1, 384)


def test_an_int8_graph_that_fails_the_dev_gate_is_rebuilt_then_refused(
    tiny_model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import featx.finetuning.gate as gate

    monkeypatch.setattr(gate, "MIN_AGREEMENT", 1.01)  # no int8 graph can pass
    out = tmp_path / "ft"
    result = _tune(tiny_model_dirs["bert"], out, dev=(TEXTS, LABELS), train_layers=1, epochs=1)
    gate = result.report["dev_gate"]
    assert gate["int8_fp32_matmuls"] == 2 and "first_try" in gate  # every rebuild tried
    assert not gate["passes"]
    manifest = json.loads((out / "featx.json").read_text())
    assert manifest["encoder"]["default_precision"] == "fp32"
    assert manifest["encoder"]["variants"]["int8"]["recipe"]["fp32_matmuls"] == 2  # one per layer
    # The rebuilt graph is sealed and verified like any other file.
    assert featx.load(out, precision="int8").encode(["love it"]).shape == (1, 32)
    assert Predictor.load(out).predict(["love it"])[0] in ("neg", "pos")
    # The fast int8 graph was cut again from the rebuilt graph (then gated, and refused).
    assert "int8" not in manifest["encoder"]["fast"]
    assert gate["fast_int8"]["passes"] is False


def test_runs_are_reproducible_and_score_every_n_steps(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    def run(name: str) -> Any:
        return finetune(
            TEXTS,
            LABELS,
            model=str(tiny_model_dirs["gpt2"]),
            out=tmp_path / name,
            dev=(TEXTS, LABELS),
            train_layers=1,
            epochs=2,
            eval_every=2,
            seed=3,
            show_progress=False,
            **FAST,
        )

    first, second = run("a"), run("b")
    assert [e["step"] for e in first.report["history"]["evals"]] == [2, 4, 6]
    heads = [Predictor.load(tmp_path / n).estimator.steps[-1][1] for n in ("a", "b")]
    for w1, w2 in zip(heads[0].weights, heads[1].weights, strict=True):
        np.testing.assert_array_equal(w1, w2)
    assert first.report["history"]["steps"] == second.report["history"]["steps"]


def test_a_model_family_featx_cannot_feed_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "t5"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 32}))
    with pytest.raises(ModelLoadError, match="'t5' model"):
        finetune(TEXTS, LABELS, model=str(folder), out=tmp_path / "x")


def test_lora_adapters_train_then_merge_into_a_plain_encoder(
    family: str, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    source = tiny_model_dirs[family]
    out = tmp_path / "lora"
    result = _tune(source, out, dev=(TEXTS, LABELS), train_layers=1, lora=4, epochs=2)
    # Adapters only (and the head): a small share of the parameters trained.
    counts = result.report["trainable_parameters"]
    assert 0 < counts["trainable"] < counts["total"] / 5
    after = _weights(out / "hf")
    assert not any("lora" in name for name in after)  # merged, then a plain model
    before = _weights(source)
    changed = sorted(k for k in after if k in before and not np.array_equal(after[k], before[k]))
    targets = {"bert": "query", "roberta": "query", "distilbert": "q_lin", "gpt2": "c_attn"}
    targets.update(modernbert="Wqkv", qwen3="q_proj")
    assert changed and all(
        targets[family] in k or "value" in k or "v_lin" in k or "v_proj" in k for k in changed
    )
    assert all(".1." in k for k in changed)  # the top layer only
    assert set(Predictor.load(out).predict(TEXTS[:2])) <= {"neg", "pos"}


def test_attention_dropout_is_set_in_every_family(tiny_model_dirs: dict[str, Path]) -> None:
    for family, source in tiny_model_dirs.items():
        config = load_hf_model(source, attention_dropout=0.25).config
        assert [getattr(config, k) for k in ATTENTION_DROPOUT_KEYS if hasattr(config, k)] == [
            0.25
        ], family
    with pytest.raises(ValueError, match=r"attention_dropout must be in \[0, 1\)"):
        Settings(attention_dropout=1.0)


def test_settings_keywords_match_the_settings() -> None:
    from dataclasses import fields

    from featx.finetuning.settings import SettingsOptions, TrainingOptions

    names = {f.name for f in fields(Settings)}
    assert set(SettingsOptions.__optional_keys__) == names
    assert set(TrainingOptions.__optional_keys__) == names - {"train_layers"}
    assert Settings(autocast="bf16").to_dict()["autocast"] == "bf16"
    with pytest.raises(ValueError, match="Unknown autocast 'int8'"):
        Settings(autocast="int8")
