"""What every fine-tuning run starts from: the model folder, the device, tokens, a memory check.

Needs torch (the ``export`` extra).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from featx.artifact import Artifact, is_artifact
from featx.config import ModelSpec
from featx.encoders.torch import TorchEncoder
from featx.errors import ModelLoadError
from featx.finetuning.model import TextModel
from featx.finetuning.settings import Settings
from featx.finetuning.trainer import Data
from featx.sources import fetch, inspect_folder, resolve, transformer_folder

logger = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")
# Share of the free memory a run may plan to use before we refuse to start it.
MEMORY_SHARE = 0.8
Feed = Callable[[list[NDArray[np.int32]]], dict[str, torch.Tensor]]


def starting_point(
    model: str | os.PathLike[str],
    *,
    max_length: int | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
) -> tuple[Path, str, ModelSpec]:
    """The Hugging Face folder to start from, a name for it, and how to feed and pool it.

    A model is resolved (and its weights hashed) once. An artifact made by fine-tuning
    starts from its ``hf/`` folder with the pooling and length it was exported with.

    Raises:
        ModelLoadError: If ``model`` is an exported artifact without its Hugging Face folder.
        ValueError: If the model pools several hidden states.
    """
    if is_artifact(model):
        manifest = Artifact.open(model).manifest
        if manifest.finetune is None or not (Path(model) / manifest.finetune.hf).is_dir():
            name = None if manifest.source is None else manifest.source.name
            raise ModelLoadError(
                f"{model} is an exported artifact (ONNX only); fine-tuning needs the Hugging "
                f"Face model. Pass the model it came from: {name!r}."
            )
        assert manifest.model is not None  # a fine-tuned artifact has its encoder
        exported = manifest.model
        model_dir = root = Path(model) / manifest.finetune.hf
        name, entry = str(model), None
        overrides: dict[str, Any] = {
            "pooling": pooling or exported.representation.pooling,
            "normalize": exported.representation.normalize if normalize is None else normalize,
            "max_length": max_length or exported.max_length,
        }
    else:
        source = resolve(model)
        root, _ = fetch(source)
        model_dir, name, entry = transformer_folder(root), source.name, source.entry
        overrides = {"pooling": pooling, "normalize": normalize, "max_length": max_length}
    spec = inspect_folder(root, entry, **overrides)
    if len(spec.representation.layers) != 1:
        raise ValueError("Fine-tuning pools one hidden state; the model's default uses several.")
    return model_dir, name, spec


def torch_device(device: str) -> torch.device:
    """``"auto"`` (a GPU if torch sees one), ``"cpu"`` or ``"cuda"`` as a torch device.

    Raises:
        ValueError: For another name, or ``"cuda"`` without a GPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in DEVICES:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no GPU; use device='cpu'.")
    return torch.device(device)


def feeder(encoder: TorchEncoder) -> Feed:
    """Pads windows into the model's input tensors, as the encoder feeds ONNX."""

    def feed(windows: list[NDArray[np.int32]]) -> dict[str, torch.Tensor]:
        inputs = encoder.model_inputs(windows)  # type: ignore[arg-type]
        return {k: torch.from_numpy(v) for k, v in inputs.items()}

    return feed


def tokenise(
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


def check_memory(
    model: TextModel, data: Data, settings: Settings, num_layers: int, device: torch.device
) -> None:
    """Refuse, before training, a batch whose activations would not fit in memory.

    Raises:
        ValueError: If the estimate is over :data:`MEMORY_SHARE` of the free memory.
    """
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
    free = free_memory(device)
    if free and need > MEMORY_SHARE * free:
        raise ValueError(
            f"batch_size={settings.batch_size} with texts of up to {seq} tokens needs about "
            f"{need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is free on {device}. Use a smaller "
            f"batch_size with accumulate=N for the same effective batch, or a smaller max_length."
        )


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device`` (0 when unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0
