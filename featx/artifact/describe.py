"""What an artifact holds, as the lines ``featx info`` prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from featx.artifact.manifest import PARITY_FILE, Manifest
from featx.artifact.store import Artifact


def parity_line(name: str, figures: Mapping[str, Any]) -> str:
    """One graph's agreement with the torch reference."""
    if "min_cosine" not in figures:
        return f"  {name}: not measured ({figures.get('why', '')})"
    return (
        f"  {name}: min cosine {figures['min_cosine']:.5f}, mean {figures['mean_cosine']:.5f}, "
        f"max abs diff {figures['max_abs_diff']:.2e}"
    )


def describe(artifact: Artifact) -> list[str]:
    """Lines that say what ``artifact`` is, holds and how its graphs compare with torch.

    Reads the files it quotes (labels, metrics, reports) verified, as every read is.
    """
    m = artifact.manifest
    lines = [f"artifact:   {artifact.path}", f"kind:       {m.kind.value}"]
    lines += _encoder(m)
    lines += _head(artifact) + _tagger(artifact) + _qa(artifact) + _finetune(artifact)
    lines.append(f"featx:      {m.featx_version}, created {m.created}")
    lines.append(f"checksums:  {len(m.files)} files verified")
    if PARITY_FILE in m.files:
        parity = artifact.read_json(PARITY_FILE)
        lines.append(f"parity vs {parity['reference']} on {parity['n_probe_texts']} probe texts:")
        lines += [parity_line(name, figures) for name, figures in parity["variants"].items()]
        lines.append(f"  default: {parity['reason']}")
    return lines


def _encoder(m: Manifest) -> list[str]:
    if m.model is None or m.encoder is None:
        return []
    spec, rep, encoder = m.model, m.model.representation, m.encoder
    source = (
        [] if m.source is None else [f"source:     {m.source.name} (revision {m.source.revision})"]
    )
    outputs = [
        f"outputs:    hidden state {i} only ({name}): no other layer can be chosen"
        for i, name in encoder.outputs.items()
    ]
    fast = (
        [
            f"fast path:  {', '.join(p.value for p in encoder.fast)} (the default "
            f"{rep.pooling.value} vector only; fused: {_fused(encoder.fast)})"
        ]
        if encoder.fast
        else []
    )
    absent = [v.file for v in encoder.variants.values() if v.file not in m.files]
    if absent:  # a predictor saved with the graph its model runs
        fast.append(f"graphs:     without {', '.join(absent)} (the model runs the fast graph)")
    return [
        *source,
        *outputs,
        *fast,
        f"family:     {spec.family.value}, {spec.num_layers} layers, dim {spec.dim}, "
        f"max_length {spec.max_length}",
        f"pooling:    {rep.pooling.value}, normalize {rep.normalize}",
        f"variants:   {', '.join(p.value for p in encoder.variants)} "
        f"(default {encoder.default_precision.value}; opset {encoder.opset}; "
        f"exporter {encoder.exporter.value})",
    ]


def _fused(fast: Mapping[Any, Any]) -> str:
    recipe = next(iter(fast.values())).recipe or {}
    return ", ".join(f"{op} {n}" for op, n in recipe.get("fused", {}).items()) or "none"


def _head(artifact: Artifact) -> list[str]:
    head = artifact.manifest.head
    if head is None:
        return []
    labels = artifact.read_json(head.labels)["labels"]
    shown = ", ".join(map(str, labels[:10])) + (", ..." if len(labels) > 10 else "")
    lines = [f"head:       {head.estimator} ({head.task}{': ' + shown if shown else ''})"]
    extra = [e for e in head.encoders if e != "."]
    if extra:
        lines.append(f"encoders:   {', '.join(extra)} (besides the root)")
    return lines


def _tagger(artifact: Artifact) -> list[str]:
    tagger = artifact.manifest.tagger
    if tagger is None:
        return []
    metrics = artifact.read_json(tagger.metrics)
    settings = metrics["settings"]
    dev = metrics.get("dev")
    return [
        f"tagger:     CRF over layers {settings['layers']} ({settings['combine']}), "
        f"context {settings['context']}, c2 {settings['c2']:g}; entity types "
        f"{', '.join(tagger.entity_types)}"
        + (f"; dev F1 {100 * dev['micro']['f1']:.2f}" if dev else "")
    ]


def _qa(artifact: Artifact) -> list[str]:
    qa = artifact.manifest.qa
    if qa is None:
        return []
    dev = artifact.read_json(qa.metrics).get("dev") or {}
    scores = f"; dev EM {dev['exact_match']:.2f}, F1 {dev['f1']:.2f}" if "f1" in dev else ""
    return [
        f"qa:         span head over the last layer; windows share {qa.stride} pieces, "
        f"questions up to {qa.max_question} pieces, answers up to {qa.max_answer_length}" + scores,
        "qa graphs:  "
        + (", ".join(f"{p} {f}" for p, f in sorted(qa.graphs.items())) or "none (numpy head)"),
    ]


def _finetune(artifact: Artifact) -> list[str]:
    tuned = artifact.manifest.finetune
    if tuned is None:
        return []
    report = artifact.read_json(tuned.report)
    # featx 0.1 wrote the autocast dtype as "precision_used".
    autocast = report.get("autocast_used", report.get("precision_used"))
    lines = [
        f"fine-tuned: from {report['model']}, train_layers={report['settings']['train_layers']}, "
        f"{report['train_seconds']:.0f} s ({autocast}); HF folder {tuned.hf}/"
    ]
    gate = tuned.dev_gate or {}  # token fine-tuning has no head to gate
    if gate.get("checked") and "int8" in gate:  # question answering: EM and F1 of each graph
        fp32, int8 = gate["fp32"], gate["int8"]
        lines.append(
            f"dev gate:   F1 fp32 {fp32['f1']:.2f}, int8 {int8['f1']:.2f}; EM fp32 "
            f"{fp32['exact_match']:.2f}, int8 {int8['exact_match']:.2f} "
            f"({'passed' if gate['passes'] else 'failed'})"
        )
    elif gate.get("checked"):
        lines.append(
            f"dev gate:   {gate['metric']} torch fp32 {gate['torch_fp32']:.2f}, "
            f"int8 {gate['onnx_int8']:.2f} ({'passed' if gate['passes'] else 'failed'})"
        )
    return lines
