import json
import shutil

import pytest

import featx
from featx.config import Family, Pooling
from featx.errors import ModelLoadError
from featx.sources import inspect_folder, load_registry, resolve


def test_registry_has_the_default_and_every_family():
    default, entries = load_registry()
    assert default == "minilm"
    assert {e.family for e in entries.values()} == set(Family)
    assert entries["gpt2"].pooling is Pooling.LAST
    listed = featx.models()
    assert listed["minilm"]["default"] is True and listed["bge-small"]["pooling"] == "cls"


def test_default_alias_resolves_to_the_packaged_folder():
    source = resolve("minilm")
    assert source.folder is not None and (source.folder / "config.json").is_file()
    assert source.entry is not None and source.entry.max_length == 256


def test_hub_ids_and_folders_resolve(tmp_path):
    assert resolve("BAAI/bge-small-en-v1.5").hub_id == "BAAI/bge-small-en-v1.5"
    assert resolve(str(tmp_path)).folder == tmp_path.resolve()


def test_unknown_alias_lists_the_known_ones():
    with pytest.raises(
        ValueError, match=r"Unknown model alias 'minilmm'\. Known aliases: .*minilm"
    ):
        resolve("minilmm")


def test_missing_path_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="No model folder or artifact at './nope'"):
        resolve("./nope")


def test_offline_hub_id_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="Cannot get 'nobody/no-such-model'"):
        featx.export("nobody/no-such-model", "/tmp/featx-never-written")


def test_sentence_transformers_settings_are_honoured(tiny_model_dirs, tmp_path):
    folder = tmp_path / "st"
    shutil.copytree(tiny_model_dirs["bert"], folder)
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True})
    )
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24}))
    spec = inspect_folder(folder)
    assert spec.representation.pooling is Pooling.CLS
    assert spec.representation.normalize is True
    assert spec.max_length == 24
    plain = inspect_folder(tiny_model_dirs["bert"])
    assert plain.representation.pooling is Pooling.MEAN and plain.representation.normalize is False


def test_sentence_transformers_5_and_later_settings_are_honoured(tiny_model_dirs, tmp_path):
    folder = tmp_path / "st6"
    shutil.copytree(tiny_model_dirs["bert"], folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"embedding_dimension": 32, "pooling_mode": "lasttoken"}))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = 20  # where version 5 and later keep max_seq_length
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    spec = inspect_folder(folder)
    assert spec.representation.pooling is Pooling.LAST and spec.representation.normalize is False
    assert spec.max_length == 20
    pooling.write_text(json.dumps({"pooling_mode": ["mean", "max"]}))
    with pytest.raises(ModelLoadError, match=r"pooling modes \['mean', 'max'\]; featx supports"):
        inspect_folder(folder)
    pooling.write_text(json.dumps({"pooling_mode": "mean_sqrt_len_tokens"}))
    with pytest.raises(ModelLoadError, match=r"pooling mode\(s\) \['mean_sqrt_len_tokens'\]"):
        inspect_folder(folder)


def test_real_default_folder_settings(default_model_dir):
    spec = inspect_folder(default_model_dir)
    assert spec.family is Family.BERT and spec.dim == 384 and spec.num_layers == 6
    assert spec.max_length == 256  # sentence_bert_config.json, not tokenizer.json's 128
    assert spec.representation.pooling is Pooling.MEAN and spec.representation.normalize


def test_unsupported_model_type_is_named(tiny_model_dirs, tmp_path):
    folder = tmp_path / "t5"
    shutil.copytree(tiny_model_dirs["bert"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "t5"}))
    with pytest.raises(ModelLoadError, match="holds a 't5' model; featx supports model types bert"):
        inspect_folder(folder)


def test_max_length_beyond_positions_is_refused(tiny_model_dirs):
    with pytest.raises(ValueError, match="exceeds the 64 positions"):
        inspect_folder(tiny_model_dirs["bert"], max_length=100)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="Unknown backend 'tf'. Valid values: onnx, torch"):
        featx.load("minilm", backend="tf")


def test_unknown_family_in_a_registry_entry_is_named():
    from featx.sources import RegistryEntry

    with pytest.raises(ValueError, match="Unknown family 't5'. Valid values: 'bert', 'roberta'"):
        RegistryEntry(
            alias="x", source="a/b", family="t5", pooling="mean", normalize=True, max_length=8
        )
