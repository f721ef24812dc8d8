"""A model folder's own ONNX file (optimum, sentence-transformers) as a featx artifact; no torch.

Hub repositories often ship ``onnx/model.onnx`` beside the weights, and ``optimum-cli
export onnx`` writes ``model.onnx`` beside the config and tokenizer. Such a graph has the
last hidden state as its per-token output (``last_hidden_state``, or ``token_embeddings``
in older sentence-transformers exports) and no other layer, so an artifact made from it
pools, windows, batches and serves as any other, but cannot choose layers: the encoder
says so when asked. There is no torch reference, so fp32 parity is not measured; featx's
int8 is built from the graph (when the ``onnx`` package is there) and gated against it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import shutil
from pathlib import Path

import onnxruntime as ort
from tokenizers import Tokenizer

from featx.artifact import Origin, Variant, seal, staging
from featx.artifact.manifest import GRAPH_FILES, TOKENIZER_FILE
from featx.config import ModelSpec, Precision
from featx.encoders.onnx import OnnxEncoder, make_session
from featx.errors import ModelLoadError
from featx.exporter.assemble import Graphs, fast_graphs, int8, manifest, progress, write_parity
from featx.exporter.plan import ExportPlan, ExportResult
from featx.extras import install_command
from featx.sources import attention_heads, fetch, inspect_folder, resolve, transformer_folder

logger = logging.getLogger(__name__)
# Where optimum and sentence-transformers put the fp32 graph, in the order featx looks.
GRAPH_PLACES = ("onnx/model.onnx", "model.onnx")
# The per-token last hidden state, as optimum and older sentence-transformers name it.
LAST_STATE_OUTPUTS = ("last_hidden_state", "token_embeddings")
INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
# Names the quantised files of the hub carry (model_qint8_avx512_vnni.onnx, model_quint8...).
QUANTISED_MARKS = ("qint8", "quint8", "int8", "quantized", "int4", "q4", "bnb4")


def find_graph(folder: Path, onnx_file: str | None = None) -> Path | None:
    """The folder's fp32 ONNX graph: ``onnx_file`` if given, else the usual places.

    Raises:
        FileNotFoundError: If ``onnx_file`` is given and is not there.
    """
    roots = dict.fromkeys([folder, transformer_folder(folder)])
    if onnx_file is not None:
        for root in roots:
            if (root / onnx_file).is_file():
                return root / onnx_file
        raise FileNotFoundError(f"{folder} has no ONNX file {onnx_file!r}.")
    for root in roots:
        for place in GRAPH_PLACES:
            if (root / place).is_file():
                return root / place
    return None


def has_weights(folder: Path) -> bool:
    """Whether the folder has torch weights to export from."""
    model_dir = transformer_folder(folder)
    return any(model_dir.glob("*.safetensors")) or any(model_dir.glob("pytorch_model*.bin"))


def graph_interface(
    session: ort.InferenceSession, spec: ModelSpec, graph: Path
) -> tuple[ModelSpec, dict[int, str]]:
    """The spec fed as the graph wants, and which of its outputs are which hidden states.

    Raises:
        ModelLoadError: If the graph takes inputs featx cannot feed, or has no per-token
            hidden state.
    """
    inputs = [i.name for i in session.get_inputs()]
    unknown = [name for name in inputs if name not in INPUTS]
    if unknown:
        raise ModelLoadError(
            f"{graph} takes inputs {unknown} that featx does not feed (it feeds "
            f"{', '.join(INPUTS)}). A decoder exported with its key/value cache needs "
            "exporting again without it (optimum-cli export onnx --task feature-extraction)."
        )
    if "input_ids" not in inputs or "attention_mask" not in inputs:
        raise ModelLoadError(f"{graph} takes {inputs}; featx needs input_ids and attention_mask.")
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if all(f"hidden_state_{i}" in outputs for i in range(spec.num_layers + 1)):
        return dataclasses.replace(spec, input_names=tuple(inputs)), {}  # featx-named: all
    last = next((n for n in LAST_STATE_OUTPUTS if n in outputs and len(outputs[n]) == 3), None)
    if last is None:
        shapes = ", ".join(f"{name} {list(shape)}" for name, shape in outputs.items())
        raise ModelLoadError(
            f"{graph} has outputs {shapes}, none of them the per-token last hidden state "
            f"({' or '.join(LAST_STATE_OUTPUTS)}, (batch, tokens, {spec.dim})) that featx pools"
            ". A graph that only gives pooled vectors cannot be pooled, windowed or "
            "combined featx's way: export the model from its weights (featx export MODEL OUT)."
        )
    width = outputs[last][-1]
    if isinstance(width, int) and width != spec.dim:
        raise ModelLoadError(
            f"{graph} gives {last} of width {width}, but config.json says {spec.dim}."
        )
    return dataclasses.replace(spec, input_names=tuple(inputs)), {spec.num_layers: last}


def _tokenizer(folder: Path) -> Tokenizer:
    for root in dict.fromkeys([folder, transformer_folder(folder)]):
        if (root / TOKENIZER_FILE).is_file():
            tokenizer = Tokenizer.from_file(str(root / TOKENIZER_FILE))
            tokenizer.no_padding()  # featx pads and truncates itself
            tokenizer.no_truncation()
            return tokenizer
    raise ModelLoadError(
        f"{folder} has no {TOKENIZER_FILE}, which an ONNX folder needs without torch. Save "
        "the model's fast tokenizer there (tokenizer.save_pretrained(folder))."
    )


def _check_importable(graph: Path) -> None:
    """Refuse the graphs featx cannot carry as they are: quantised, or with external data."""
    marks = [m for m in QUANTISED_MARKS if m in graph.stem.lower()]
    if marks:
        raise ModelLoadError(
            f"{graph.name} looks quantised ({marks[0]!r} in its name). featx builds its own "
            "int8 graph from the fp32 one and gates it against that graph; point featx at "
            "the fp32 file (onnx/model.onnx, or --onnx-file)."
        )
    data = [p.name for p in graph.parent.glob(f"{graph.name}*") if p != graph]
    if data:
        raise ModelLoadError(
            f"{graph.name} keeps its weights in other files ({', '.join(sorted(data))}); "
            "featx artifacts hold one file per graph. Export the model from its weights."
        )


def build(plan: ExportPlan) -> ExportResult:
    """Turn the folder's own ONNX file into the artifact ``plan`` asks for."""
    source = resolve(plan.model)
    folder, revision = fetch(source)
    graph_file = find_graph(folder, plan.onnx_file)
    if graph_file is None:
        raise ModelLoadError(
            f"{folder} has no ONNX graph ({' or '.join(GRAPH_PLACES)}). Export it from its "
            f"weights instead (featx export --exporter torch; {install_command('export')})."
        )
    _check_importable(graph_file)
    spec = inspect_folder(folder, source.entry, **plan.overrides)
    tokenizer = _tokenizer(folder)
    spec, outputs = graph_interface(make_session(str(graph_file)), spec, graph_file)
    steps = ["fp32 graph"] + ["int8 graph"] * plan.quantize + ["fast graphs"]
    with (
        staging(plan.out, force=plan.force) as stage,
        progress(source.name, steps, plan.show_progress) as step,
    ):
        step()
        fp32 = stage / GRAPH_FILES[Precision.FP32]
        shutil.copyfile(graph_file, fp32)
        tokenizer.save(str(stage / TOKENIZER_FILE))
        reference = OnnxEncoder(make_session(str(fp32)), tokenizer, spec, outputs=outputs)
        graphs = Graphs(stage, tokenizer, spec, reference, plan.probes, outputs)
        imported = {"imported_from": graph_file.relative_to(folder).as_posix()}
        graphs.variants[Precision.FP32] = Variant(fp32.name, imported)
        graphs.parity["fp32"] = {"why": "the folder's own graph, used as it is; no torch here"}
        default, reason = Precision.FP32, "int8 not built (quantize=False)"
        if plan.quantize:
            step()
            default, reason = _int8(graphs, plan)
        step()
        if _has_onnx():
            fast_graphs(graphs, plan, attention_heads(folder))
        reference_name = f"the folder's fp32 graph {imported['imported_from']}"
        write_parity(graphs, plan, reference_name, default, reason)
        origin = Origin(source.name, revision, source.hub_id, str(folder))
        seal(stage, manifest(graphs, origin, plan, default))
    logger.info("Wrote %s from %s (default %s: %s)", plan.out, graph_file, default.value, reason)
    return ExportResult(plan.out, default.value, graphs.parity, reason)


def _has_onnx() -> bool:
    """Whether the onnx package is there: featx's int8 and fast graphs rewrite graphs with it."""
    return importlib.util.find_spec("onnx") is not None


def _int8(graphs: Graphs, plan: ExportPlan) -> tuple[Precision, str]:
    if not _has_onnx():
        reason = f"int8 not built: it needs the onnx package ({install_command('export')})"
        logger.warning("%s", reason)
        return Precision.FP32, reason
    return int8(graphs, plan)
