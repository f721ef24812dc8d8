"""Smoke test: the benchmark scripts run end to end on a tiny N and write their records.

Speed is not asserted here (benchmarks measure it on an idle machine); this only keeps
the scripts working.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _bench_common() -> ModuleType:
    """benchmarks/common.py, loaded once by path (the scripts import it as ``common``)."""
    name = "featx_bench_common"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH / "common.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


# Where the scripts read their data by default ($FEATX_DATA_DIR, else ../shared/data).
DATA = _bench_common().default_data_dir()
METHODS = ["featx-fp32", "featx-int8", "st-torch"]
# bench_encode also times featx without its fast graph, the hand-tuned raw ORT session and
# sentence-transformers with bf16 weights.
ENCODE_METHODS = [*METHODS, "featx-int8-full", "raw-ort-int8", "st-torch-bf16"]

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        not (DATA / "sst2" / "train.tsv").is_file() or not (DATA / "stsb" / "test.tsv").is_file(),
        reason=f"benchmark data not found in {DATA}",
    ),
]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_bench_encode_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_encode.jsonl"
    proc = _run(
        "bench_encode.py",
        "--artifact", str(real_artifact),
        "--st-onnx-dir", str(tmp_path / "st-onnx"),
        "--methods", *ENCODE_METHODS,
        "--n-short", "16",
        "--n-mixed", "8",
        "--repeats", "1",
        "--single", "3",
        "--cold-repeats", "1",
        "--out", str(out),
    )  # fmt: skip
    records = _records(out)
    assert {r["status"] for r in records} == {"ok"}
    by = {(r["method"], r["workload"]): r for r in records}
    gemm = by.pop(("gemm-peak", "gemm"))
    assert gemm["int8_gop_s"] > 0 and gemm["fp32_gop_s"] > 0
    assert {t["kernel"] for t in gemm["tried"]} == {"onnxruntime", "torch"}
    records = [r for r in records if r["method"] != "gemm-peak"]
    assert set(by) == {(m, w) for m in ENCODE_METHODS for w in ("short", "mixed", "single", "cold")}
    for r in records:
        assert r["bench"] == "encode"
        assert r["machine"]["threads"] == 2
        assert r["machine"]["featx_version"]
        assert r["machine"]["onnxruntime_version"]
        assert r["ratio_vs_st_torch"] > 0
        assert len({x["run_id"] for x in records}) == 1
    for m in ENCODE_METHODS:
        for w, n in (("short", 16), ("mixed", 8)):
            r = by[(m, w)]
            assert r["n_texts"] == n
            assert r["texts_per_s"] > 0 and r["tokens_per_s"] > 0
            assert len(r["times_s"]) == 1
            assert 0.9 < r["cosine_min"] <= r["cosine_mean"] <= 1 + 1e-6
            # Texts/s over the bound the int8 peak puts on these texts' operations.
            bound = gemm["int8_gop_s"] * 1e9 / r["ops_per_text"]
            assert r["share_of_int8_bound"] == pytest.approx(r["texts_per_s"] / bound)
        single = by[(m, "single")]
        assert single["n_calls"] == 3
        assert 0 < single["latency_ms_p50"] <= single["latency_ms_p95"]
        cold = by[(m, "cold")]
        assert cold["cold_start_s"] > 0 and cold["peak_rss_mb"] > 0
        assert cold["rss_n_texts"] == 16
    assert by[("featx-fp32", "short")]["cosine_min"] > 0.99
    assert by[("st-torch", "short")]["ratio_vs_st_torch"] == 1.0
    assert "| featx-int8 |" in proc.stdout
    assert not (tmp_path / "st-onnx").exists()  # only made for the st-onnx methods


def test_bench_quality_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_quality.jsonl"
    proc = _run(
        "bench_quality.py",
        "--artifact", str(real_artifact),
        "--methods", *METHODS,
        "--n-pairs", "24",
        "--out", str(out),
    )  # fmt: skip
    records = _records(out)
    assert [r["method"] for r in records] == METHODS
    for r in records:
        assert r["status"] == "ok" and r["task"] == "stsb-test" and r["n_pairs"] == 24
        assert math.isfinite(r["spearman_x100"]) and -100 <= r["spearman_x100"] <= 100
        assert r["reference_x100"] == 82.03
        assert r["machine"]["git_sha"] is None or len(r["machine"]["git_sha"]) == 40
    by = {r["method"]: r["spearman_x100"] for r in records}
    assert abs(by["featx-fp32"] - by["st-torch"]) < 0.5
    assert "| featx-fp32 |" in proc.stdout


def test_bench_cli_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_cli.jsonl"
    proc = _run(
        "bench_cli.py",
        "--artifact",
        str(real_artifact),
        "--repeats",
        "1",
        "--n-texts",
        "20",
        "--out",
        str(out),
    )
    assert "start to exit" in proc.stdout
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["torch_imported"] is False  # the inference path never imports torch
    assert record["one_sentence_wall_s_median"] > 0 and record["n_texts_peak_rss_mb"] > 0
    assert record["n_texts"] == 20 and record["featx_version"]


def test_bench_int8_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_int8.jsonl"
    proc = _run(
        "bench_int8.py",
        "--artifact",
        str(real_artifact),
        "--n-short",
        "16",
        "--n-mixed",
        "8",
        "--repeats",
        "1",
        "--out",
        str(out),
    )
    assert "smoothed a=0.6" in proc.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 6 and records[0]["variant"] == "fp32 (reference)"
    assert records[0]["cos_min_short"] > 0.9999  # the reference against itself
    assert all(r["texts_per_s_short"] > 0 and 0.5 < r["cos_mean_mixed"] <= 1.0001 for r in records)


def test_bench_recipe_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_recipe.jsonl"
    proc = _run(
        "bench_recipe.py", "--artifact", str(real_artifact), "--sets", "sst2", "--limit", "100",
        "--out", str(out),
    )  # fmt: skip
    records = _records(out)
    configs = [r["config"] for r in records]
    assert configs == [
        "featx train (auto recipe)",
        "featx train --recipe fast",
        "TF-IDF + logistic regression (C by CV)",
    ]
    auto = records[0]
    assert auto["recipe"]["name"] == "auto" and auto["recipe"]["chosen"] in (
        "embedding", "all-layers", "tfidf", "vote"
    )  # fmt: skip
    assert all(0 < r["test_accuracy"] <= 100 and r["seconds"] > 0 for r in records)
    assert "the fast recipe's time" in proc.stdout


def test_bench_sklearn_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_sklearn.jsonl"
    proc = _run(
        "bench_sklearn.py", "--artifact", str(real_artifact), "--limit", "80", "--out", str(out)
    )
    records = _records(out)
    configs = {(r["part"], r["config"]) for r in records}
    assert ("sst2", "featx-int8 logreg") in configs and ("stsb", "cosine (no training)") in configs
    assert any(part == "sst2" and config.startswith("st-torch") for part, config in configs)
    for r in records:
        for key in ("test_accuracy", "dev_accuracy", "test_spearman_x100"):
            assert r.get(key) is None or -100 <= r[key] <= 100
    (grid,) = [r for r in records if r["part"] == "grid"]
    assert grid["ratio"] > 0 and grid["cache_rows"] == grid["n_distinct"]
    (chosen,) = [r for r in records if r["config"] == "chosen by dev accuracy"]
    assert chosen["chosen"] in configs_of(records, "best")
    assert "| grid |" in proc.stdout


def configs_of(records: list[dict], part: str) -> set[str]:
    return {r["config"] for r in records if r["part"] == part}


def test_bench_server_smoke(real_artifact: Path, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("gunicorn")
    out = tmp_path / "bench_server.jsonl"
    proc = _run(
        "bench_server.py",
        "--artifact", str(real_artifact),
        "--start-repeats", "1",
        "--n-batches", "4",
        "--repeats", "1",
        "--warmup", "2",
        "--requests-per-client", "5",
        "--single", "20",
        "--soak-seconds", "5",
        "--soak-texts", "200",
        "--stop-timeout", "5",
        "--out", str(out),
    )  # fmt: skip
    records = _records(out)
    assert len({r["run_id"] for r in records}) == 1
    by = {(r["part"], r["config"]): r for r in records}
    assert set(by) == {
        ("ready", "batching"),
        ("embed64", "batching"),
        ("concurrent", "batching"),
        ("concurrent", "no-batching"),
        ("single", "batching"),
        ("single", "no-batching"),
        ("soak", "batching"),
    }
    for r in records:
        assert r["bench"] == "server" and r["machine"]["featx_version"]
        assert r["artifact_default_precision"] == "int8"
    ready = by[("ready", "batching")]
    assert 0 < ready["ready_s_median"] <= ready["first_embedding_s_median"]
    assert ready["rss_idle_mb_median"] > 0 and len(ready["stop_s_all"]) == 1
    embed64 = by[("embed64", "batching")]
    assert embed64["n_requests"] == 4 and embed64["texts_per_request"] == 64
    assert embed64["server_texts_per_s"] > 0 and embed64["library_texts_per_s"] > 0
    assert embed64["ratio"] > 0 and embed64["cosine_min"] >= 0.999
    for config in ("batching", "no-batching"):
        conc = by[("concurrent", config)]
        assert conc["n_requests"] == 16 * 5 and conc["requests_per_s"] > 0
        assert 0 < conc["latency_ms_p50"] <= conc["latency_ms_p99"]
        assert conc["cosine_min_vs_alone"] > 0.98
        single = by[("single", config)]
        assert single["n_requests"] == 20
        assert 0 < single["latency_ms_p50"] <= single["latency_ms_p95"]
    assert by[("concurrent", "batching")]["ratio_vs_no_batching"] > 0
    assert by[("concurrent", "batching")]["texts_per_encoder_run"] >= 1
    soak = by[("soak", "batching")]
    assert soak["n_texts"] >= 200 and soak["seconds"] >= 5 and soak["texts_per_s"] > 0
    assert soak["rss_max_mb"] > 0 and len(soak["rss_samples"]) >= 3
    assert all(s["rss_workers_mb"] > 0 and s["worker_processes"] >= 1 for s in soak["rss_samples"])
    assert "| soak |" in proc.stdout and "| embed64 |" in proc.stdout
    # Every server the benchmark started is gone.
    leftovers = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = p.info["cmdline"] or []
        if "serve" in cmdline and any(str(real_artifact) in arg for arg in cmdline):
            leftovers.append(p.pid)
    assert not leftovers


def test_bench_finetune_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_finetune.jsonl"
    args = ["--artifact", str(real_artifact), "--limit", "120", "--layers", "0", "1"]
    args += ["--sizes", "16", "--draws", "1", "--work", str(tmp_path / "work"), "--out", str(out)]
    proc = _run("bench_finetune.py", *args, "--parts", "layers", "lowdata", "serve")
    records = _records(out)
    layers = [r for r in records if r["part"] == "layers"]
    assert [r["config"] for r in layers] == ["train_layers=0", "train_layers=1"]
    for r in layers:
        assert 0 <= r["test_accuracy"] <= 100 and r["train_seconds"] > 0
        assert 0 <= r["int8_torch_agreement"] <= 100 and r["fp32_torch_agreement"] >= 99
    assert len([r for r in records if r["part"] == "lowdata"]) == 4
    (serve,) = [r for r in records if r["part"] == "serve"]
    assert serve["equal_to_library"] == 100.0
    assert "| layers |" in proc.stdout


def test_bench_ner_smoke(real_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench_ner.jsonl"
    args = ["--artifact", str(real_artifact), "--limit", "80", "--c2", "10", "30"]
    args += ["--max-iter", "30", "--train-layers", "1", "--epochs", "1"]
    args += ["--work", str(tmp_path / "work"), "--out", str(out)]
    proc = _run("bench_ner.py", *args)
    records = _records(out)
    assert [r["config"] for r in records] == [
        "frozen-crf",
        "frozen-linear",
        "finetuned-1",
        "onnx-fp32",
        "onnx-int8",
    ]
    for r in records[:3]:
        assert 0 <= r["test_f1"] <= 100 and r["wall_seconds"] > 0
        assert set(r["test"]["per_type_f1"]) <= {"LOC", "MISC", "ORG", "PER"}
    assert [s["c2"] for s in records[0]["search"]] == [10.0, 30.0]
    assert records[3]["min_cosine"] >= 0.999 and records[3]["n_words"] > 0
    assert "| frozen |" in proc.stdout


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    common = _bench_common()
    monkeypatch.delenv("FEATX_DATA_DIR", raising=False)
    assert common.default_data_dir() == ROOT.parent / "shared" / "data"
    monkeypatch.setenv("FEATX_DATA_DIR", str(tmp_path))
    assert common.default_data_dir() == tmp_path


def test_run_parts_appends_the_records_of_a_failed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    common = _bench_common()
    args = argparse.Namespace(parts=["one", "boom", "never"], out=tmp_path / "out.jsonl")
    run = common.Run(args, {"bench": "test"})

    def boom(run: object) -> None:
        raise RuntimeError("boom")

    parts = {"one": lambda r: r.record(part="one", value=1.0), "boom": boom, "never": boom}
    with pytest.raises(RuntimeError, match="boom"):
        common.run_parts(parts, args, run, lambda records: f"table of {len(records)}")
    assert _records(args.out) == [{"bench": "test", "part": "one", "value": 1.0}]
    said = capsys.readouterr()
    assert "table of 1" in said.out
    assert "[one]" in said.err and "[never]" not in said.err
    assert f"1 records appended to {args.out}" in said.err


def test_ops_per_text_counts_projections_ffn_and_attention() -> None:
    spec = importlib.util.spec_from_file_location("featx_bench_gemm", BENCH / "gemm_peak.py")
    assert spec is not None and spec.loader is not None
    gemm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gemm)
    shape = {"hidden": 4, "ffn": 8, "layers": 2}
    # Per layer: 2 x (4 x 4^2 + 2 x 4 x 8) x 10 tokens dense + 4 x 4 x 10^2 attention.
    assert gemm.ops_per_text([10], shape) == (2 * (64 + 64) * 10 + 4 * 4 * 100) * 2
    assert gemm.ops_per_text([10, 20], shape) == pytest.approx(
        (gemm.ops_per_text([10], shape) + gemm.ops_per_text([20], shape)) / 2
    )


def test_bench_traffic_smoke(real_artifact: Path, tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    out = tmp_path / "bench_traffic.jsonl"
    proc = _run(
        "bench_traffic.py",
        "--artifact", str(real_artifact),
        "--requests-per-client", "5",
        "--repeats", "1",
        "--flood-seconds", "2",
        "--stall-seconds", "1",
        "--read-timeout", "2",
        "--soak-seconds", "4",
        "--out", str(out),
    )  # fmt: skip
    by = {r["part"]: r for r in _records(out)}
    assert set(by) == {"stages", "engine", "flood", "stall", "kill", "soak"}
    stages = by["stages"]["core_ms_per_request"]
    assert set(stages) == {"model", "flask_floor", "flask_embed_view", "batcher_handoff"}
    assert stages["model"] > 0 and stages["flask_floor"] > 0
    engine = by["engine"]
    assert engine["requests_per_s"] > 0 and 0 < engine["latency_ms_p50"] <= engine["latency_ms_p99"]
    assert engine["library_texts_per_s_batched"] > 0 and engine["share_of_library_batched"] > 0
    assert set(engine["stage_ms_per_request"]) == {"queue", "tokenize", "inference"}
    assert "http_server_and_contention_core_ms" in engine
    flood = by["flood"]  # these bars hold at any speed: they are about what is answered
    assert set(flood["statuses"]) <= {"200", "429"} and flood["without_retry_after"] == 0
    stall = by["stall"]
    assert stall["closed"] == 64 and stall["closed_after_s_max"] >= 2
    assert by["kill"]["resumed_s"] < 30
    soak = by["soak"]
    assert soak["valid_errors"] == 0 and soak["server_5xx"] == 0
    assert soak["counts"]["valid_ok"] > 0 and soak["counts"]["bad_422"] > 0
    assert "| flood |" in proc.stdout


def test_bench_qa_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench_qa.jsonl"
    proc = _run(
        "bench_qa.py", "--train-limit", "48", "--dev-limit", "24", "--gate-dev", "12",
        "--speed-questions", "12", "--out", str(out),
    )  # fmt: skip
    records = _records(out)
    assert [r["config"] for r in records] == [
        "train_layers=all",
        "transformers AutoModelForQuestionAnswering (torch fp32)",
        "featx fp32",
        "featx int8",
    ]
    tuned = records[0]
    assert 0 <= tuned["f1"] <= 100 and tuned["train_seconds"] > 0
    assert tuned["windows"]["questions"] == 48 and tuned["dev_gate"]["checked"]
    assert [e["epoch"] for e in tuned["gate_dev_curve"]][0] == 1.0  # scored each epoch
    featx_fp32 = records[2]
    assert featx_fp32["same_answer"] >= 75 and featx_fp32["ratio_vs_torch"] > 0
    bound = records[1]["fp32_bound"]  # the arithmetic of the 12 questions' windows
    assert bound["windows_per_question"] >= 1 and bound["fp32_gop_s"] > 0
    share, expected = featx_fp32["share_of_fp32_bound"], featx_fp32["questions_per_s"]
    assert share > 0 and share == pytest.approx(expected / bound["questions_per_s"], rel=0.01)
    assert "| speed | featx int8 |" in proc.stdout
