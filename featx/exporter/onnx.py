"""Torch -> ONNX: the one place that knows how a graph is exported.

The graph takes the family's inputs and returns every hidden state as its own output
(``hidden_state_0`` = embeddings ... ``hidden_state_N`` = last layer), so one file
serves every pooling mode, any layer choice, and token features; ONNX Runtime
computes only what a run asks for. Pooling stays in numpy (featx.pooling).

Why torch's exporter and not optimum's stock configurations: those expose only
``last_hidden_state`` (and for sentence-transformers folders, the pooled output), not
the per-layer hidden states that layer choice and token features need.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

from featx.config import ModelSpec
from featx.encoders.torch import hidden_states, load_hf_model
from featx.exporter.plan import DEFAULT_OPSET

_MASKING_UTILS = importlib.util.find_spec("transformers.masking_utils") is not None


class _HiddenStates(torch.nn.Module):
    """Wraps a Hugging Face base model so that it returns its hidden states as a tuple."""

    def __init__(self, model: torch.nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.model = model
        self.input_names = spec.input_names
        self.decoder = spec.family.is_decoder

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        extra = {}
        if self.decoder:
            # transformers.masking_utils (4.53 and later) builds decoder masks with
            # torch.vmap, which the TorchScript exporter cannot trace, and takes a 4-D mask
            # as the whole mask; so there the mask is given ready, causal and padding both
            # (4.5x also applies its own causal mask: the same positions again). Earlier
            # versions build it from the 2-D mask with plain ops, and only take that.
            if _MASKING_UTILS:
                kwargs["attention_mask"] = causal_padding_mask(kwargs["attention_mask"])
            extra["use_cache"] = False
        out = self.model(**kwargs, output_hidden_states=True, return_dict=True, **extra)
        return hidden_states(out)


def causal_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens) 0/1 -> (batch, 1, tokens, tokens) additive: no future, no padding."""
    keep = attention_mask[:, None, None, :].to(torch.bool)
    n = attention_mask.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=attention_mask.device).tril()
    allowed = keep & causal[None, None, :, :]
    zero = torch.zeros((), dtype=torch.float32)
    return torch.where(allowed, zero, torch.finfo(torch.float32).min)


def export_onnx(model_dir: Path, out: Path, spec: ModelSpec, *, opset: int = DEFAULT_OPSET) -> None:
    """Export the model in ``model_dir`` to ``out`` (fp32, dynamic batch and sequence axes)."""
    model = load_hf_model(model_dir, eager=True)  # eager attention traces to plain ops
    outputs = [f"hidden_state_{i}" for i in range(spec.num_layers + 1)]
    dummy = torch.ones(2, 8, dtype=torch.long)
    args = tuple(
        torch.zeros_like(dummy) if n == "token_type_ids" else dummy for n in spec.input_names
    )
    axes = {name: {0: "batch", 1: "sequence"} for name in (*spec.input_names, *outputs)}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated and chatty, but it is the one that
        # exports all of these families with dynamic shapes today.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _HiddenStates(model, spec),
            args,
            str(out),
            input_names=list(spec.input_names),
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
