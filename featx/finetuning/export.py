"""A fine-tuned model back to a normal featx artifact.

The encoder goes through :func:`featx.exporter.export` (ONNX fp32 + int8 behind the
parity gate), the head becomes a numpy :class:`~featx.heads.NeuralHead`, and the result
is saved as a :class:`~featx.Predictor`, so ``featx predict``, ``Embedder`` and the server
use it unchanged. One more gate: on the dev set, int8 may lose at most
:data:`MAX_INT8_LOSS` points of the dev metric against the fine-tuned torch model, or
fp32 becomes the artifact's default. The Hugging Face folder is kept under ``hf/``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline

from featx.artifact import Artifact, seal, write_json_atomic
from featx.embedder import Embedder
from featx.exporter import export
from featx.finetuning.data import PRIMARY_METRIC, Targets
from featx.finetuning.model import TextModel
from featx.heads import NeuralHead, Task
from featx.predictor import Predictor

logger = logging.getLogger(__name__)

# Points of the dev metric (x100) int8 may lose against the fine-tuned torch model.
MAX_INT8_LOSS = 0.5
HF_DIR = "hf"
REPORT_FILE = "finetune.json"
CURVES_FILE = "finetune_curves.png"
_WEIGHT_FILES = (".safetensors", ".bin", ".h5", ".msgpack", ".onnx", ".ot", ".pt")


def neural_head(model: TextModel, targets: Targets) -> NeuralHead:
    """The trained head as numpy weights; regression folds the target scaling back in."""
    linears: list[Any] = list(model.head.linears)
    weights = [lin.weight.detach().float().numpy().copy() for lin in linears]
    biases = [lin.bias.detach().float().numpy().copy() for lin in linears]
    weights[0] = weights[0] * np.float32(model.head.scale)
    if targets.task is Task.REGRESSION:
        weights[-1] = weights[-1] * targets.scale
        biases[-1] = biases[-1] * targets.scale + targets.mean
    return NeuralHead(targets.task.value, weights, biases, list(targets.labels) or None)


def save_hf_folder(model: TextModel, source_dir: Path, out: Path) -> None:
    """The fine-tuned encoder as a Hugging Face folder: config, weights, tokenizer files."""
    # Configs, tokenizer and sentence-transformers modules (pooling), not the old weights.
    shutil.copytree(
        source_dir, out, ignore=shutil.ignore_patterns(*(f"*{s}" for s in _WEIGHT_FILES), "onnx")
    )
    encoder: Any = model.encoder
    encoder.save_pretrained(str(out), safe_serialization=True)


def score(task: Task, y_true: NDArray[Any], outputs: NDArray[np.float64]) -> dict[str, float]:
    """Dev metrics (x1, not x100) from the head's raw outputs and encoded targets."""
    from scipy.stats import spearmanr
    from sklearn.metrics import accuracy_score, f1_score

    if task is Task.REGRESSION:
        return {"spearman": float(spearmanr(y_true, outputs[:, 0]).statistic)}
    if task is Task.MULTILABEL:
        predicted = (outputs > 0).astype(int)
        return {
            "micro_f1": float(f1_score(y_true, predicted, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, predicted, average="macro", zero_division=0)),
        }
    predicted = outputs.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "macro_f1": float(f1_score(y_true, predicted, average="macro", zero_division=0)),
    }


def build_artifact(
    model: TextModel,
    *,
    source_dir: Path,
    targets: Targets,
    out: Path,
    representation: dict[str, Any],
    max_length: int,
    report: dict[str, Any],
    dev: tuple[list[list[str]], NDArray[Any], NDArray[np.float64]] | None,
    calibration_texts: list[str],
    probe_texts: list[str],
    plot: Any,
    force: bool,
    show_progress: bool | None,
) -> Predictor:
    """Export ``model`` and save it with its head as a predictor artifact at ``out``.

    ``dev`` is (text columns, encoded targets, the torch model's outputs on them).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.finetune-"))
    try:
        save_hf_folder(model, source_dir, work / HF_DIR)
        encoder_dir = work / "encoder"
        export(
            work / HF_DIR,
            encoder_dir,
            max_length=max_length,
            calibration_texts=calibration_texts,
            probe_texts=probe_texts,
            show_progress=show_progress,
            **representation,
        )
        shutil.move(str(work / HF_DIR), str(encoder_dir / HF_DIR))
        head = neural_head(model, targets)
        columns = dev[0] if dev else [probe_texts[:2] or ["featx"]]
        X_fit = _as_input(columns)
        pipeline = Pipeline([("embed", Embedder(str(encoder_dir)).fit(X_fit)), ("head", head)])
        manifest = dict(Artifact.open(encoder_dir).manifest)
        gate = {"max_int8_loss_points": MAX_INT8_LOSS, "checked": dev is not None}
        if dev is not None and "int8" in manifest["variants"]:
            gate.update(_dev_gate(pipeline, targets, dev, manifest["default_precision"]))
            if manifest["default_precision"] == "int8" and not gate["passes"]:
                manifest["default_precision"] = "fp32"
                logger.warning("int8 failed the dev-metric gate, so fp32 is the default: %s", gate)
        report = {**report, "dev_gate": gate}
        write_json_atomic(encoder_dir / REPORT_FILE, report)
        if plot is not None:
            plot(report, encoder_dir / CURVES_FILE)
        manifest["source"] = {
            **manifest["source"],
            "name": f"{report['model']} (fine-tuned)",
            "path": HF_DIR,
            "finetuned_from": report["model"],
        }
        manifest["finetune"] = {"report": REPORT_FILE, "hf": HF_DIR, "dev_gate": gate}
        seal(
            encoder_dir, {k: v for k, v in manifest.items() if k not in ("files", "format_version")}
        )
        pipeline = Pipeline([("embed", Embedder(str(encoder_dir)).fit(X_fit)), ("head", head)])
        metrics = {"dev": report.get("dev_final", {}), "dev_gate": gate}
        Predictor(pipeline, targets.task, targets.labels, metrics=metrics).save(out, force=force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Predictor.load(out)


def _as_input(columns: list[list[str]]) -> Any:
    return (
        columns[0]
        if len(columns) == 1
        else np.asarray(list(zip(*columns, strict=True)), dtype=object)
    )


def _dev_gate(
    pipeline: Pipeline,
    targets: Targets,
    dev: tuple[list[list[str]], NDArray[Any], NDArray[np.float64]],
    default: str,
) -> dict[str, Any]:
    """The int8 graph's dev metric and agreement against the torch model's."""
    columns, y_true, torch_outputs = dev
    metric = PRIMARY_METRIC[targets.task]
    features = pipeline[0].set_params(precision="int8").transform(_as_input(columns))
    pipeline[0].set_params(precision=None)
    int8_outputs = pipeline[1].decision_function(features).astype(np.float64)
    if targets.task is Task.REGRESSION:
        int8_outputs = (int8_outputs - targets.mean) / targets.scale
    reference = score(targets.task, y_true, torch_outputs)[metric] * 100
    int8 = score(targets.task, y_true, int8_outputs)[metric] * 100
    gate: dict[str, Any] = {
        "metric": metric,
        "torch_fp32": round(reference, 3),
        "onnx_int8": round(int8, 3),
        "passes": reference - int8 <= MAX_INT8_LOSS,
    }
    if targets.task is not Task.REGRESSION:
        same = _decisions(targets.task, torch_outputs) == _decisions(targets.task, int8_outputs)
        gate["agreement"] = round(float(np.mean(np.all(same.reshape(len(same), -1), axis=1))), 5)
    return gate


def _decisions(task: Task, outputs: NDArray[np.float64]) -> NDArray[Any]:
    return (outputs > 0) if task is Task.MULTILABEL else outputs.argmax(axis=1)
