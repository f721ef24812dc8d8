"""int8 recipes for the default model: accuracy against fp32 and speed, side by side.

Builds each int8 variant from the artifact's fp32 graph, then measures, in one run:
cosine (min / mean) of its embeddings against the fp32 graph's on the 'short' and
'mixed' workloads, STS-B test Spearman x100, and texts/s on both workloads (median of
``--repeats`` runs interleaved across variants).

    python benchmarks/bench_int8.py
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

# name -> quantize_int8 options
VARIANTS: dict[str, dict[str, Any]] = {
    "dynamic, per tensor": {"alpha": None, "per_channel": False},
    "dynamic, per channel": {"alpha": None, "per_channel": True},
    "smoothed a=0.5, per channel": {"alpha": 0.5, "per_channel": True},
    "smoothed a=0.6, per channel (featx)": {"alpha": 0.6, "per_channel": True},
    "smoothed a=0.7, per channel": {"alpha": 0.7, "per_channel": True},
}


def stsb_spearman(encoder: Any, data: Path) -> float:
    from scipy.stats import spearmanr

    _, rows = common.read_tsv(data / "stsb" / "test.tsv")
    left = encoder.encode([r[0] for r in rows])
    right = encoder.encode([r[1] for r in rows])
    return float(100 * spearmanr((left * right).sum(axis=1), [float(r[2]) for r in rows]).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--n-short", type=int, default=4096)
    parser.add_argument("--n-mixed", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    common.add_out_arg(parser, "bench_int8", text=None)
    args = parser.parse_args()
    common.warn_if_busy(args.threads)
    warnings.simplefilter("ignore")  # truncation at 256 tokens, as in bench_encode

    import featx
    from featx.encoders.onnx import OnnxEncoder, make_session
    from featx.exporter.calibration import builtin_calibration_texts, calibration_feeds
    from featx.exporter.quantize import quantize_int8

    artifact, _ = common.ensure_artifact(args.artifact)
    fp32 = featx.load(artifact, precision="fp32", threads=args.threads)
    workloads = common.build_workloads(args.data, ["short", "mixed"], args.n_short, args.n_mixed)
    calibration = calibration_feeds(fp32, builtin_calibration_texts())
    encoders = {"fp32 (reference)": fp32}
    workdir = Path(tempfile.mkdtemp(prefix="featx-int8-"))
    try:
        for i, (name, options) in enumerate(VARIANTS.items()):
            path = workdir / f"v{i}.onnx"
            quantize_int8(artifact / "model.onnx", path, calibration, **options)
            session = make_session(str(path), threads=args.threads)
            encoders[name] = OnnxEncoder(session, fp32.tokenizer, fp32.spec)
        reference = {w: fp32.encode(texts) for w, texts in workloads.items()}
        results: dict[str, dict[str, Any]] = {name: {"variant": name} for name in encoders}
        for name, encoder in encoders.items():
            for w, texts in workloads.items():
                cos = common.cosines(encoder.encode(texts), reference[w])
                results[name][f"cos_min_{w}"] = float(cos.min())
                results[name][f"cos_mean_{w}"] = float(cos.mean())
            results[name]["stsb_spearman"] = stsb_spearman(encoder, args.data)
        for w, texts in workloads.items():
            runs: dict[str, list[float]] = {name: [] for name in encoders}
            for r in range(args.repeats):
                order = list(encoders)[r % len(encoders) :] + list(encoders)[: r % len(encoders)]
                for name in order:
                    start = time.perf_counter()
                    encoders[name].encode(texts)
                    runs[name].append(len(texts) / (time.perf_counter() - start))
            for name, rates in runs.items():
                results[name][f"texts_per_s_{w}"] = float(np.median(rates))
                results[name][f"texts_per_s_{w}_runs"] = rates
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    machine = common.machine_record(args.threads)
    run_id = common.run_id()
    common.append_results(
        args.out,
        [
            {"run_id": run_id, "machine": machine, "benchmark": "bench_int8", **r}
            for r in results.values()
        ],
    )
    print(
        common.markdown_table(
            [
                "variant",
                "min / mean cos short",
                "min / mean cos mixed",
                "STS-B",
                "short texts/s",
                "mixed texts/s",
            ],
            [
                [
                    r["variant"],
                    f"{r['cos_min_short']:.4f} / {r['cos_mean_short']:.4f}",
                    f"{r['cos_min_mixed']:.4f} / {r['cos_mean_mixed']:.4f}",
                    f"{r['stsb_spearman']:.2f}",
                    f"{r['texts_per_s_short']:.0f}",
                    f"{r['texts_per_s_mixed']:.0f}",
                ]
                for r in results.values()
            ],
        )
    )


if __name__ == "__main__":
    main()
