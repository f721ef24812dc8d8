"""featx's exporters side by side: export time, parity, speed of the graphs they make.

Exports the default model with each exporter into a fresh directory (fp32 + int8, the
same gate), then embeds the same short SST-2 texts with every graph, interleaved, median
of ``--repeats``. ``optimum`` needs the ``optimum`` extra (transformers 4.x), so run this
in that environment (``make test-optimum`` builds it as ``.venv-optimum``):

    .venv-optimum/bin/python benchmarks/bench_exporters.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_MODEL,
    add_data_args,
    add_out_arg,
    base_record,
    cosines,
    finish,
    fmt,
    median,
    records_table,
    short_workload,
    sst2_sentences,
)

import featx
from featx.extras import available

EXPORTERS = ("torch", "optimum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser)
    add_out_arg(parser, "bench_exporters")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    texts = short_workload(sst2_sentences(args.data), args.texts)
    exporters = [e for e in EXPORTERS if e != "optimum" or available("optimum")]
    shared = base_record(
        "bench_exporters",
        threads=args.threads,
        settings={"n_texts": len(texts), "repeats": args.repeats, "workload": "short"},
    )
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="featx-exporters-") as tmp:
        encoders = {}
        export_s: dict[str, list[float]] = {e: [] for e in exporters}
        # Each exporter twice, in mirrored order, so neither pays alone for the first
        # imports and model loads; the faster of its two runs is recorded.
        for i, exporter in enumerate([*exporters, *reversed(exporters)]):
            start = time.perf_counter()
            result = featx.export(DEFAULT_MODEL, Path(tmp) / f"{exporter}-{i}", exporter=exporter)
            export_s[exporter].append(time.perf_counter() - start)
            if len(export_s[exporter]) == 1:
                continue
            for precision in ("fp32", "int8"):
                encoders[(exporter, precision)] = featx.load(
                    result.path, precision=precision, threads=args.threads
                )
                parity = result.parity[precision]
                records.append(
                    {
                        **shared,
                        "exporter": exporter,
                        "precision": precision,
                        "export_s": round(min(export_s[exporter]), 1),
                        "export_s_runs": [round(s, 1) for s in export_s[exporter]],
                        "default_precision": result.default_precision,
                        "parity_min_cosine": parity["min_cosine"],
                        "parity_mean_cosine": parity["mean_cosine"],
                    }
                )
        seconds: dict[tuple[str, str], list[float]] = {key: [] for key in encoders}
        vectors = {key: encoder.encode(texts) for key, encoder in encoders.items()}  # warm-up
        for round_ in range(args.repeats):
            keys = list(encoders)
            for key in keys[round_ % len(keys) :] + keys[: round_ % len(keys)]:
                start = time.perf_counter()
                encoders[key].encode(texts)
                seconds[key].append(time.perf_counter() - start)
    first = vectors[(exporters[0], "fp32")]
    for record in records:
        key = (record["exporter"], record["precision"])
        record["texts_per_s"] = round(len(texts) / median(seconds[key]), 1)
        record["seconds"] = [round(s, 3) for s in seconds[key]]
        record[f"min_cosine_vs_{exporters[0]}_fp32"] = float(cosines(vectors[key], first).min())
    finish(args.out, records, _table)


def _table(records: list[dict[str, Any]]) -> str:
    header = ["exporter", "graph", "export s", "parity min/mean cos", "texts/s", "min cos vs first"]
    return records_table(
        header,
        records,
        lambda r: [
            r["exporter"],
            r["precision"],
            fmt(r["export_s"]),
            f"{r['parity_min_cosine']:.5f} / {r['parity_mean_cosine']:.5f}",
            fmt(r["texts_per_s"], ".0f"),
            f"{next(v for k, v in r.items() if k.startswith('min_cosine_vs')):.5f}",
        ],
    )


if __name__ == "__main__":
    main()
