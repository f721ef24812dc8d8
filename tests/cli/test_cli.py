import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import featx
from featx.cli import main

TEXTS = ["a man is playing a guitar", "the movie was great", "dog"]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def tiny(tiny_artifacts):
    return tiny_artifacts["bert"]


@pytest.fixture(scope="module")
def expected(tiny):
    return featx.load(tiny).encode(TEXTS)


def test_models_lists_the_registry(runner):
    result = runner.invoke(main, ["models"])
    assert result.exit_code == 0
    assert "* minilm" in result.output and "gpt2" in result.output
    as_json = json.loads(runner.invoke(main, ["models", "--json"]).output)
    assert as_json["minilm"]["default"] is True


def test_export_then_info(runner, tiny_model_dirs, tmp_path):
    out = tmp_path / "art"
    probes = tmp_path / "probes.txt"
    probes.write_text("a custom probe\nanother one\n")
    result = runner.invoke(
        main, ["export", str(tiny_model_dirs["distilbert"]), str(out), "--probe-file", str(probes)]
    )
    assert result.exit_code == 0, result.output
    assert "default precision:" in result.output and "fp32: min cosine" in result.output
    info = runner.invoke(main, ["info", str(out)])
    assert info.exit_code == 0, info.output
    assert "family:     distilbert" in info.output and "6 files verified" in info.output
    assert "fast path:  fp32, int8" in info.output
    details = json.loads(runner.invoke(main, ["info", str(out), "--json"]).output)
    assert details["parity"]["n_user_probe_texts"] == 2
    again = runner.invoke(main, ["export", str(tiny_model_dirs["distilbert"]), str(out)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_info_refuses_an_altered_artifact(runner, tiny, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    data = bytearray((copy / "parity.json").read_bytes())
    data[5] ^= 1
    (copy / "parity.json").write_bytes(bytes(data))
    result = runner.invoke(main, ["info", str(copy)])
    assert result.exit_code == 1 and "Checksum mismatch" in result.output


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "csv", "tsv", "parquet"])
def test_embed_reads_every_input_format(runner, tiny, expected, tmp_path, fmt):
    src = tmp_path / f"in.{fmt}"
    if fmt == "txt":
        src.write_text("\n".join(TEXTS) + "\n")
    elif fmt == "jsonl":
        src.write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(TEXTS)))
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        src.write_text(f"id{sep}body\n" + "".join(f"{i}{sep}{t}\n" for i, t in enumerate(TEXTS)))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"body": TEXTS}), src)
    out = tmp_path / "out.npy"
    args = ["embed", str(src), "-m", str(tiny), "-o", str(out)]
    if fmt != "txt":
        args += ["--column", "body"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)


def test_embed_writes_every_output_format(runner, tiny, expected, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS))
    for suffix in ("npy", "parquet", "jsonl"):
        out = tmp_path / f"out.{suffix}"
        result = runner.invoke(main, ["embed", str(src), "-m", str(tiny), "-o", str(out)])
        assert result.exit_code == 0, result.output
        if suffix == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(out)
            got = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
            assert table.column("n_tokens").to_pylist()[2] == 3
        elif suffix == "jsonl":
            rows = [json.loads(line) for line in out.read_text().splitlines()]
            got = np.array([r["embedding"] for r in rows], dtype=np.float32)
            assert [r["index"] for r in rows] == [0, 1, 2] and rows[0]["truncated"] is False
        else:
            got = np.load(out)
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_embed_reads_stdin_and_writes_jsonl_to_stdout(runner, tiny, expected):
    result = runner.invoke(main, ["embed", "-m", str(tiny)], input="\n".join(TEXTS) + "\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    np.testing.assert_allclose([r["embedding"] for r in rows], expected, atol=1e-6)


def test_embed_options_reach_the_encoder(runner, tiny, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS))
    out = tmp_path / "out.npy"
    args = [
        "embed",
        str(src),
        "-m",
        str(tiny),
        "-o",
        str(out),
        "--pooling",
        "max",
        "--no-normalize",
        "--layers",
        "-2,-1",
        "--combine",
        "concat",
        "--precision",
        "fp32",
        "--threads",
        "1",
    ]
    assert runner.invoke(main, args).exit_code == 0
    direct = featx.load(tiny, precision="fp32").encode(
        TEXTS, pooling="max", normalize=False, layers=(-2, -1), combine="concat"
    )
    np.testing.assert_allclose(np.load(out), direct, atol=1e-6)


def test_embed_warns_about_truncation_on_stderr(runner, tiny, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("dog\n" + "the quick brown fox " * 40 + "\n")
    result = runner.invoke(
        main, ["embed", str(src), "-m", str(tiny), "-o", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 0
    assert "1 of 2 texts were longer than max_length=64" in result.stderr
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["truncated"] for r in rows] == [False, True]


def test_embed_refuses_to_overwrite_without_force(runner, tiny, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("dog\n")
    out = tmp_path / "out.npy"
    out.write_bytes(b"precious")
    result = runner.invoke(main, ["embed", str(src), "-m", str(tiny), "-o", str(out)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert out.read_bytes() == b"precious"
    assert (
        runner.invoke(
            main, ["embed", str(src), "-m", str(tiny), "-o", str(out), "--force"]
        ).exit_code
        == 0
    )
    assert np.load(out).shape == (1, 32)


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('{"text": "ok"}\n{broken\n', ["--format", "jsonl"], "line 2: not valid JSON"),
        ('{"text": "ok"}\n{"text": 3}\n', ["--format", "jsonl"], "line 2: 'text' is int"),
        ("a,b\n1,2\n", ["--format", "csv"], "has no column 'text'"),
        ("dog\n", ["--layers", "x"], "not a comma-separated list"),
        ("dog\n", ["--pooling", "avg"], "Unknown pooling 'avg'"),
    ],
)
def test_embed_bad_input_is_explained(runner, tiny, tmp_path, content, args, message):
    src = tmp_path / "in.data"
    src.write_text(content)
    result = runner.invoke(
        main, ["embed", str(src), "-m", str(tiny), "-o", str(tmp_path / "o.npy"), *args]
    )
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert not (tmp_path / "o.npy").exists()  # no partial output


def test_embed_unknown_model_and_output_suffix(runner, tmp_path):
    result = runner.invoke(main, ["embed", "-m", "nosuchalias"], input="dog\n")
    assert result.exit_code == 1 and "Unknown model alias 'nosuchalias'" in result.output
    result = runner.invoke(main, ["embed", "-o", str(tmp_path / "x.csv")], input="dog\n")
    assert result.exit_code == 1 and "Cannot tell the output format" in result.output


@pytest.mark.real
def test_featx_embed_default_model_runs_without_torch(real_artifact):
    # A fresh process, as a user runs it: no model given -> the default (cached) artifact.
    code = (
        "import sys\n"
        "from featx.cli import main\n"
        "try:\n"
        "    main(['embed'], standalone_mode=False)\n"
        "finally:\n"
        "    assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    env = {**os.environ, "FEATX_CACHE_DIR": str(real_artifact.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input="A man is playing a guitar.\n",
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    row = json.loads(done.stdout)
    assert len(row["embedding"]) == 384 and row["n_tokens"] == 9
    assert done.stderr == ""  # reused the cache: no export message
