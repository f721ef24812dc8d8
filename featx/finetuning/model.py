"""The module fine-tuning trains: a Hugging Face encoder, featx pooling, and a small head.

Pooling and normalisation here are the torch twins of :mod:`featx.pooling`, so the head
sees during training exactly the vectors the exported artifact gives at inference; text
pairs use the same features as :class:`~featx.Embedder` (``[u, v, |u - v|, u * v]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from featx.config import Pooling, Representation
from featx.extras import install_command, require_module


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Pool ``hidden`` (batch, tokens, dim) over the tokens ``mask`` keeps."""
    m = mask.to(hidden.dtype)
    if pooling is Pooling.CLS:
        return hidden[:, 0]
    if pooling is Pooling.LAST:
        last = (mask.sum(dim=1) - 1).clamp(min=0)
        return hidden[torch.arange(hidden.shape[0]), last]
    if pooling is Pooling.MAX:
        masked = hidden.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
        return torch.nan_to_num(masked.max(dim=1).values, neginf=0.0)
    if pooling is Pooling.WEIGHTED_MEAN:
        m = m * torch.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype)
    summed = torch.einsum("btd,bt->bd", hidden, m)
    return summed / m.sum(dim=1, keepdim=True).clamp(min=1e-9)


def transformer_layers(encoder: torch.nn.Module, num_layers: int) -> torch.nn.ModuleList:
    """The encoder's stack of Transformer blocks (BERT ``encoder.layer``, GPT-2 ``h``, ...)."""
    for module in encoder.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers:
            return module
    raise ValueError(
        f"Cannot find the {num_layers} Transformer layers of {type(encoder).__name__}: this "
        "model family cannot be fine-tuned layer by layer; use train_layers='all' or 0."
    )


class Head(torch.nn.Module):
    """Dropout, then a linear layer, or an MLP with ReLU hidden layers.

    ``scale`` multiplies the input first: unit-length vectors have entries of about
    1/sqrt(dim), too small for a freshly initialised layer to learn from in few steps, so
    they are scaled to entries of about 1 (the export folds the scale into the weights).
    """

    def __init__(
        self, dim: int, n_out: int, hidden: tuple[int, ...], dropout: float, scale: float = 1.0
    ) -> None:
        super().__init__()
        sizes = [dim, *hidden, n_out]
        self.scale = scale
        self.dropout = torch.nn.Dropout(dropout)
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or scores) for the pooled features ``x``."""
        x = x * self.scale
        for i, linear in enumerate(self.linears):
            x = linear(self.dropout(x))
            if i < len(self.linears) - 1:
                x = torch.relu(x)
        return x


class TextModel(torch.nn.Module):
    """Encoder + pooling (+ pair features) + head.

    Args:
        encoder: A Hugging Face base model (``AutoModel``).
        representation: Pooling, normalisation and the hidden state to pool (one layer).
        n_out: Outputs of the head (classes, labels, or 1 for regression).
        hidden: Hidden sizes of an MLP head; empty for a linear head.
        dropout: Dropout before each head layer.
        pairs: Whether inputs are text pairs.
    """

    def __init__(
        self,
        encoder: torch.nn.Module,
        representation: Representation,
        n_out: int,
        *,
        hidden: tuple[int, ...] = (),
        dropout: float = 0.1,
        pairs: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.representation = representation
        self.pairs = pairs
        config: Any = encoder.config
        dim = int(config.hidden_size)
        scale = float(dim) ** 0.5 if representation.normalize else 1.0
        self.head = Head(dim * (4 if pairs else 1), n_out, hidden, dropout, scale)

    def embed(self, feed: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled (and, as the model says, L2-normalised) vectors in fp32."""
        (layer,) = self.representation.layers
        out = self.encoder(**feed, output_hidden_states=layer != -1, return_dict=True)
        hidden = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
        pooled = pool(hidden.float(), feed["attention_mask"], self.representation.pooling)
        if self.representation.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1, eps=1e-12)
        return pooled

    def features(self, *feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the head reads: one vector per text, or pair features."""
        if not self.pairs:
            return self.embed(feeds[0])
        u, v = (self.embed(feed) for feed in feeds)
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)

    def forward(self, *feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's outputs for one feed per text column."""
        return self.head(self.features(*feeds).float())


def freeze(
    model: TextModel, train_layers: int | str, num_layers: int, *, lora: bool = False
) -> list[str]:
    """Freeze all but the head and the top ``train_layers`` layers; return the trainable.

    ``"all"`` trains the whole encoder (embeddings included); ``0`` the head alone. With
    ``lora``, only the adapters train (they sit in the layers :func:`add_lora` chose).
    """
    if lora:
        for name, p in model.encoder.named_parameters():
            p.requires_grad = "lora_" in name
        return [name for name, p in model.named_parameters() if p.requires_grad]
    for p in model.encoder.parameters():
        p.requires_grad = train_layers == "all"
    if isinstance(train_layers, int) and train_layers > 0:
        blocks = transformer_layers(model.encoder, num_layers)
        for block in list(blocks)[num_layers - train_layers :]:
            for p in block.parameters():
                p.requires_grad = True
    return [name for name, p in model.named_parameters() if p.requires_grad]


def set_train_mode(model: TextModel, train_layers: int | str, num_layers: int) -> None:
    """Training mode (dropout on) for the head and the layers that train.

    The frozen rest stays in eval mode, so frozen layers give the same output every epoch.
    """
    model.train()
    if train_layers == "all":
        return
    model.encoder.eval()
    if isinstance(train_layers, int) and train_layers > 0:
        for block in list(transformer_layers(model.encoder, num_layers))[-train_layers:]:
            block.train()


def layer_groups(model: TextModel, num_layers: int) -> Iterator[tuple[int, list[str]]]:
    """Parameter names by depth from the top: 0 the top layer, ``num_layers`` the rest."""
    names = {id(p): n for n, p in model.encoder.named_parameters()}
    try:
        blocks = list(transformer_layers(model.encoder, num_layers))
    except ValueError:
        blocks = []
    seen: set[int] = set()
    for depth, block in enumerate(reversed(blocks)):
        ids = [id(p) for p in block.parameters()]
        seen.update(ids)
        yield depth, [names[i] for i in ids]
    yield len(blocks), [n for n, p in model.encoder.named_parameters() if id(p) not in seen]


# The attention projections LoRA adapts, per model family (query and value, as in Hu et
# al. 2021); GPT-2 and ModernBERT fuse q, k and v into one projection.
LORA_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "modernbert": ["Wqkv"],
    "gpt2": ["c_attn"],
    "qwen3": ["q_proj", "v_proj"],
}
# The name of each family's list of Transformer blocks (peft's layers_pattern).
LAYER_LISTS = {"gpt2": "h", "modernbert": "layers", "qwen3": "layers"}


def add_lora(
    encoder: torch.nn.Module,
    family: str,
    *,
    rank: int,
    alpha: int,
    dropout: float,
    layers: list[int] | None,
) -> torch.nn.Module:
    """Wrap ``encoder`` with LoRA adapters (peft) in ``layers`` (None: every layer).

    Merge them back with ``merge_and_unload()`` before export: the exported graph is a
    plain encoder with updated weights.
    """
    require_module("peft", "LoRA needs peft (in the 'export' extra)", install_command("export"))
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=LORA_TARGETS[family],
        layers_to_transform=layers,
        layers_pattern=None if layers is None else LAYER_LISTS.get(family, "layer"),
        fan_in_fan_out=family == "gpt2",
    )
    return get_peft_model(encoder, config)
