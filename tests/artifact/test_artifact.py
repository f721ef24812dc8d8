import json
import shutil

import pytest

import featx
from featx.artifact import MANIFEST, Artifact, HeadSection, Kind, Manifest, seal, staging
from featx.errors import ArtifactIntegrityError, ModelLoadError


@pytest.fixture
def artifact_copy(tiny_artifacts, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_artifacts["bert"], target)
    return target


def test_manifest_lists_every_file_with_sha256(tiny_artifacts):
    root = tiny_artifacts["bert"]
    manifest = json.loads((root / MANIFEST).read_text())
    on_disk = {p.name for p in root.iterdir()} - {MANIFEST}
    assert (
        set(manifest["files"])
        == on_disk
        == {"model.onnx", "model_int8.onnx", "tokenizer.json", "parity.json"}
        | {"model_fast.onnx", "model_fast_int8.onnx"}  # the fast path's graphs
    )
    assert all(len(e["sha256"]) == 64 for e in manifest["files"].values())
    for key in ("featx_version", "source", "model", "encoder"):
        assert key in manifest
    for key in ("opset", "variants", "default_precision", "parity"):
        assert key in manifest["encoder"]
    assert manifest["format_version"] == 2 and manifest["kind"] == "encoder"
    assert manifest["model"]["family"] == "bert" and manifest["model"]["dim"] == 32
    assert manifest["source"]["revision"].startswith("sha256:")


def test_altered_file_is_refused_on_load(artifact_copy):
    tok = artifact_copy / "tokenizer.json"
    data = bytearray(tok.read_bytes())
    data[10] ^= 1  # same size, one bit flipped
    tok.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="Checksum mismatch for .*tokenizer.json"):
        featx.load(artifact_copy)


def test_an_edited_manifest_is_refused_on_load(artifact_copy):
    manifest = json.loads((artifact_copy / MANIFEST).read_text())
    manifest["model"]["max_length"] += 1  # probed: 256 -> 257 by hand was served silently
    (artifact_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="featx.json was edited after it was sealed"):
        featx.load(artifact_copy)


def test_truncated_file_is_refused(artifact_copy):
    (artifact_copy / "model.onnx").write_bytes(b"broken")
    with pytest.raises(ArtifactIntegrityError, match="has 6 bytes"):
        featx.load(artifact_copy, precision="fp32")


def test_missing_file_is_refused(artifact_copy):
    (artifact_copy / "model_int8.onnx").unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing model_int8.onnx"):
        featx.load(artifact_copy)


def test_unknown_format_version_is_refused(artifact_copy):
    manifest = json.loads((artifact_copy / MANIFEST).read_text())
    manifest["format_version"] = 99
    (artifact_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="format_version 99"):
        featx.load(artifact_copy)


def test_missing_precision_names_what_exists(artifact_copy):
    with pytest.raises(ValueError, match="no fp16 graph; it has fp32, int8"):
        featx.load(artifact_copy, precision="fp16")


def test_export_refuses_an_existing_output(tiny_model_dirs, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        featx.export(tiny_model_dirs["bert"], out)
    (out / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not a featx artifact"):
        featx.export(tiny_model_dirs["bert"], out, force=True)
    assert (out / "keep.txt").read_text() == "user data"


def test_force_replaces_an_artifact_only_when_the_new_one_is_complete(tiny_model_dirs, tmp_path):
    out = tmp_path / "art"
    featx.export(tiny_model_dirs["bert"], out, quantize=False)
    before = json.loads((out / MANIFEST).read_text())
    featx.export(tiny_model_dirs["bert"], out, force=True, pooling="cls")
    after = Artifact.open(out).manifest
    assert after.model is not None and after.encoder is not None
    assert after.model.representation.pooling == "cls"
    assert "int8" in after.encoder.precisions and "int8" not in before["encoder"]["variants"]
    assert [p.name for p in tmp_path.iterdir()] == ["art"]  # no staging left behind


def test_failed_export_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "readme.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="no config.json"):
        featx.export(bad, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-model"]


def test_staging_cleans_up_on_error(tmp_path):
    with pytest.raises(RuntimeError), staging(tmp_path / "x", force=False) as stage:
        (stage / "f").write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_seal_then_open_round_trip(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    head = HeadSection(task="binary", estimator="LogisticRegression")
    seal(tmp_path, Manifest(kind=Kind.PREDICTOR, featx_version="test", created="", head=head))
    opened = Artifact.open(tmp_path)
    assert opened.read("a.txt") == b"hello"
    with pytest.raises(ArtifactIntegrityError, match="not listed"):
        opened.read("b.txt")


def test_not_an_artifact_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="featx export <model>"):
        Artifact.open(tmp_path)


def test_fp16_variant_for_gpus_is_built_and_checked(tiny_model_dirs, tmp_path):
    result = featx.export(tiny_model_dirs["roberta"], tmp_path / "fp16", fp16=True, quantize=False)
    assert result.parity["fp16"]["min_cosine"] > 0.999
    assert result.default_precision == "fp32"  # fp16 is never the CPU default
    fp16 = featx.load(result.path, precision="fp16")
    fp32 = featx.load(result.path)
    texts = ["a man is playing a guitar", "dog"]
    cos = (fp16.encode(texts, normalize=True) * fp32.encode(texts, normalize=True)).sum(axis=1)
    assert cos.min() > 0.999


def test_unavailable_provider_is_named():
    from featx.encoders.onnx import check_providers

    with pytest.raises(
        ValueError, match="not available in this onnxruntime build. Available: .*CPU"
    ):
        check_providers(["NoSuchExecutionProvider"])
