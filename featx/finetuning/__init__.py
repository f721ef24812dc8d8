"""Partial fine-tuning: train the head and the top layers, export back to a fast artifact.

Needs the ``export`` extra (torch, transformers, onnx). :func:`finetune` loads the Hugging
Face model, tokenises the data the model's way, trains what ``train_layers`` leaves
trainable (see :class:`~featx.finetuning.trainer.Settings`), optionally searches a small
grid on the dev set, and writes a predictor artifact (ONNX encoder + numpy head + the
Hugging Face folder + ``finetune.json`` and curves).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx._version import __version__
from featx.artifact import Artifact, is_artifact
from featx.config import ModelSpec, Representation
from featx.errors import ModelLoadError
from featx.finetuning.data import (
    PRIMARY_METRIC,
    Targets,
    check_dev,
    encode_dev_targets,
    encode_targets,
    text_columns,
)
from featx.finetuning.export import HF_DIR, build_artifact, head_input, score
from featx.finetuning.model import TextModel, add_lora
from featx.finetuning.trainer import Data, History, Settings, autocast_dtype, fit
from featx.heads import Task
from featx.predictor import Predictor
from featx.sources import fetch, inspect_folder, resolve, transformer_folder

try:
    import torch

    from featx.encoders.torch import TorchEncoder, load_hf_model, load_hf_tokenizer
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "featx.finetune needs torch and transformers. Install them with: "
        "pip install torch==2.13.0 'featx[export]'"
    ) from err

logger = logging.getLogger(__name__)

# What a search may vary: any Settings field.
SEARCHABLE = tuple(f.name for f in fields(Settings))
# Share of the free memory a run may plan to use before we refuse to start it.
MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class Finetuned:
    """What :func:`finetune` made.

    Attributes:
        predictor: The saved model, loaded back from ``path`` (ONNX + numpy head).
        path: The artifact directory.
        report: Settings, history, dev scores, the int8 dev gate, timings.
    """

    predictor: Predictor
    path: Path
    report: dict[str, Any]


def finetune(
    model: str | os.PathLike[str],
    X: Any,
    y: Any,
    *,
    out: str | os.PathLike[str],
    X_dev: Any = None,
    y_dev: Any = None,
    task: str | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    search: Mapping[str, Sequence[Any]] | None = None,
    augment: Any = None,
    device: str = "auto",
    force: bool = False,
    show_progress: bool | None = None,
    **settings: Any,
) -> Finetuned:
    """Fine-tune ``model`` on texts ``X`` (or two-column pairs) and targets ``y``.

    Args:
        model: A registry alias, a model folder, a hub id, or an artifact made by
            ``finetune`` (it keeps its Hugging Face folder).
        X: Training texts, or an (n, 2) array / two-column frame of text pairs.
        y: Class labels, lists of labels (multi-label), or numbers (regression).
        out: Where to write the artifact.
        X_dev: Dev texts: scored every epoch for early stopping, the best weights kept,
            the int8 gate checked; needed by ``search``.
        y_dev: Dev targets.
        task: Force ``binary``, ``multiclass``, ``multilabel`` or ``regression``.
        pooling: Override the model's pooling (the exported artifact pools the same way).
        normalize: Override the model's L2 normalisation.
        max_length: Override the model's max tokens per text.
        search: Settings to try on the dev set, e.g. ``{"lr": [5e-5, 1e-4],
            "train_layers": [2, 4]}``; the best run by the dev metric is kept.
        augment: Augment the training texts (not dev): a method name or list of names of
            :func:`featx.augment.augment`, or an :class:`~featx.augment.Augmenter`.
        device: ``"auto"`` (a GPU if there is one), ``"cpu"`` or ``"cuda"``.
        force: Replace ``out`` if it exists.
        show_progress: Progress bars; ``None`` shows them on a terminal.
        **settings: :class:`~featx.finetuning.trainer.Settings`: ``train_layers`` (int,
            or ``"all"``; 0 trains the head alone), ``epochs``, ``lr``, ``head_lr``,
            ``layer_decay``, ``weight_decay``, ``warmup``, ``schedule``, ``batch_size``,
            ``accumulate``, ``dropout``, ``hidden``, ``max_grad_norm``, ``precision``
            (``auto``: bf16 autocast where the CPU has it), ``eval_every``, ``patience``,
            ``mixup``, ``lora`` (rank of LoRA adapters on the attention query and value
            projections of the ``train_layers`` top layers, merged back before export; 0:
            off), ``lora_alpha``, ``seed``.

    Raises:
        ValueError: Bad settings or data (too few examples per class, a dev label unseen
            in training, a dev set of another shape, a batch too big for memory).
        ModelLoadError: A model that cannot be found or fine-tuned.
        FileExistsError: ``out`` exists and ``force`` is false.
    """
    started = time.perf_counter()
    out_path = Path(out)
    if out_path.exists() and not force:
        raise FileExistsError(f"{out_path} already exists. Choose another path or pass force=True.")
    base = Settings(**settings)
    grid = _grid(base, search)
    columns = text_columns(X, "X")
    if len(columns[0]) != len(y):
        raise ValueError(f"X has {len(columns[0])} texts but y has {len(y)} labels.")
    targets = encode_targets(y, task)
    dev_columns = None if X_dev is None else check_dev(X_dev, y_dev, len(columns))
    dev_targets = None if dev_columns is None else encode_dev_targets(y_dev, targets)
    if len(grid) > 1 and dev_columns is None:
        raise ValueError("A search needs a dev set (X_dev, y_dev) to choose by.")
    if augment is not None:
        columns, targets = _augmented(columns, targets, augment, base.seed)

    source_dir, name, spec = _starting_point(
        model, max_length=max_length, pooling=pooling, normalize=normalize
    )
    representation = Representation(
        pooling=spec.representation.pooling, normalize=spec.representation.normalize
    )
    tokenizer = load_hf_tokenizer(source_dir)
    torch_device = _device(device)
    runs: list[dict[str, Any]] = []
    train: Data | None = None
    best: tuple[float, TextModel, History, Settings, dict[str, int]] | None = None
    for run_settings in grid:
        torch.manual_seed(run_settings.seed)  # the head's (and adapters') initial weights
        encoder = load_hf_model(source_dir)
        if run_settings.lora:
            layers = run_settings.train_layers
            encoder = add_lora(
                encoder,
                spec.family.value,
                rank=run_settings.lora,
                alpha=run_settings.lora_alpha,
                dropout=run_settings.dropout,
                layers=None
                if layers == "all"
                else list(range(spec.num_layers - int(layers), spec.num_layers)),
            )
        text_model = TextModel(
            encoder,
            representation,
            targets.n_out,
            hidden=run_settings.hidden,
            dropout=run_settings.dropout,
            pairs=len(columns) == 2,
        )
        reference = TorchEncoder(encoder, tokenizer, spec, representation=representation)
        if train is None:  # the same tokens for every run of a search
            train = _tokenise(reference, columns, targets.values, what="training")
        _check_memory(text_model, train, run_settings, spec.num_layers, torch_device)
        scorer = None
        if dev_columns is not None and dev_targets is not None:
            scorer = _scorer(
                text_model,
                reference,
                dev_columns,
                dev_targets,
                targets.task,
                frozen=run_settings.train_layers == 0,
            )
        history = fit(
            text_model,
            train,
            run_settings,
            task=targets.task.value,
            n_out=targets.n_out,
            num_layers=spec.num_layers,
            feed=_feeder(reference),
            score=scorer,
            metric=PRIMARY_METRIC[targets.task],
            device=torch_device,
            show_progress=_show(show_progress),
        )
        text_model.to("cpu")
        counts = _count(text_model)  # before adapters merge away
        if run_settings.lora:  # fold the adapters into the weights: a plain encoder again
            wrapped: Any = text_model.encoder
            text_model.encoder = wrapped.merge_and_unload()
        value = history.best.get(PRIMARY_METRIC[targets.task], float("-inf"))
        runs.append(
            {
                "settings": run_settings.to_dict(),
                "best": history.best,
                "seconds": history.train_seconds,
            }
        )
        if best is None or value > best[0]:
            best = (value, text_model, history, run_settings, counts)
    assert best is not None
    _, text_model, history, chosen, counts = best

    reference = TorchEncoder(text_model.encoder, tokenizer, spec, representation=representation)
    dev = None
    dev_final: dict[str, float] = {}
    if dev_columns is not None and dev_targets is not None:
        outputs = _outputs(text_model, reference, dev_columns)
        dev_final = score(targets.task, dev_targets, outputs)
        dev = (dev_columns, dev_targets, outputs)
    report = {
        "featx_version": __version__,
        "model": name,
        "task": targets.task.value,
        "labels": targets.labels,
        "n_train": len(columns[0]),
        "n_dev": 0 if dev_columns is None else len(dev_columns[0]),
        "settings": chosen.to_dict(),
        "precision_used": str(autocast_dtype(chosen.precision, torch_device) or "fp32").replace(
            "torch.", ""
        ),
        "device": str(torch_device),
        "trainable_parameters": counts,
        "representation": {
            "pooling": representation.pooling.value,
            "normalize": representation.normalize,
        },
        "history": {"steps": history.steps, "evals": history.evals},
        "best": history.best,
        "stopped_early": history.stopped_early,
        "train_seconds": round(history.train_seconds, 2),
        "dev_final": dev_final,
        "search": runs if len(grid) > 1 else [],
        "augment": None if augment is None else str(augment),
    }
    rng = np.random.default_rng(0)
    flat = columns[0] + (columns[1] if len(columns) == 2 else [])
    calibration = [flat[i] for i in rng.permutation(len(flat))[:256]]
    probes = [] if dev_columns is None else dev_columns[0][:64]
    result = build_artifact(
        text_model,
        source_dir=source_dir,
        targets=targets,
        out=out_path,
        representation={
            "pooling": representation.pooling.value,
            "normalize": representation.normalize,
        },
        max_length=spec.max_length,
        report=report,
        dev=dev,
        reference=reference,
        calibration_texts=calibration,
        probe_texts=probes,
        plot=_plot,
        force=force,
        show_progress=show_progress,
    )
    report["total_seconds"] = round(time.perf_counter() - started, 2)
    return Finetuned(result, out_path, {**report, "dev_gate": result.metrics.get("dev_gate")})


def _grid(base: Settings, search: Mapping[str, Sequence[Any]] | None) -> list[Settings]:
    """Every combination of ``search`` over ``base``."""
    if not search:
        return [base]
    unknown = sorted(set(search) - set(SEARCHABLE))
    if unknown:
        raise ValueError(
            f"Cannot search {', '.join(unknown)}; choose among {', '.join(SEARCHABLE)}."
        )
    for key, values in search.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"search[{key!r}] must be a non-empty list of values.")
    keys = list(search)
    return [
        replace(base, **dict(zip(keys, combo, strict=True)))
        for combo in itertools.product(*search.values())
    ]


def _starting_point(model: str | os.PathLike[str], **overrides: Any) -> tuple[Path, str, ModelSpec]:
    """The Hugging Face folder to start from, a name for it, and how to feed and pool it.

    A model is resolved (and its weights hashed) once. An artifact made by ``finetune``
    starts from its ``hf/`` folder with the pooling and length it was exported with.
    """
    if is_artifact(model):
        manifest = Artifact.open(model).manifest
        if not ((Path(model) / HF_DIR).is_dir() and "finetune" in manifest):
            raise ModelLoadError(
                f"{model} is an exported artifact (ONNX only); fine-tuning needs the Hugging "
                f"Face model. Pass the model it came from: "
                f"{manifest.get('source', {}).get('name')!r}."
            )
        exported = manifest["model"]
        model_dir = root = Path(model) / HF_DIR
        name, entry = str(model), None
        overrides = {
            "pooling": overrides["pooling"] or exported["representation"]["pooling"],
            "normalize": exported["representation"]["normalize"]
            if overrides["normalize"] is None
            else overrides["normalize"],
            "max_length": overrides["max_length"] or exported["max_length"],
        }
    else:
        source = resolve(model)
        root, _ = fetch(source)
        model_dir, name, entry = transformer_folder(root), source.name, source.entry
    spec = inspect_folder(root, entry, **overrides)
    if len(spec.representation.layers) != 1:
        raise ValueError("Fine-tuning pools one hidden state; the model's default uses several.")
    return model_dir, name, spec


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no GPU; use device='cpu'.")
    return torch.device(device)


def _show(show_progress: bool | None) -> bool:
    import sys

    return sys.stderr.isatty() if show_progress is None else show_progress


def _feeder(encoder: TorchEncoder) -> Callable[[list[NDArray[np.int32]]], dict[str, torch.Tensor]]:
    """Pads windows into the model's input tensors, as the encoder feeds ONNX."""

    def feed(windows: list[NDArray[np.int32]]) -> dict[str, torch.Tensor]:
        inputs = encoder.model_inputs(windows)  # type: ignore[arg-type]
        return {k: torch.from_numpy(v) for k, v in inputs.items()}

    return feed


def _tokenise(
    encoder: TorchEncoder, columns: list[list[str]], values: NDArray[Any], *, what: str
) -> Data:
    """Token windows per column (the first window of each text: training truncates)."""
    windows = []
    for column in columns:
        tokenized = encoder.preparer.tokenize(column, chunk=False, stride=0)
        n_cut = int(tokenized.truncated.sum())
        if n_cut:
            logger.warning(
                "%d of %d %s texts are longer than %d tokens; training sees their first %d "
                "(prediction pools every window).",
                n_cut,
                len(column),
                what,
                encoder.max_length,
                encoder.max_length,
            )
        windows.append(list(tokenized.windows))
    return Data(windows, values)


def _check_memory(
    model: TextModel, data: Data, settings: Settings, num_layers: int, device: torch.device
) -> None:
    """Refuse, before training, a batch whose activations would not fit in memory."""
    config = model.encoder.config
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 768)
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0) or 12)
    tokens = int(np.percentile(data.lengths(), 99)) * settings.batch_size * len(data.windows)
    seq = int(data.lengths().max())
    layers = num_layers if settings.train_layers == "all" else int(settings.train_layers)
    # Activations kept for the backward pass per layer (Korthikanti et al. 2022, fp32).
    per_layer = tokens * (34 * hidden + 5 * heads * seq) * 2
    params = sum(p.numel() for p in model.parameters())
    need = layers * per_layer + params * 16
    free = _free_memory(device)
    if free and need > MEMORY_SHARE * free:
        raise ValueError(
            f"batch_size={settings.batch_size} with texts of up to {seq} tokens needs about "
            f"{need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is free on {device}. Use a smaller "
            f"batch_size with accumulate=N for the same effective batch, or a smaller max_length."
        )


def _free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


def _outputs(
    model: TextModel,
    encoder: TorchEncoder,
    columns: list[list[str]],
    features: NDArray[np.float32] | None = None,
) -> NDArray[np.float64]:
    """The head's raw outputs for ``columns`` (or for their ready ``features``)."""
    model.eval()
    device = next(model.parameters()).device
    features = head_input(encoder, columns) if features is None else features
    with torch.no_grad():
        out = model.head(torch.from_numpy(features).to(device))
    return out.double().cpu().numpy()


def _scorer(
    model: TextModel,
    encoder: TorchEncoder,
    columns: list[list[str]],
    y: NDArray[Any],
    task: Any,
    *,
    frozen: bool,
) -> Callable[[], dict[str, float]]:
    """Scores the dev set; with a frozen encoder its features are computed once."""
    cached: list[NDArray[np.float32]] = []

    def run() -> dict[str, float]:
        if frozen and not cached:
            cached.append(head_input(encoder, columns))
        return score(task, y, _outputs(model, encoder, columns, cached[0] if cached else None))

    return run


def _count(model: TextModel) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": sum(p.numel() for p in model.parameters())}


def _augmented(
    columns: list[list[str]], targets: Targets, augment: Any, seed: int
) -> tuple[list[list[str]], Targets]:
    """Training texts plus augmented copies (same targets)."""
    from featx.augment import augmenter

    if len(columns) != 1:
        raise ValueError("Augmentation edits single texts; it does not apply to sentence pairs.")
    texts, rows = augmenter(augment, seed=seed).expand(columns[0])
    return [texts], replace(targets, values=targets.values[rows])


def _plot(report: dict[str, Any], path: Path) -> None:
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


__all__ = ["Finetuned", "Settings", "finetune"]
