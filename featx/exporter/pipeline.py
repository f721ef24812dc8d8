"""featx.export: a Hugging Face model to a featx artifact, behind a parity gate.

This module checks what it is asked and finds the model without torch; the steps that
need the ``export`` extra (torch, transformers, onnx) are in :mod:`featx.exporter.steps`:
export fp32 ONNX with every hidden state as an output, quantise to int8, compare each
graph with the torch fp32 reference on probe texts, choose the default precision, and
write the artifact atomically with a sha256 of every file. A folder's own ONNX file
becomes an artifact without torch (:mod:`featx.exporter.existing`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from featx.artifact import is_artifact
from featx.config import Exporter, parse_enum
from featx.exporter.parity import MIN_COSINE, MIN_MEAN_COSINE, PROBE_TEXTS
from featx.exporter.plan import DEFAULT_OPSET, ExportPlan, ExportResult
from featx.extras import available, require
from featx.files import refuse_existing
from featx.sources import resolve
from featx.text import check_texts


def export(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    quantize: bool = True,
    fp16: bool = False,
    probe_texts: Sequence[str] = (),
    calibration_texts: Sequence[str] = (),
    min_mean_cosine: float = MIN_MEAN_COSINE,
    min_cosine: float = MIN_COSINE,
    max_length: int | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter | str | None = None,
    onnx_file: str | None = None,
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
        exporter: ``"torch"`` (featx's wrapper over ``torch.onnx``), ``"optimum"``
            (optimum's exporter, the ``optimum`` extra; transformers 4.x) or
            ``"existing"`` (the folder's own ONNX file, as optimum or sentence-transformers
            wrote it; no torch needed, last hidden state only). Default: ``"existing"``
            for a folder with an ONNX file and no weights, or without the ``export``
            extra installed; else ``"torch"``.
        onnx_file: With ``"existing"``: the folder's ONNX file, relative to it (default
            ``onnx/model.onnx``, else ``model.onnx``).
        force: Replace ``out`` if it exists (only once the new artifact is complete).
        show_progress: Show a progress bar of the steps; ``None`` shows one on a terminal.

    Returns:
        An :class:`ExportResult`.

    Raises:
        FileExistsError: If ``out`` exists and ``force`` is false.
        ModelLoadError: If the model cannot be found or read.
        ExportError: If the exported fp32 graph does not match torch.
        ImportError: If the ``export`` extra is missing.
    """
    out_path = Path(out)
    gate = {"min_mean_cosine": min_mean_cosine, "min_cosine": min_cosine}
    _check(out_path, force, gate, onnx_file)
    source = resolve(model)
    if is_artifact(source.folder or ""):
        raise ValueError(f"{model!r} is already a featx artifact; load it with featx.load().")
    plan = ExportPlan(
        model=model,
        out=out_path,
        quantize=quantize,
        fp16=fp16,
        probes=list(PROBE_TEXTS) + check_texts(probe_texts, "probe_texts"),
        calibration=check_texts(calibration_texts, "calibration_texts"),
        gate=gate,
        overrides={"max_length": max_length, "pooling": pooling, "normalize": normalize},
        opset=opset,
        exporter=_exporter(exporter, source.folder, onnx_file),
        onnx_file=onnx_file,
        force=force,
        show_progress=show_progress,
    )
    return _run(plan)


def _check(out: Path, force: bool, gate: dict[str, float], onnx_file: str | None) -> None:
    """Refuse a target that is not ours to replace, a gate outside [0, 1], a path outside."""
    refuse_existing(out, force)
    if out.exists() and not is_artifact(out):
        raise FileExistsError(f"{out} exists and is not a featx artifact; refusing to replace it.")
    for name, value in gate.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value!r}.")
    if onnx_file is not None and Path(onnx_file).is_absolute():
        raise ValueError(f"onnx_file is a file inside the model folder, got {onnx_file!r}.")


def _run(plan: ExportPlan) -> ExportResult:
    """Build with the plan's exporter, once what it needs is known to be installed."""
    if plan.exporter is Exporter.EXISTING:
        from featx.exporter import existing

        return existing.build(plan)
    require("export", "featx.export")
    if plan.exporter is Exporter.OPTIMUM:
        require("optimum", "featx.export(exporter='optimum')")
    from featx.exporter.steps import build

    return build(plan)


def _exporter(asked: Exporter | str | None, folder: Path | None, onnx_file: str | None) -> Exporter:
    """The asked exporter, else the folder's own ONNX file where torch cannot export."""
    if asked is not None:
        return parse_enum(Exporter, asked, "exporter")
    from featx.exporter.existing import find_graph, has_weights

    if onnx_file is not None or (
        folder is not None
        and find_graph(folder) is not None
        and not (has_weights(folder) and available("export"))
    ):
        return Exporter.EXISTING
    return Exporter.TORCH
