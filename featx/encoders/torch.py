"""The torch backend: the fp32 reference for parity checks, and the base of fine-tuning.

Importing this module imports torch and transformers (the ``export`` extra); entry points
check for the extra first (:func:`featx.extras.require`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import transformers
from numpy.typing import NDArray
from tokenizers import Tokenizer

from featx.config import ModelSpec, RepresentationOptions
from featx.encoders.transformer import TransformerEncoder
from featx.sources import inspect_folder, transformer_folder

if TYPE_CHECKING:
    from typing import Unpack


def load_hf_tokenizer(model_dir: Path) -> Tokenizer:
    """The model's fast tokenizer: its tokenizer.json, or one converted by transformers."""
    file = model_dir / "tokenizer.json"
    if file.is_file():
        tokenizer = Tokenizer.from_file(str(file))
    else:
        hf = transformers.AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
        if not getattr(hf, "is_fast", False):
            raise ValueError(f"{model_dir} has no fast tokenizer, which featx needs.")
        tokenizer = hf.backend_tokenizer
    # featx pads and truncates itself; the saved tokenizer carries neither setting.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


# The config keys of attention-probability dropout in the families featx supports
# (BERT, RoBERTa, ELECTRA, MPNet; DistilBERT, ModernBERT, Qwen3; GPT-2).
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def load_hf_model(
    model_dir: Path, *, eager: bool = False, attention_dropout: float | None = None
) -> torch.nn.Module:
    """Load the bare encoder (no task head) in fp32 eval mode.

    ``attention_dropout`` replaces the config's dropout of attention probabilities (for
    fine-tuning; None keeps the model's own).
    """
    kwargs: dict[str, Any] = {"attn_implementation": "eager"} if eager else {}
    if attention_dropout is not None:
        config = transformers.AutoConfig.from_pretrained(str(model_dir))
        for key in ATTENTION_DROPOUT_KEYS:
            if hasattr(config, key):
                setattr(config, key, attention_dropout)
        kwargs["config"] = config
    model = transformers.AutoModel.from_pretrained(str(model_dir), **kwargs)
    return model.float().eval()


def hidden_states(out: Any) -> tuple[torch.Tensor, ...]:
    """Every hidden state of a model's output, the last one as its ``last_hidden_state``.

    For most models the two are the same tensor, but some record the last layer before a
    final norm (ModernBERT). sentence-transformers and featx's fine-tuning read
    ``last_hidden_state``, so featx's last layer is that one, in torch and in every graph.
    """
    return (*out.hidden_states[:-1], out.last_hidden_state)


class TorchEncoder(TransformerEncoder):
    """Text encoder running the Hugging Face model in torch (the fp32 reference).

    Args:
        model: A Hugging Face base model (``AutoModel``), in eval mode.
        tokenizer: The model's tokenizer.
        spec: How to feed the model and pool its output.
        **options: ``representation``, ``batch_size`` and ``max_tokens``.
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: Tokenizer, spec: ModelSpec, **options: Any
    ) -> None:
        super().__init__(tokenizer, spec, **options)
        self.model = model

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike[str],
        *,
        spec: ModelSpec | None = None,
        batch_size: int = 32,
        max_tokens: int | None = None,
        **representation: Unpack[RepresentationOptions],
    ) -> TorchEncoder:
        """Load a Hugging Face or sentence-transformers folder.

        Args:
            folder: The model folder.
            spec: How to feed the model; default: read from the folder.
            batch_size: Most texts per forward pass.
            max_tokens: Most padded tokens per forward pass.
            **representation: Overrides of the model's pooling, normalize, layers, ...
        """
        root = Path(folder)
        model_dir = transformer_folder(root)
        spec = spec or inspect_folder(root)
        extra = {} if max_tokens is None else {"max_tokens": max_tokens}
        return cls(
            load_hf_model(model_dir),
            load_hf_tokenizer(model_dir),
            spec,
            representation=spec.representation.updated(**representation),
            batch_size=batch_size,
            **extra,
        )

    def forward(
        self, inputs: dict[str, NDArray[np.int64]], layers: tuple[int, ...]
    ) -> list[NDArray[np.float32]]:
        """Run the Hugging Face model with every hidden state; return those of ``layers``."""
        feed = {k: torch.from_numpy(v) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model(**feed, output_hidden_states=True, return_dict=True)
        states = hidden_states(out)
        return [states[i].float().numpy() for i in layers]
