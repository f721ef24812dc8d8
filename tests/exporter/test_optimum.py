"""optimum's exporter (``featx export --exporter optimum``): the same graph outputs, gate, int8.

Runs where the ``optimum`` extra is installed (transformers 4.x: optimum-onnx's pin);
`.ci/run` runs it in a second, small environment.
"""

from __future__ import annotations

import gc
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import no_torch_vectors

pytest.importorskip("optimum.exporters.onnx", reason="the optimum extra is not installed")

import featx  # noqa: E402
from featx.artifact import Artifact  # noqa: E402
from featx.cli import main  # noqa: E402
from featx.config import Exporter  # noqa: E402

pytestmark = pytest.mark.optimum
TEXTS = ["the quick brown fox jumps over the lazy dog", "a man is playing a guitar", "dog", ""]


def test_every_family_exports_with_optimum_behind_the_same_gate(
    tiny_model_dirs: dict[str, Path], family: str, tmp_path: Path
) -> None:
    result = featx.export(tiny_model_dirs[family], tmp_path / "a", exporter="optimum")
    manifest = Artifact.open(result.path).manifest
    assert manifest.encoder is not None and manifest.encoder.exporter is Exporter.OPTIMUM
    assert result.parity["fp32"]["min_cosine"] >= 0.9999
    assert "int8" in result.parity  # the same int8 recipe, behind the same gate
    onnx = featx.load(result.path, precision="fp32")
    torch_ref = featx.load(tiny_model_dirs[family], backend="torch")
    for layers in (-1, 0, (1, 2)):
        got = onnx.encode(TEXTS, layers=layers, combine="concat")
        want = torch_ref.encode(TEXTS, layers=layers, combine="concat")
        np.testing.assert_allclose(got, want, atol=1e-4)  # every hidden state is an output


def test_cli_export_with_optimum(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["export", str(tiny_model_dirs["bert"]), str(out), "--exporter", "optimum"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(main, ["info", str(out)])
    assert "exporter optimum" in info.output


def test_a_folder_from_optimums_own_export_becomes_an_artifact_without_torch(
    tiny_model_dirs: dict[str, Path], tiny_artifacts: dict[str, Path], family: str, tmp_path: Path
) -> None:
    from optimum.exporters.onnx import main_export

    folder = (
        tmp_path / "optimum-cli"
    )  # what `optimum-cli export onnx --task feature-extraction` writes
    with warnings.catch_warnings():  # optimum's export warns (TorchScript, tracing); not ours
        warnings.simplefilter("ignore")
        main_export(str(tiny_model_dirs[family]), output=folder, task="feature-extraction")
    assert (folder / "model.onnx").is_file() and not any(folder.glob("*.safetensors"))
    got = no_torch_vectors(folder, TEXTS)
    want = featx.load(tiny_artifacts[family], precision="fp32").encode(TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.real
def test_the_default_models_sentence_transformers_onnx_folder_equals_its_onnx_backend(
    default_model_dir: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    shutil.copytree(default_model_dir, tmp_path / "source")
    with warnings.catch_warnings():  # its export runs optimum's, which warns (tracing) and
        warnings.simplefilter("ignore")  # leaves a temporary folder to the garbage collector
        exported = SentenceTransformer(str(tmp_path / "source"), backend="onnx", device="cpu")
        exported.save_pretrained(str(tmp_path / "st-onnx"))  # onnx/model.onnx, no weights
        del exported
        gc.collect()
    texts = [*TEXTS, "A quietly moving portrait of grief. " * 40]  # one text beyond 256 tokens
    got = no_torch_vectors(tmp_path / "st-onnx", texts)
    backend = SentenceTransformer(str(tmp_path / "st-onnx"), backend="onnx", device="cpu")
    want = backend.encode(texts, normalize_embeddings=True)
    cosine = (got * want).sum(axis=1)  # both L2-normalised
    assert cosine.min() >= 0.9999, cosine
