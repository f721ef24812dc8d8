"""The typed manifest: format 2 written, format 1 (featx 0.1) still read, kinds and sections.

The format-1 manifests in tests/fixtures/format1/ were written by featx 0.1.0 (commit
522f780) for tiny test models: an encoder, a stacking ensemble over two encoders, a
fine-tuned predictor and a token-fine-tuned tagger. ``hash-predictor/`` is a complete
featx 0.1.0 artifact (a logistic regression over a HashEncoder: no ONNX file needed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import featx
from featx.artifact import MANIFEST, Artifact, Kind, Manifest
from featx.cli import main
from featx.config import Precision
from featx.errors import ModelLoadError

FIXTURES = Path(__file__).parent / "fixtures" / "format1"
TEXTS = ["a good film", "a great movie", "a bad film", "a terrible movie", "good fun", "bad taste"]
LABELS = ["pos", "pos", "neg", "neg", "pos", "neg"]


def as_format_1(manifest: Manifest) -> dict[str, Any]:
    """The manifest as featx 0.1 wrote it (encoder keys at the top, ``predictor``)."""
    d = manifest.to_dict()
    out: dict[str, Any] = {k: d[k] for k in ("featx_version", "created", "files")}
    out["format_version"] = 1
    if "source" in d:
        out["source"] = {"hub_id": None, **d["source"]}
    if "model" in d:
        out["model"] = d["model"]
        # featx 0.1 knew one exporter (torch) and did not name it.
        out.update({k: v for k, v in d["encoder"].items() if k != "exporter"})
    if "head" in d:
        head = d["head"]
        out["predictor"] = {
            "task": head["task"],
            "estimator": head["estimator"],
            "head": head["file"],
            "labels": head["labels"],
            "metrics": head["metrics"],
            "encoders": head["encoders"],
        }
    if "tagger" in d:
        tagger = d["tagger"]
        out["tagger"] = {"entity_types": tagger["entity_types"], "head": tagger["file"]}
        out["tagger"].update(labels=tagger["labels"], metrics=tagger["metrics"])
    if "finetune" in d:
        out["finetune"] = d["finetune"]
    return out


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("encoder", Kind.ENCODER),
        ("ensemble", Kind.PREDICTOR),
        ("finetuned", Kind.PREDICTOR),
        ("tagger-finetuned", Kind.TAGGER),
    ],
)
def test_format_1_manifests_read_into_their_sections(name: str, kind: Kind) -> None:
    old = fixture(name)
    manifest = Manifest.from_dict(old)
    assert manifest.kind is kind
    assert manifest.model is not None and manifest.model.dim == 32
    assert manifest.encoder is not None and manifest.encoder.opset == 17
    assert manifest.encoder.default_precision is Precision(old["default_precision"])
    assert manifest.encoder.parity["fp32"]["min_cosine"] == old["parity"]["fp32"]["min_cosine"]
    assert set(manifest.files) == set(old["files"])
    assert manifest.source is not None and manifest.source.revision == old["source"]["revision"]
    # Nothing is lost: written back in the old layout, it is the very same document.
    assert as_format_1(manifest) == old
    new = manifest.to_dict()
    assert new["format_version"] == 2 and new["kind"] == kind.value
    assert "variants" not in new and "predictor" not in new
    assert Manifest.from_dict(new) == manifest


def test_format_1_sections_keep_their_meaning() -> None:
    ensemble = Manifest.from_dict(fixture("ensemble"))
    assert ensemble.head is not None and ensemble.head.encoders == (".", "encoders/1")
    assert ensemble.head.estimator == "StackingClassifier" and ensemble.head.file == "head.skops"
    tuned = Manifest.from_dict(fixture("finetuned"))
    assert tuned.finetune is not None and tuned.finetune.hf == "hf"
    assert tuned.finetune.dev_gate is not None and tuned.finetune.dev_gate["passes"] is True
    assert tuned.source is not None and tuned.source.path == "hf"
    tagger = Manifest.from_dict(fixture("tagger-finetuned"))
    assert tagger.tagger is not None and tagger.tagger.entity_types == ("LOC", "PER")
    assert tagger.tagger.file == "tagger.skops"
    assert tagger.finetune is not None and tagger.finetune.task == "tokens"
    assert tagger.trained_files() == {"tagger.skops", "labels.json", "metrics.json"}


def test_a_featx_0_1_artifact_still_loads_and_predicts(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(FIXTURES / "hash-predictor", old)
    assert json.loads((old / MANIFEST).read_text())["format_version"] == 1
    model = featx.Predictor.load(old)
    assert model.predict(["good", "bad", "great fun", "terrible taste"]) == [
        "pos",
        "neg",
        "pos",
        "neg",
    ]
    assert model.predict_proba(["good"])[0, 1] == pytest.approx(0.9778, abs=1e-4)
    info = CliRunner().invoke(main, ["info", str(old)])
    assert info.exit_code == 0, info.output
    assert "kind:       predictor" in info.output
    assert "head:       LogisticRegression" in info.output
    model.save(tmp_path / "new")  # rewritten in the new form
    assert json.loads((tmp_path / "new" / MANIFEST).read_text())["format_version"] == 2


def _downgraded(artifact: Path, target: Path) -> Path:
    """A copy of ``artifact`` with its manifest as featx 0.1 wrote it."""
    shutil.copytree(artifact, target)
    old = as_format_1(Artifact.open(target).manifest)
    (target / MANIFEST).write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    return target


def test_format_1_encoders_predictors_and_taggers_load(
    tiny_artifacts: dict[str, Path], tmp_path: Path
) -> None:
    encoder = _downgraded(tiny_artifacts["bert"], tmp_path / "encoder")
    assert featx.load(encoder).encode(TEXTS).shape == (len(TEXTS), 32)
    trained = featx.train(TEXTS, LABELS, model=str(tiny_artifacts["bert"]), cache=False)
    predictor = _downgraded(trained.save(tmp_path / "p"), tmp_path / "predictor")
    assert featx.Predictor.load(predictor).predict(TEXTS) == trained.predict(TEXTS)
    assert featx.load(predictor).encode(TEXTS).shape == (len(TEXTS), 32)  # still embeds
    words = [t.split() for t in TEXTS]
    tags = [["O", "B-PER", "O"] if len(w) == 3 else ["B-LOC", "O"] for w in words]
    tagger = featx.train_ner(words, tags, model=tiny_artifacts["bert"], out=tmp_path / "t")
    old_tagger = _downgraded(tmp_path / "t", tmp_path / "tagger")
    assert featx.Tagger.load(old_tagger).predict_tags(words) == tagger.predict_tags(words)


def test_unknown_kinds_and_missing_sections_are_refused(tmp_path: Path) -> None:
    new = Manifest.from_dict(fixture("encoder")).to_dict()
    with pytest.raises(ModelLoadError, match="artifact kind"):
        Manifest.from_dict({**new, "kind": "oracle"})
    with pytest.raises(ModelLoadError, match="A tagger artifact needs its tagger section"):
        Manifest.from_dict({**new, "kind": "tagger"})
    with pytest.raises(ModelLoadError, match="malformed"):
        Manifest.from_dict({k: v for k, v in new.items() if k != "files"})


def test_loaders_say_which_kind_they_found(tiny_artifacts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="has no head: it is an encoder artifact"):
        featx.Predictor.load(tiny_artifacts["bert"])
    with pytest.raises(ModelLoadError, match="is not a tagger"):
        featx.Tagger.load(tiny_artifacts["bert"])
    old = tmp_path / "old"
    shutil.copytree(FIXTURES / "hash-predictor", old)
    with pytest.raises(ModelLoadError, match="is a predictor, not a tagger"):
        featx.Tagger.load(old)
    with pytest.raises(ModelLoadError, match="holds no encoder"):
        featx.load(old)
