"""A saved predictor keeps the graph it runs, not every graph of its encoder.

Found as a new user: every trained model copied both precisions and both graphs of its
encoder (143 MB for a 66 KB head; 518 MB for one soft vote).
"""

from pathlib import Path

import pytest
from click.testing import CliRunner

import featx
from featx.artifact import Artifact
from featx.cli import main
from featx.errors import ModelLoadError

TEXTS = ["a great movie", "i love it", "great fun", "a terrible film", "i hate it", "a bad mess"]
LABELS = ["pos", "pos", "pos", "neg", "neg", "neg"]


def _graphs(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*.onnx")}


def test_a_saved_predictor_keeps_only_the_graph_it_runs(tiny_artifacts, tmp_path):
    source = tiny_artifacts["bert"]
    encoder = Artifact.open(source).manifest.encoder
    default = encoder.default_precision
    model = featx.train(TEXTS, LABELS, model=str(source), recipe="fast", cache=False)
    saved = model.save(tmp_path / "fast")
    # The default vector comes from the fast graph of the default precision: only that.
    assert _graphs(saved) == {encoder.fast[default].file}
    largest = max((source / f).stat().st_size for f in _graphs(source))
    head = (saved / "head.skops").stat().st_size
    assert sum(p.stat().st_size for p in saved.rglob("*.onnx")) <= largest
    assert sum(p.stat().st_size for p in saved.iterdir()) <= largest + head + 2_000_000
    again = featx.Predictor.load(saved)
    assert again.predict(TEXTS) == model.predict(TEXTS)
    Artifact.open(saved).verify_all()  # every listed file is there and intact
    # Its encoder still embeds the default vector; a call that needs another graph says why.
    embedded = featx.load(saved).encode(TEXTS[:2])
    assert embedded.shape[0] == 2
    with pytest.raises(ModelLoadError, match="keeps only the graph its model uses"):
        featx.load(saved).encode(TEXTS[:2], layers=-2)
    shown = CliRunner().invoke(main, ["info", str(saved)])
    assert shown.exit_code == 0, shown.output
    assert f"without {encoder.variants[default].file} (the model runs the fast graph)" in (
        shown.output
    )


def test_other_layers_keep_the_full_graph_and_all_graphs_keeps_everything(tiny_artifacts, tmp_path):
    source = tiny_artifacts["bert"]
    encoder = Artifact.open(source).manifest.encoder
    layers = featx.train(
        TEXTS, LABELS, model=str(source), representation={"layers": "all"}, cache=False
    )
    saved = layers.save(tmp_path / "layers")
    assert _graphs(saved) == {encoder.variants[encoder.default_precision].file}
    assert featx.Predictor.load(saved).predict(TEXTS) == layers.predict(TEXTS)
    everything = layers.save(tmp_path / "all", all_graphs=True)
    assert _graphs(everything) == _graphs(source)
    fp32 = featx.train(TEXTS, LABELS, model=str(source), precision="fp32", recipe="fast")
    manifest = Artifact.open(fp32.save(tmp_path / "fp32")).manifest
    assert manifest.encoder.precisions == ["fp32"]
    assert manifest.encoder.default_precision.value == "fp32"
