"""A fine-tuned model back to a normal featx artifact.

The encoder goes through :func:`featx.exporter.export` (ONNX fp32 + int8 behind the
parity gate), with its Hugging Face folder kept under ``hf/`` and the run's report as
``finetune.json``. For a sentence head, the head becomes a numpy
:class:`~featx.heads.NeuralHead`, int8 must also pass the dev gate
(:mod:`featx.finetuning.gate`), and the result is saved as a :class:`~featx.Predictor`, so
``featx predict``, ``Embedder`` and the server use it unchanged.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from featx.artifact import Artifact, FinetuneSection, seal
from featx.config import Precision, Task
from featx.embedder import Embedder
from featx.encoders.transformer import TransformerEncoder
from featx.exporter import export
from featx.files import write_json_atomic
from featx.finetuning.data import PRIMARY_METRIC, Targets
from featx.finetuning.gate import MAX_INT8_LOSS, Dev, int8_gate
from featx.finetuning.model import TextModel
from featx.heads import NeuralHead
from featx.predictor import Predictor

logger = logging.getLogger(__name__)

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


def save_hf_folder(encoder: Any, source_dir: Path, out: Path) -> None:
    """A fine-tuned encoder as a Hugging Face folder: config, weights, tokenizer files."""
    # Configs, tokenizer and sentence-transformers modules (pooling), not the old weights.
    shutil.copytree(
        source_dir, out, ignore=shutil.ignore_patterns(*(f"*{s}" for s in _WEIGHT_FILES), "onnx")
    )
    encoder.save_pretrained(str(out), safe_serialization=True)


def export_encoder(
    encoder: Any,
    source_dir: Path,
    out: Path,
    *,
    max_length: int,
    calibration_texts: list[str],
    probe_texts: list[str],
    show_progress: bool | None,
    **representation: Any,
) -> None:
    """Export a fine-tuned torch encoder to an encoder artifact at ``out``, with ``hf/``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.finetune-"))
    try:
        save_hf_folder(encoder, source_dir, work / HF_DIR)
        export(
            work / HF_DIR,
            out,
            max_length=max_length,
            calibration_texts=calibration_texts,
            probe_texts=probe_texts,
            show_progress=show_progress,
            **representation,
        )
        shutil.move(str(work / HF_DIR), str(out / HF_DIR))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def seal_finetuned(
    encoder_dir: Path,
    report: dict[str, Any],
    *,
    what: str,
    task: str | None = None,
    dev_gate: dict[str, Any] | None = None,
    plot: Callable[[dict[str, Any], Path], None] | None = None,
) -> None:
    """Add the report (and curves) to an exported encoder and mark it fine-tuned.

    A dev gate that failed makes fp32 the default graph.
    """
    write_json_atomic(encoder_dir / REPORT_FILE, report)
    if plot is not None:
        plot(report, encoder_dir / CURVES_FILE)
    manifest = Artifact.open(encoder_dir).manifest
    assert manifest.source is not None and manifest.encoder is not None  # just exported
    encoder = manifest.encoder
    if encoder.default_precision is Precision.INT8 and (dev_gate or {}).get("passes") is False:
        encoder = replace(encoder, default_precision=Precision.FP32)
        logger.warning("int8 failed the dev-metric gate, so fp32 is the default: %s", dev_gate)
    source = replace(
        manifest.source,
        name=f"{report['model']} ({what})",
        path=HF_DIR,
        finetuned_from=report["model"],
    )
    finetune = FinetuneSection(REPORT_FILE, HF_DIR, task=task, dev_gate=dev_gate)
    seal(encoder_dir, replace(manifest, source=source, encoder=encoder, finetune=finetune))


def build_artifact(
    model: TextModel,
    *,
    source_dir: Path,
    targets: Targets,
    out: Path,
    representation: dict[str, Any],
    max_length: int,
    report: dict[str, Any],
    dev: Dev | None,
    reference: TransformerEncoder,
    calibration_texts: list[str],
    probe_texts: list[str],
    plot: Callable[[dict[str, Any], Path], None] | None,
    force: bool,
    show_progress: bool | None,
) -> Predictor:
    """Export ``model`` and save it with its head as a predictor artifact at ``out``.

    ``dev`` is (text columns, encoded targets, the torch model's outputs on them);
    ``reference`` embeds with the fine-tuned torch model (calibration and parity).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.finetune-"))
    try:
        encoder_dir = work / "encoder"
        export_encoder(
            model.encoder,
            source_dir,
            encoder_dir,
            max_length=max_length,
            calibration_texts=calibration_texts,
            probe_texts=probe_texts,
            show_progress=show_progress,
            **representation,
        )
        head = neural_head(model, targets)
        gate: dict[str, Any] = {"max_int8_loss_points": MAX_INT8_LOSS, "checked": dev is not None}
        encoder = Artifact.open(encoder_dir).manifest.encoder
        if dev is not None and encoder is not None and Precision.INT8 in encoder.variants:
            gate.update(int8_gate(encoder_dir, head, targets, dev, reference, calibration_texts))
        report = {**report, "dev_gate": gate}
        seal_finetuned(encoder_dir, report, what="fine-tuned", dev_gate=gate, plot=plot)
        columns = dev[0] if dev else [probe_texts[:2] or ["featx"]]
        embedder = Embedder(str(encoder_dir)).fit(_as_input(columns))
        pipeline = Pipeline([("embed", embedder), ("head", head)])
        metrics = {"dev": report.get("dev_final", {}), "dev_gate": gate}
        predictor = Predictor(pipeline, targets.task, targets.labels, metrics=metrics)
        predictor.save(out, force=force, all_graphs=True)  # int8 runs on request: keep both
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Predictor.load(out)


def _as_input(columns: list[list[str]]) -> Any:
    return (
        columns[0]
        if len(columns) == 1
        else np.asarray(list(zip(*columns, strict=True)), dtype=object)
    )


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """Loss, learning rate and dev metric curves as one PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed (extra 'report'): no training curves.")
        return
    steps = report["history"]["steps"]
    evals = report["history"]["evals"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=0.8)
    axes[0].set(title="training loss", xlabel="step")
    axes[1].plot([s["step"] for s in steps], [s["lr"] for s in steps])
    axes[1].set(title="learning rate", xlabel="step")
    metric = PRIMARY_METRIC[Task(report["task"])]
    if evals:
        axes[2].plot([e["step"] for e in evals], [e[metric] for e in evals], marker="o")
    axes[2].set(title=f"dev {metric}", xlabel="step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
