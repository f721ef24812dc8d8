"""featx on Apache Spark (local mode) against the single-process library, same machine.

Measures, on N synthetic texts (SST-2 sentences of 8-24 words, ``common.short_workload``;
``--workload mixed`` for 5-300 words):

- ``library``: ``featx.load(artifact, threads=2).encode(texts)`` in this process: texts/s.
- ``spark-cold`` / ``spark-warm``: ``featx.spark.embed`` on ``local[2]`` (2 tasks x 1 ONNX
  Runtime thread each, ``spark.task.cpus=1``), end to end: the input, repartitioned into
  ``--partitions`` and cached in memory beforehand, is embedded and written to Parquet
  (a real action, not ``count()``). The cold run ships the artifact and its Python
  workers load it; the warm run repeats the job on the same (reused) workers. Recorded:
  texts/s, the ratio to the library (the aim is >= 0.8), artifact loads and seconds per
  load against the job's wall time, peak RSS of the Python workers and of the JVM
  (psutil, sampled every 0.2 s), partitions, Arrow batch size. A sample of the Spark
  vectors is checked against the library's (cosine) after each run.

Appends one JSON line per configuration to ``benchmarks/results/bench_spark.jsonl`` and
prints a Markdown table.

    python benchmarks/bench_spark.py                 # 100,000 texts
    python benchmarks/bench_spark.py --n 2000
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

ROWS_PER_PARTITION = 50_000
CHECK_ROWS = 500  # rows whose Spark vectors are compared with the library's


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--n", type=int, default=100_000, help="texts")
    parser.add_argument("--workload", choices=["short", "mixed"], default="short")
    parser.add_argument("--threads", type=int, default=2, help="library threads = Spark cores")
    parser.add_argument(
        "--partitions",
        type=int,
        default=0,
        help=f"Spark partitions (default: max(cores, n / {ROWS_PER_PARTITION:,}))",
    )
    parser.add_argument("--precision", choices=["fp32", "int8"], help="default: the artifact's")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--driver-memory", default="1g")
    common.add_out_arg(parser, "bench_spark")
    args = parser.parse_args(argv)
    if args.n < 1 or args.threads < 1 or args.partitions < 0:
        parser.error("--n and --threads must be >= 1, --partitions >= 0")
    args.partitions = args.partitions or max(args.threads, math.ceil(args.n / ROWS_PER_PARTITION))
    return args


class RssSampler:
    """Peak RSS of this process's Spark children: the JVM and the Python workers."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self.me = psutil.Process()
        self.interval = interval
        self.worker_peak: dict[int, int] = {}
        self.jvm_peak = 0
        self.workers_sum_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in self.me.children(recursive=True):
                try:
                    cmd = " ".join(proc.cmdline())
                    rss = proc.memory_info().rss
                    parent = proc.parent()
                    parent_cmd = " ".join(parent.cmdline()) if parent else ""
                except psutil.Error:
                    continue
                if "java" in cmd.split(" ")[0]:
                    self.jvm_peak = max(self.jvm_peak, rss)
                elif "pyspark.daemon" in cmd and "pyspark.daemon" in parent_cmd:
                    # A worker: forked by the daemon (the daemon itself only forks).
                    self.worker_peak[proc.pid] = max(self.worker_peak.get(proc.pid, 0), rss)
                    total += rss
            self.workers_sum_peak = max(self.workers_sum_peak, total)
            self._stop.wait(self.interval)

    def record(self) -> dict[str, Any]:
        mb = 1024 * 1024
        return {
            "python_workers_seen": len(self.worker_peak),
            "python_worker_peak_rss_mb": max(self.worker_peak.values(), default=0) / mb,
            "python_workers_peak_rss_sum_mb": self.workers_sum_peak / mb,
            "jvm_peak_rss_mb": self.jvm_peak / mb,
        }


def make_session(args: argparse.Namespace) -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(f"local[{args.threads}]")
        .appName("featx bench_spark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(args.partitions))
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.task.cpus", "1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def library_run(args: argparse.Namespace, texts: list[str]) -> tuple[dict[str, Any], Any]:
    import featx

    encoder = featx.load(
        args.artifact, precision=args.precision, threads=args.threads, batch_size=args.batch_size
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", featx.TruncationWarning)
        encoder.encode(texts[:64])  # warm-up
        elapsed, vectors = common.time_ns(lambda: encoder.encode(texts, show_progress=False))
    seconds = elapsed / 1e9
    record = {
        "method": "library",
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "onnx_threads": args.threads,
        "precision": encoder.precision,
    }
    return record, vectors


def spark_run(
    args: argparse.Namespace, spark: Any, df: Any, name: str, out_dir: Path, reference: Any
) -> dict[str, Any]:
    from featx.spark import JobStats, embed

    stats = JobStats(spark)
    started = time.perf_counter()
    out = embed(
        df, "text", args.artifact, precision=args.precision, batch_size=args.batch_size, stats=stats
    )
    plan_s = time.perf_counter() - started  # checks + shipping the artifact (first call)
    target = out_dir / name
    with RssSampler() as rss:
        elapsed, _ = common.time_ns(lambda: out.write.mode("overwrite").parquet(str(target)))
    seconds = elapsed / 1e9
    counters = stats.to_dict()
    loads = int(counters["loads"])
    check = (
        spark.read.parquet(str(target)).where(f"id < {CHECK_ROWS}").select("id", "embedding")
    ).collect()
    ids = np.array([r.id for r in check])
    vectors = np.array([r.embedding for r in check], dtype=np.float32)
    cos = common.cosines(vectors, reference[ids])
    return {
        "method": name,
        "precision": args.precision,
        "seconds": seconds,
        "embed_call_seconds": plan_s,
        "texts_per_s": counters["texts"] / seconds,
        "texts": int(counters["texts"]),
        "arrow_batches": int(counters["batches"]),
        "loads": loads,
        "load_seconds_per_load": counters["load_seconds"] / loads if loads else None,
        "load_seconds_total": counters["load_seconds"],
        "worker_busy_seconds": counters["run_seconds"],
        "load_share_of_job": counters["load_seconds"] / (seconds * args.threads),
        "min_cosine_vs_library": float(cos.min()),
        "mean_cosine_vs_library": float(cos.mean()),
        **rss.record(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.artifact, _ = common.ensure_artifact(args.artifact.resolve())
    common.warn_if_busy(args.threads)
    sentences = common.sst2_sentences(args.data)
    build = common.short_workload if args.workload == "short" else common.mixed_workload
    texts = build(sentences, args.n)
    settings = {
        "n": args.n,
        "workload": args.workload,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "precision": args.precision,
    }
    base = common.base_record(
        "spark", threads=args.threads, settings=settings, artifact=args.artifact
    )
    records = []
    print(f"library: {args.n} texts on {args.threads} threads ...", file=sys.stderr)
    lib, reference = library_run(args, texts)
    records.append({**base, **lib})
    args.precision = lib["precision"]  # the same graph on Spark

    import pyspark

    work = Path(tempfile.mkdtemp(prefix="featx-bench-spark-"))
    try:
        session_s, spark = common.time_ns(lambda: make_session(args))
        spark_settings = {
            "pyspark_version": pyspark.__version__,
            "master": spark.sparkContext.master,
            "partitions": args.partitions,
            "task_cpus": 1,
            "onnx_threads_per_task": 1,
            "arrow_batch_rows": int(
                spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
            ),
            "session_start_seconds": session_s / 1e9,
            "action": "write parquet (input repartitioned and cached first)",
        }
        df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id long, text string")
        df = df.repartition(args.partitions).cache()
        df.count()
        for name in ("spark-cold", "spark-warm"):
            print(f"{name}: {args.n} texts, {args.partitions} partitions ...", file=sys.stderr)
            rec = spark_run(args, spark, df, name, work, reference)
            rec["ratio_to_library"] = rec["texts_per_s"] / lib["texts_per_s"]
            records.append({**base, **spark_settings, **rec})
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    common.finish(args.out, records, render)
    return 0


TABLE = [
    "method",
    "texts/s",
    "vs library",
    "seconds",
    "partitions",
    "loads",
    "s/load",
    "worker peak RSS MB",
    "JVM peak RSS MB",
    "min cos",
]


def render(records: list[dict[str, Any]]) -> str:
    """A Markdown table of one run."""
    return common.records_table(TABLE, records, table_row)


def table_row(r: dict[str, Any]) -> list[Any]:
    return [
        r["method"],
        common.fmt(r["texts_per_s"], ".0f"),
        common.fmt(r.get("ratio_to_library"), ".2f"),
        common.fmt(r["seconds"], ".1f"),
        r.get("partitions", "-"),
        r.get("loads", "-"),
        common.fmt(r.get("load_seconds_per_load"), ".2f"),
        common.fmt(r.get("python_worker_peak_rss_mb"), ".0f"),
        common.fmt(r.get("jvm_peak_rss_mb"), ".0f"),
        common.fmt(r.get("min_cosine_vs_library"), ".4f"),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
