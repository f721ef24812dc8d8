"""A model folder's own ONNX file as a featx artifact, with no torch in the process.

The folders are built here the way optimum and sentence-transformers lay them out
(``onnx/model.onnx`` with one ``last_hidden_state`` output, config and tokenizer beside it,
no weights): from featx's own export of the same model, cut down to that one output.
``tests/exporter/test_optimum.py`` does the same from optimum's own exporter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import no_torch_vectors

import featx
from featx.artifact import Artifact
from featx.cli import main
from featx.config import Exporter
from featx.errors import ModelLoadError

onnx = pytest.importorskip("onnx")
TEXTS = ["the quick brown fox jumps over the lazy dog", "a man is playing a guitar", "dog", ""]


def onnx_folder(
    model_dir: Path,
    featx_graph: Path,
    out: Path,
    *,
    num_layers: int,
    output: str = "last_hidden_state",
) -> Path:
    """``model_dir`` without its weights, with ``onnx/model.onnx`` giving only ``output``."""
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    model = onnx.load(str(featx_graph))
    last = f"hidden_state_{num_layers}"
    if output == "sentence_embedding":  # a graph that pools inside: (batch, dim) only
        model.graph.node.append(
            onnx.helper.make_node("ReduceMean", [last], [output], axes=[1], keepdims=0)
        )
        shape = ["batch", "dim"]
    else:
        model.graph.node.append(onnx.helper.make_node("Identity", [last], [output]))
        shape = ["batch", "sequence", None]
    del model.graph.output[:]
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, shape)
    )
    (out / "onnx").mkdir()
    onnx.save(model, str(out / "onnx" / "model.onnx"))
    return out


@pytest.fixture(scope="module")
def bert_onnx_folder(tiny_model_dirs, tiny_artifacts, tmp_path_factory) -> Path:
    return onnx_folder(
        tiny_model_dirs["bert"],
        tiny_artifacts["bert"] / "model.onnx",
        tmp_path_factory.mktemp("onnx-folder") / "bert",
        num_layers=2,
    )


def test_a_folder_with_its_own_onnx_graph_becomes_an_artifact(
    bert_onnx_folder, tiny_artifacts, tmp_path
):
    result = featx.export(bert_onnx_folder, tmp_path / "a")  # no weights there: its own graph
    manifest = Artifact.open(result.path).manifest
    assert manifest.encoder is not None and manifest.encoder.exporter is Exporter.EXISTING
    assert manifest.encoder.outputs == {2: "last_hidden_state"}
    assert manifest.encoder.variants["fp32"].recipe == {"imported_from": "onnx/model.onnx"}
    assert "min_cosine" not in result.parity["fp32"]  # no torch: said, not pretended
    assert result.parity["int8"]["min_cosine"] > 0.9  # featx's int8, gated against the graph
    got = featx.load(result.path, precision="fp32").encode(TEXTS)
    want = featx.load(tiny_artifacts["bert"], precision="fp32").encode(TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_it_cannot_choose_layers_and_says_so_at_once(bert_onnx_folder, tmp_path):
    path = featx.export(bert_onnx_folder, tmp_path / "a", quantize=False).path
    encoder = featx.load(path)
    with pytest.raises(ValueError, match=r"hidden state 2 only .*layers \(0,\) cannot be read"):
        encoder.encode(TEXTS, layers=0)
    with pytest.raises(ValueError, match="--exporter torch"):
        featx.load(path, layers=(-2, -1))
    words = encoder.encode_tokens(["a man is playing"])  # the last layer is there
    assert words[0].vectors.shape == (4, 32)


def test_featx_load_of_the_folder_never_imports_torch(bert_onnx_folder, tiny_artifacts):
    got = no_torch_vectors(bert_onnx_folder, TEXTS)  # exported into the cache, then loaded
    want = featx.load(tiny_artifacts["bert"], precision="fp32").encode(TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_graph_without_token_type_ids_is_fed_without_them(
    tiny_model_dirs, tiny_artifacts, tmp_path
):
    folder = onnx_folder(
        tiny_model_dirs["distilbert"],
        tiny_artifacts["distilbert"] / "model.onnx",
        tmp_path / "distilbert",
        num_layers=2,
        output="token_embeddings",  # older sentence-transformers exports name it so
    )
    encoder = featx.load(featx.export(folder, tmp_path / "a", quantize=False).path)
    assert encoder.spec.input_names == ("input_ids", "attention_mask")
    want = featx.load(tiny_artifacts["distilbert"], precision="fp32").encode(TEXTS)
    np.testing.assert_allclose(encoder.encode(TEXTS), want, atol=1e-5)


def test_what_cannot_be_imported_is_refused_with_the_reason(
    tiny_model_dirs, tiny_artifacts, bert_onnx_folder, tmp_path
):
    pooled = onnx_folder(
        tiny_model_dirs["bert"],
        tiny_artifacts["bert"] / "model.onnx",
        tmp_path / "pooled",
        num_layers=2,
        output="sentence_embedding",
    )
    with pytest.raises(
        ModelLoadError, match=r"outputs sentence_embedding \['batch', 32\], none of them"
    ):
        featx.export(pooled, tmp_path / "a")
    quantised = tmp_path / "q"
    shutil.copytree(bert_onnx_folder, quantised)
    (quantised / "onnx" / "model.onnx").rename(quantised / "onnx" / "model_qint8_avx512_vnni.onnx")
    with pytest.raises(ModelLoadError, match="looks quantised"):
        featx.export(quantised, tmp_path / "b", onnx_file="onnx/model_qint8_avx512_vnni.onnx")
    with pytest.raises(FileNotFoundError, match="has no ONNX file 'onnx/O3.onnx'"):
        featx.export(bert_onnx_folder, tmp_path / "c", onnx_file="onnx/O3.onnx")
    with pytest.raises(ModelLoadError, match="has no ONNX graph"):
        featx.export(tiny_model_dirs["bert"], tmp_path / "d", exporter="existing")
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_the_cli_imports_a_folder_and_info_says_where_it_came_from(bert_onnx_folder, tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["export", str(bert_onnx_folder), str(tmp_path / "a")])
    assert out.exit_code == 0, out.output
    assert "default precision:" in out.output
    info = runner.invoke(main, ["info", str(tmp_path / "a")])
    assert "exporter existing" in info.output
    assert "outputs:    hidden state 2 only (last_hidden_state)" in info.output
    assert "fp32: not measured (the folder's own graph" in info.output


@pytest.mark.real
def test_the_default_model_from_its_onnx_folder_equals_sentence_transformers(
    default_model_dir, real_artifact, tmp_path
):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    folder = onnx_folder(
        default_model_dir, real_artifact / "model.onnx", tmp_path / "m", num_layers=6
    )
    got = no_torch_vectors(folder, TEXTS)
    want = sentence_transformers.SentenceTransformer(str(default_model_dir), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )
    cosine = (got * want).sum(axis=1)  # both L2-normalised
    assert cosine.min() >= 0.9999, cosine
