"""featx.spark and ``featx spark-embed`` on a real local Spark session (local[2])."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("pyspark")

from conftest import data_path, toy_questions  # noqa: E402

import featx  # noqa: E402
from featx.cli import main  # noqa: E402
from featx.errors import ModelLoadError  # noqa: E402

pytestmark = [
    pytest.mark.java,
    # pyspark's own notice about pandas 3 (featx's Spark path exchanges Arrow, not pandas).
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.skipif(
        shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
        reason="Spark needs Java 17+",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
DATA = data_path()
LONG = "the quick brown fox jumps over the lazy dog " * 80  # ~720 tokens: over 256 and 64
TEXTS = [
    "A man is playing a guitar.",
    None,
    "",
    "naïve café —東京 ünïcödé 1 2 3 🙂",
    LONG,
    "the movie was great and i love it",
    "the film was terrible and i hate it",
    " ",
]


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers import this featx
    session = (
        SparkSession.builder.master("local[2]")
        .appName("featx-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "768m")
        # Several Arrow batches per partition: a worker must reuse its model across them.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "3")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def frame(spark, texts=TEXTS):
    return spark.createDataFrame(list(enumerate(texts)), "id long, text string")


def library(artifact, texts, **options):
    """What featx gives for the non-empty texts, by position in ``texts``."""
    encoder = featx.load(artifact, **options)
    present = [i for i, t in enumerate(texts) if t]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", featx.TruncationWarning)
        vectors = encoder.encode([texts[i] for i in present])
    return dict(zip(present, vectors, strict=True))


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.real
def test_embed_equals_the_library_in_fp32(spark, real_artifact):
    from featx.spark import JobStats, embed

    stats = JobStats(spark)
    out = embed(frame(spark), "text", real_artifact, precision="fp32", stats=stats)
    assert out.schema["embedding"].dataType.simpleString() == "array<float>"
    assert out.columns == ["id", "text", "embedding"]
    rows = out.collect()
    assert [r.id for r in rows] == list(range(len(TEXTS)))  # order kept, no shuffle
    assert [r.text for r in rows] == TEXTS
    want = library(real_artifact, TEXTS, precision="fp32")
    for r in rows:
        if r.id in want:
            np.testing.assert_allclose(np.asarray(r.embedding), want[r.id], atol=1e-6)
        else:
            assert r.embedding is None, r.text  # null and "" give null
    counts = stats.to_dict()
    assert counts["texts"] == 6 and counts["nulls"] == 2 and counts["truncated"] == 1
    # Loaded once per Python worker (2 here), reused across its 3-row Arrow batches.
    assert 1 <= counts["loads"] <= 2 < counts["batches"]

    # A second job finds the model in the (reused) workers: no load at all.
    again = JobStats(spark)
    embed(frame(spark), "text", real_artifact, precision="fp32", stats=again).collect()
    assert again.to_dict()["loads"] == 0


@pytest.mark.real
def test_embed_int8_and_vectors(spark, real_artifact):
    from pyspark.ml.linalg import DenseVector

    from featx.spark import embed

    df = frame(spark).repartition(2)  # rows move: join back on the id
    rows = embed(df, "text", real_artifact, out_col="vec", vector=True).collect()
    assert len(rows) == len(TEXTS)
    # int8 quantises activations per forward batch, so vectors vary a little with the
    # texts batched together; the library default (int8) is matched by cosine. The fused
    # fast graph quantises the attention input too (QAttention): a text of special tokens
    # only (" ") moved to 0.9895 between batch mixes, so the bound is 0.985.
    want = library(real_artifact, TEXTS)
    for r in rows:
        if r.id in want:
            assert isinstance(r.vec, DenseVector) and len(r.vec) == 384
            assert cosine(r.vec.toArray(), want[r.id]) >= 0.985
        else:
            assert r.vec is None


@pytest.mark.real
def test_long_text_chunk_mean(spark, real_artifact):
    from featx.spark import JobStats, embed

    texts = [LONG, "short one"]
    stats = JobStats(spark)
    df = frame(spark, texts)
    out = embed(df, "text", real_artifact, precision="fp32", long_text="chunk_mean", stats=stats)
    got = {r.id: np.asarray(r.embedding) for r in out.collect()}
    want = library(real_artifact, texts, precision="fp32", long_text="chunk_mean")
    for i in want:
        np.testing.assert_allclose(got[i], want[i], atol=1e-6)
    assert stats.to_dict()["truncated"] == 0


def test_tiny_models_shipped_under_one_folder_name(spark, tiny_artifacts, tmp_path):
    """Every family; four artifacts all named "model" ship side by side; the executors
    read the shipped copy, so the driver's folder may go once the job is planned."""
    from featx.spark import embed

    texts = ["the cat eats food", None, "a dog is playing", LONG, ""]
    frames = {}
    want = {}
    for family, artifact in tiny_artifacts.items():
        copy = tmp_path / family / "model"
        shutil.copytree(artifact, copy)
        frames[family] = embed(frame(spark, texts), "text", copy, precision="fp32")
        want[family] = library(copy, texts, precision="fp32")
        shutil.rmtree(copy)
    for family, df in frames.items():
        got = {r.id: r.embedding for r in df.collect()}
        for i, text in enumerate(texts):
            if text:
                np.testing.assert_allclose(got[i], want[family][i], atol=1e-5, err_msg=family)
            else:
                assert got[i] is None


def test_unshipped_artifact_must_be_on_the_executors(spark, tiny_artifacts, tmp_path):
    from featx.spark import embed

    copy = tmp_path / "model"
    shutil.copytree(tiny_artifacts["bert"], copy)
    out = embed(frame(spark), "text", copy, ship=False)
    assert out.where("embedding is not null").count() == 6  # local mode: same path
    shutil.rmtree(copy)
    with pytest.raises(Exception, match="is not on this executor"):
        out.collect()


@pytest.fixture(scope="module")
def sentiment(real_artifact, tmp_path_factory):
    """A logistic-regression head on the real model (fp32 for exact comparisons)."""
    texts = [
        "the movie was great and i love it",
        "what a wonderful, moving film",
        "a delight from start to finish",
        "brilliant acting and a clever plot",
        "the film was terrible and i hate it",
        "a dull, boring waste of time",
        "awful script and wooden acting",
        "i walked out, it was that bad",
    ]
    labels = ["pos"] * 4 + ["neg"] * 4
    model = featx.train(texts, labels, model=str(real_artifact), precision="fp32", cache=False)
    return model.save(tmp_path_factory.mktemp("sentiment") / "model")


@pytest.mark.real
def test_predict_equals_the_predictor(spark, sentiment):
    from featx.predictor import Predictor
    from featx.spark import JobStats, predict

    stats = JobStats(spark)
    out = predict(frame(spark), "text", sentiment, stats=stats)
    schema = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    assert schema["label"] == "string" and schema["probability"] == "map<string,double>"
    rows = out.collect()
    model = Predictor.load(sentiment)
    present = [i for i, t in enumerate(TEXTS) if t and t.strip()]  # blank texts get null
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", featx.TruncationWarning)
        labels = model.predict([TEXTS[i] for i in present])
        proba = model.predict_proba([TEXTS[i] for i in present])
    by_id = {r.id: r for r in rows}
    for k, i in enumerate(present):
        assert by_id[i].label == labels[k]
        got = [by_id[i].probability[name] for name in model.labels]
        np.testing.assert_allclose(got, proba[k], atol=1e-6)
    for i in set(range(len(TEXTS))) - set(present):
        assert by_id[i].label is None and by_id[i].probability is None
    assert stats.to_dict()["truncated"] == 1

    no_proba = predict(frame(spark), "text", sentiment, label_col="y", proba_col=None)
    assert no_proba.columns == ["id", "text", "y"]


def test_predict_label_types(spark, tmp_path):
    """Numbers stay numbers; multi-label gives arrays; regression a score, no probabilities."""
    from featx.spark import predict

    texts = ["good film", "bad film", "great movie", "awful movie"] * 3
    hash_model = featx.HashEncoder(dim=32)
    cases = {
        "long": ([1, 0, 1, 0] * 3, "bigint", "logreg"),
        "multilabel": ([["a"], ["b"], ["a", "b"], []] * 3, "array<string>", "logreg"),
        "regression": ([1.0, 0.0, 0.9, 0.1] * 3, "double", "ridge"),
    }
    for name, (y, kind, head) in cases.items():
        model = featx.train(texts, y, model=hash_model, head=head, cache=False)
        path = model.save(tmp_path / name)
        out = predict(frame(spark, [*texts[:4], None]), "text", path)
        assert out.schema["label"].dataType.simpleString() == kind, name
        rows = sorted(out.collect(), key=lambda r: r.id)
        assert [r.label for r in rows[:4]] == model.predict(texts[:4]), name
        assert rows[4].label is None
        assert ("probability" in out.columns) == (name != "regression")


def test_predict_with_two_encoders(spark, tiny_artifacts, tmp_path):
    """A head over two models: the second encoder lives in a subfolder of the artifact."""
    from featx.predictor import Predictor
    from featx.spark import predict

    texts = ["the cat eats food", "a dog is playing", "the movie was great", "bad film"] * 2
    models = [str(tiny_artifacts["bert"]), str(tiny_artifacts["roberta"])]
    trained = featx.train(texts, [1, 0, 1, 0] * 2, model=models, precision="fp32", cache=False)
    path = trained.save(tmp_path / "two")
    assert any(
        name.startswith("encoders/")
        for name in json.loads((path / "featx.json").read_text())["files"]
    )
    out = predict(frame(spark, texts), "text", path).collect()
    proba = Predictor.load(path).predict_proba(texts)
    for r in out:
        np.testing.assert_allclose([r.probability["0"], r.probability["1"]], proba[r.id], atol=1e-6)


def test_answer_equals_the_answerer(spark, tiny_qa_artifact, tiny_artifacts):
    from featx.qa import Answerer
    from featx.spark import JobStats, answer

    questions = toy_questions(7)
    rows = [(i, q.question, q.context) for i, q in enumerate(questions)]
    rows += [(7, None, "a context"), (8, "a question?", ""), (9, " ", "the dog is red")]
    df = spark.createDataFrame(rows, "id long, question string, context string")
    stats = JobStats(spark)
    out = answer(df, "question", "context", tiny_qa_artifact, stats=stats)
    span = out.schema["answer"].dataType.simpleString()
    assert span == "struct<answer:string,score:double,start:bigint,end:bigint>"
    got = {r.id: r.answer for r in out.collect()}
    expected = Answerer.load(tiny_qa_artifact).answer_batch([(q, c) for _, q, c in rows[:7]])
    for i, span_ in enumerate(expected):  # Spark's batches pad differently: scores ~1e-6
        assert got[i].asDict() == pytest.approx(span_.to_dict(), abs=1e-5)
        assert questions[i].context[got[i].start : got[i].end] == got[i].answer
    assert got[7] is None and got[8] is None and got[9] is None
    assert stats.to_dict()["texts"] == 7 and stats.to_dict()["nulls"] == 3

    with pytest.raises(ValueError, match="No column 'ctx'"):
        answer(df, "question", "ctx", tiny_qa_artifact)
    with pytest.raises(ValueError, match="already has a column 'context'"):
        answer(df, "question", "context", tiny_qa_artifact, answer_col="context")
    with pytest.raises(ModelLoadError, match="not a question answerer"):
        answer(df, "question", "context", tiny_artifacts["bert"])


def test_errors_name_the_fix(spark, tiny_artifacts, tmp_path):
    from featx.spark import embed, predict

    df = frame(spark)
    with pytest.raises(ValueError, match=r"No column 'txt'.*'id', 'text'"):
        embed(df, "txt", tiny_artifacts["bert"])
    with pytest.raises(TypeError, match="'id' is bigint, not string"):
        embed(df, "id", tiny_artifacts["bert"])
    with pytest.raises(ValueError, match="already has a column 'text'"):
        embed(df, "text", tiny_artifacts["bert"], out_col="text")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        embed(df, "text", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a featx artifact"):
        embed(df, "text", tmp_path)
    with pytest.raises(ValueError, match="no fp16 graph"):
        embed(df, "text", tiny_artifacts["bert"], precision="fp16")
    with pytest.raises(ValueError, match="long_text"):
        embed(df, "text", tiny_artifacts["bert"], long_text="split")
    with pytest.raises(ModelLoadError, match="has no head.*featx train"):
        predict(df, "text", tiny_artifacts["bert"])


@pytest.mark.real
def test_cli_spark_embed_parquet_end_to_end(spark, real_artifact, tmp_path):
    source = tmp_path / "in.parquet"
    frame(spark).write.parquet(str(source))
    out = tmp_path / "out"
    args = ["spark-embed", str(source), str(out), "-m", str(real_artifact)]
    args += ["--master", "local[2]", "--precision", "fp32", "--partitions", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote 6 embeddings (2 null or empty texts, 1 truncated)" in result.output
    rows = spark.read.parquet(str(out)).collect()
    assert sorted(r.id for r in rows) == list(range(len(TEXTS)))
    want = library(real_artifact, TEXTS, precision="fp32")
    for r in rows:
        assert r.text == TEXTS[r.id]
        if r.id in want:
            np.testing.assert_allclose(r.embedding, want[r.id], atol=1e-6)
        else:
            assert r.embedding is None

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0


def test_cli_spark_embed_json_and_csv(spark, tiny_artifacts, tmp_path):
    texts = ["the cat eats food", "a dog, with a comma", None]
    records = [{"id": i, "body": t} for i, t in enumerate(texts)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "in.csv").write_text('id,body\n0,the cat eats food\n1,"a dog, with a comma"\n2,\n')
    want = library(tiny_artifacts["bert"], texts)
    for name in ("in.jsonl", "in.csv"):
        out = tmp_path / f"{name}.out"
        args = ["spark-embed", str(tmp_path / name), str(out), "--text-col", "body"]
        result = CliRunner().invoke(
            main, [*args, "--artifact", str(tiny_artifacts["bert"]), "--vector"]
        )
        assert result.exit_code == 0, result.output
        got = {int(r.id): r.embedding for r in spark.read.parquet(str(out)).collect()}
        for i in want:
            assert cosine(got[i].toArray(), want[i]) >= 0.99
        assert got[2] is None

    bad = CliRunner().invoke(main, ["spark-embed", "in.txt", "out", "--artifact", "x"])
    assert bad.exit_code == 1 and "--format" in bad.output
    missing = [str(tmp_path / "in.jsonl"), str(tmp_path / "o2"), "--artifact"]
    result = CliRunner().invoke(main, ["spark-embed", *missing, str(tiny_artifacts["bert"])])
    assert result.exit_code == 1 and "No column 'text'" in result.output


@pytest.mark.real
@pytest.mark.skipif(not (DATA / "sst2" / "train.tsv").is_file(), reason="no SST-2 data")
def test_bench_spark_smoke(real_artifact, tmp_path):
    out = tmp_path / "bench_spark.jsonl"
    args = ["--n", "200", "--artifact", str(real_artifact), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_spark.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["method"] for r in records] == ["library", "spark-cold", "spark-warm"]
    cold, warm = records[1], records[2]
    assert cold["texts"] == 200 and 1 <= cold["loads"] <= 2 and warm["loads"] == 0
    assert cold["min_cosine_vs_library"] >= 0.98 and cold["python_worker_peak_rss_mb"] > 50
    assert "| spark-warm |" in proc.stdout


def test_cli_runs_under_spark_submit(tiny_artifacts, tmp_path):
    """spark-submit picks the master; the command takes its session and ignores --master."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"id": [0, 1, 2], "text": ["a cat", None, "a dog"]}), tmp_path / "in.parquet"
    )
    launcher = tmp_path / "featx_submit.py"
    launcher.write_text("from featx.cli import main\n\nmain()\n")
    submit = Path(sys.executable).parent / "spark-submit"
    args = [str(submit), "--master", "local[1]", "--conf", "spark.ui.enabled=false"]
    args += ["--driver-memory", "512m", str(launcher), "spark-embed", str(tmp_path / "in.parquet")]
    args += [str(tmp_path / "out"), "--artifact", str(tiny_artifacts["bert"])]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    proc = subprocess.run(
        [*args, "--master", "local[2]"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    said = proc.stdout + proc.stderr  # spark-submit passes the driver's stderr to stdout
    assert "--master local[2] ignored" in said
    assert "wrote 2 embeddings (1 null or empty texts, 0 truncated)" in said
    assert "pandas" not in said
    table = pq.read_table(tmp_path / "out").to_pydict()
    assert sorted(table["id"]) == [0, 1, 2]
    assert sum(v is None for v in table["embedding"]) == 1
