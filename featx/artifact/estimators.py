"""Trained artifacts: estimators saved with skops (never pickle), loaded only if trusted.

Predictors and taggers are saved the same way: the encoder artifact(s) they embed with
are copied in (the first at the root, so the result still embeds like a plain encoder;
others under ``encoders/N``), the fitted estimator is written with skops, labels and
metrics as JSON, and the manifest is sealed. Loading checks the kind, verifies every
file it reads, and refuses any type that is neither skops' default nor in
:data:`TRUSTED_TYPES` nor named by the caller.

Imports scikit-learn (through skops): only trained models pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence, Set
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import skops.io

from featx._version import __version__
from featx.artifact.manifest import MEMBERS_DIR, HeadSection, Kind, Manifest, TaggerSection
from featx.artifact.store import Artifact, copy_encoder, seal, staging
from featx.errors import ModelLoadError
from featx.files import write_json_atomic

# Types trusted beyond skops' defaults: featx's own estimators, and scikit-learn internals
# its heads hold: Bunch (the dict ensembles keep members in) and the fitted parts of
# CalibratedClassifierCV (svm), MLPs (optimiser state) and gradient boosting (trees).
TRUSTED_TYPES = (
    "featx.embedder.Embedder",
    "featx.encoders.fake.HashEncoder",
    "featx.heads.NeuralHead",
    "featx.tagging.crf.LinearChainCRF",
    "featx.tagging.features.TokenEmbedder",
    "sklearn.utils._bunch.Bunch",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
# What to say when an artifact is not of the kind a loader needs.
_TRAIN_HINT = {
    Kind.PREDICTOR: "has no head: it is an encoder artifact. Train one with: featx train "
    "--model {path} --data train.tsv --out MODEL",
    Kind.TAGGER: "is not a tagger. Train one with: featx train-ner --data train.txt --dev "
    "dev.txt --out MODEL",
    Kind.QA: "is not a question answerer. Fine-tune one with featx.finetune_qa(questions, "
    "model={path!r}, out=MODEL)",
}
_LOADERS = {
    Kind.PREDICTOR: "featx.Predictor.load",
    Kind.TAGGER: "featx.Tagger.load",
    Kind.QA: "featx.Answerer.load",
}


def dump(obj: Any) -> bytes:
    """``obj`` as skops bytes."""
    return bytes(skops.io.dumps(obj))


def load(data: bytes, where: Path, trusted: Sequence[str] = ()) -> Any:
    """Load skops bytes, refusing types neither skops, featx nor ``trusted`` trust.

    Raises:
        ModelLoadError: If the file holds an untrusted type.
    """
    untrusted = skops.io.get_untrusted_types(data=data)
    refused = [t for t in untrusted if t not in TRUSTED_TYPES and t not in trusted]
    if refused:
        raise ModelLoadError(
            f"{where} holds types that skops does not trust: {', '.join(refused)}. If you "
            "trust this file, pass trusted=[...] with them."
        )
    return skops.io.loads(data, trusted=list(untrusted))


def member_dirs(sources: Sequence[Path]) -> dict[Path, str]:
    """Where each encoder artifact goes inside a trained artifact: ``.``, then encoders/N."""
    out: dict[Path, str] = {}
    for source in sources:
        if source not in out:
            out[source] = "." if not out else f"{MEMBERS_DIR}/{len(out)}"
    return out


def write_trained(
    out: str | os.PathLike[str],
    *,
    force: bool,
    members: Mapping[Path, str],
    graphs: Mapping[Path, Set[str]] | None = None,
    estimator: Any,
    labels: Any,
    metrics: Any,
    section: HeadSection | TaggerSection,
) -> Path:
    """Write a trained artifact at ``out`` (atomically) and return its path.

    Args:
        out: The artifact directory.
        force: Replace ``out`` if it exists (once the new one is complete).
        members: Encoder artifacts to copy in, and their folders (see :func:`member_dirs`).
        graphs: The ONNX graphs to copy of each member (see :func:`copy_encoder`); a member
            missing here keeps all of its graphs.
        estimator: What goes into the skops file (the fitted head or tagger state).
        labels: The content of the labels file.
        metrics: The content of the metrics file.
        section: The head or tagger section (its file names are used as given).

    Raises:
        FileExistsError: If ``out`` exists and ``force`` is false.
    """
    target = Path(out)
    with staging(target, force=force) as stage:
        base: Manifest | None = None
        for source, folder in members.items():
            copied = copy_encoder(source, stage / folder, graphs=(graphs or {}).get(source))
            base = base or copied
        (stage / section.file).write_bytes(dump(estimator))
        write_json_atomic(stage / section.labels, labels)
        write_json_atomic(stage / section.metrics, metrics)
        head = section if isinstance(section, HeadSection) else None
        tagger = section if isinstance(section, TaggerSection) else None
        stamp: dict[str, Any] = {
            "featx_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if base is None:  # an in-memory encoder (HashEncoder) lives inside the skops file
            manifest = Manifest(kind=Kind.PREDICTOR, head=head, **stamp)
        else:
            kind = Kind.PREDICTOR if head else Kind.TAGGER
            manifest = replace(base, kind=kind, head=head, tagger=tagger, **stamp)
        seal(stage, manifest)
    return target


def open_trained(path: str | os.PathLike[str], kind: Kind) -> Artifact:
    """Open a trained artifact of ``kind``.

    Raises:
        ModelLoadError: If it is another kind.
    """
    artifact = Artifact.open(path)
    if artifact.manifest.kind is not kind:
        found = artifact.manifest.kind
        if found is Kind.ENCODER:
            raise ModelLoadError(f"{artifact.path} " + _TRAIN_HINT[kind].format(path=artifact.path))
        loader = _LOADERS[found]
        raise ModelLoadError(
            f"{artifact.path} is a {found.value}, not a {kind.value}: load it with {loader}."
        )
    return artifact
