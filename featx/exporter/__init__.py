"""Export a Hugging Face model to a featx artifact, behind a parity gate.

Needs the ``export`` extra (torch, transformers, onnx). The steps: resolve the source,
export fp32 ONNX with every hidden state as an output, quantise to int8, compare each
graph with the torch fp32 reference on probe texts, choose the default precision, and
write the artifact atomically with a sha256 of every file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx._version import __version__
from featx.artifact import is_artifact, seal, staging, write_json_atomic
from featx.batching import plan_batches
from featx.config import Precision
from featx.encoders.base import TransformerEncoder
from featx.errors import ExportError
from featx.sources import fetch, inspect_folder, resolve, transformer_folder
from featx.text import check_texts

try:
    import torch

    from featx.encoders.onnx import OnnxEncoder, make_session
    from featx.encoders.torch import TorchEncoder, load_hf_model, load_hf_tokenizer
    from featx.exporter.calibration import builtin_calibration_texts
    from featx.exporter.onnx import DEFAULT_OPSET, export_onnx
    from featx.exporter.parity import PROBE_TEXTS, Parity, measure
    from featx.exporter.quantize import Feed, convert_fp16, quantize_int8
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "featx.export needs torch, transformers and onnx. Install them with: "
        "pip install torch==2.13.0 'featx[export]'"
    ) from err

logger = logging.getLogger(__name__)

# An fp32 graph that disagrees with torch more than this is a broken export.
FP32_MIN_COSINE = 0.9999
FILES = {
    Precision.FP32: "model.onnx",
    Precision.INT8: "model_int8.onnx",
    Precision.FP16: "model_fp16.onnx",
}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` built.

    Attributes:
        path: The artifact directory.
        default_precision: The graph used on CPU by default (``"int8"`` or ``"fp32"``).
        parity: Parity figures per precision (min/mean cosine, max abs diff).
        reason: Why the default precision was chosen.
    """

    path: Path
    default_precision: str
    parity: dict[str, dict[str, Any]]
    reason: str


def _parity(
    reference: TransformerEncoder, candidate: TransformerEncoder, texts: list[str]
) -> Parity:
    expected = reference.encode(texts, long_text="chunk_mean", show_progress=False)
    return measure(expected, candidate.encode(texts, long_text="chunk_mean", show_progress=False))


def export(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    quantize: bool = True,
    fp16: bool = False,
    probe_texts: Sequence[str] = (),
    calibration_texts: Sequence[str] = (),
    min_mean_cosine: float = 0.99,
    min_cosine: float = 0.97,
    max_length: int | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    opset: int = DEFAULT_OPSET,
    force: bool = False,
    show_progress: bool | None = None,
) -> ExportResult:
    """Export ``model`` (alias, hub id or folder) to a featx artifact at ``out``.

    Args:
        model: A registry alias, a Hugging Face hub id ("org/name") or a model folder.
        out: The artifact directory to create.
        quantize: Also build a dynamic int8 graph; it becomes the CPU default only if it
            passes the parity gate.
        fp16: Also build an fp16 graph (for GPUs).
        probe_texts: Texts added to the built-in probes for the parity check.
        calibration_texts: Texts added to the built-in ones that set int8 activation ranges
            (domain text helps; keep it apart from ``probe_texts`` for an honest gate).
        min_mean_cosine: Gate: mean cosine of int8 vs the torch fp32 reference.
        min_cosine: Gate: minimum cosine of int8 vs the torch fp32 reference.
        max_length: Override the model's max tokens per window.
        pooling: Override the model's default pooling.
        normalize: Override the model's default L2 normalisation.
        opset: ONNX opset.
        force: Replace ``out`` if it exists (only once the new artifact is complete).
        show_progress: Show a progress bar of the steps; ``None`` shows one on a terminal.

    Returns:
        An :class:`ExportResult`.

    Raises:
        FileExistsError: If ``out`` exists and ``force`` is false.
        ModelLoadError: If the model cannot be found or read.
        ExportError: If the exported fp32 graph does not match torch.
    """
    out_path = Path(out)
    if out_path.exists() and not force:
        raise FileExistsError(f"{out_path} already exists. Choose another path or pass force=True.")
    if out_path.exists() and not is_artifact(out_path):
        raise FileExistsError(
            f"{out_path} exists and is not a featx artifact; refusing to replace it."
        )
    for name, value in (("min_mean_cosine", min_mean_cosine), ("min_cosine", min_cosine)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value!r}.")
    probes = list(PROBE_TEXTS) + check_texts(probe_texts, "probe_texts")
    extra_calibration = check_texts(calibration_texts, "calibration_texts")
    source = resolve(model)
    if is_artifact(source.folder or ""):
        raise ValueError(f"{model!r} is already a featx artifact; load it with featx.load().")
    folder, revision = fetch(source)
    spec = inspect_folder(
        folder, source.entry, max_length=max_length, pooling=pooling, normalize=normalize
    )
    model_dir = transformer_folder(folder)
    tokenizer = load_hf_tokenizer(model_dir)
    reference = TorchEncoder(load_hf_model(model_dir), tokenizer, spec)

    steps = ["fp32 graph", "fp32 parity"] + ["int8 graph"] * quantize + ["fp16 graph"] * fp16
    with (
        staging(out_path, force=force) as stage,
        _progress(source.name, steps, show_progress) as step,
    ):

        def check(precision: Precision) -> Parity:
            candidate = OnnxEncoder(make_session(str(stage / FILES[precision])), tokenizer, spec)
            return _parity(reference, candidate, probes)

        step()
        export_onnx(model_dir, stage / FILES[Precision.FP32], spec, opset=opset)
        tokenizer.save(str(stage / "tokenizer.json"))
        variants: dict[str, dict[str, Any]] = {"fp32": {"file": FILES[Precision.FP32]}}
        step()
        fp32 = check(Precision.FP32)
        parity: dict[str, dict[str, Any]] = {"fp32": fp32.to_dict()}
        if fp32.min_cosine < FP32_MIN_COSINE:
            raise ExportError(
                f"The exported fp32 graph disagrees with torch (min cosine {fp32.min_cosine:.6f}"
                f" < {FP32_MIN_COSINE}); the export is wrong for this model. Please report it."
            )
        default, reason = Precision.FP32.value, "int8 not built (quantize=False)"
        if quantize:
            step()
            calibration = calibration_feeds(
                reference, [*builtin_calibration_texts(), *extra_calibration]
            )
            recipe = quantize_int8(
                stage / FILES[Precision.FP32], stage / FILES[Precision.INT8], calibration
            )
            variants["int8"] = {"file": FILES[Precision.INT8], "recipe": recipe}
            int8 = check(Precision.INT8)
            passed = int8.passes(min_mean_cosine=min_mean_cosine, min_cosine=min_cosine)
            parity["int8"] = {**int8.to_dict(), "passes_gate": passed}
            gate = (
                f"mean cosine {int8.mean_cosine:.4f} (gate {min_mean_cosine}), "
                f"min {int8.min_cosine:.4f} (gate {min_cosine})"
            )
            if passed:
                default, reason = Precision.INT8.value, f"int8 passed the parity gate: {gate}"
            else:
                reason = f"int8 failed the parity gate, so fp32 is the default: {gate}"
                logger.warning("%s: %s", source.name, reason)
        if fp16:
            step()
            convert_fp16(stage / FILES[Precision.FP32], stage / FILES[Precision.FP16])
            variants["fp16"] = {"file": FILES[Precision.FP16]}
            # Measured with the CPU provider; on a GPU, fp16 kernels may round differently.
            parity["fp16"] = {**check(Precision.FP16).to_dict(), "provider": "CPUExecutionProvider"}

        gate_settings = {"min_mean_cosine": min_mean_cosine, "min_cosine": min_cosine}
        write_json_atomic(
            stage / "parity.json",
            {
                "reference": f"torch {torch.__version__} fp32",
                "n_probe_texts": len(probes),
                "n_user_probe_texts": len(probes) - len(PROBE_TEXTS),
                "variants": parity,
                "gate": gate_settings,
                "default_precision": default,
                "reason": reason,
            },
        )
        seal(
            stage,
            {
                "featx_version": __version__,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "source": {
                    "name": source.name,
                    "hub_id": source.hub_id,
                    "path": str(folder),
                    "revision": revision,
                },
                "model": spec.to_dict(),
                "opset": opset,
                "variants": variants,
                "default_precision": default,
                "parity": parity,
                "gate": gate_settings,
            },
        )
    logger.info("Wrote %s (default %s: %s)", out_path, default, reason)
    return ExportResult(path=out_path, default_precision=default, parity=parity, reason=reason)


def calibration_feeds(encoder: TransformerEncoder, texts: list[str]) -> list[Feed]:
    """Model inputs for ``texts``, windowed and batched as at inference."""
    tokenized = encoder.preparer.tokenize(texts, chunk=True, stride=0)
    lengths = [len(w) for w in tokenized.windows]
    batches = plan_batches(lengths, batch_size=encoder.batch_size, max_tokens=encoder.max_tokens)
    return [encoder.model_inputs([tokenized.windows[r] for r in rows]) for rows in batches]


@contextmanager
def _progress(name: str, steps: list[str], show: bool | None) -> Iterator[Callable[[], None]]:
    """Yield a callable that announces the next export step on a progress bar."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(steps),
        desc=f"featx export {name}",
        unit="step",
        disable=not (sys.stderr.isatty() if show is None else show),
    )
    names = iter(steps)
    started = False

    def step() -> None:
        nonlocal started
        if started:
            bar.update()
        started = True
        bar.set_postfix_str(next(names))

    try:
        yield step
        bar.update()
    finally:
        bar.close()


__all__ = ["ExportResult", "export"]
