"""Quality: STS-B test Spearman x 100 of cosine similarity, featx vs sentence-transformers.

Each method embeds the distinct sentences of ``<data>/stsb/test.tsv`` once; the score is
the Spearman correlation between the cosine of each pair and its gold score, x 100
(all-MiniLM-L6-v2 with sentence-transformers: 82.03 on this data). Prints a Markdown
table; appends one JSON line per method to ``benchmarks/results/bench_quality.jsonl``.

    python benchmarks/bench_quality.py
    python benchmarks/bench_quality.py --methods featx-int8 st-torch --n-pairs 200
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

STSB_REFERENCE_X100 = 82.03  # shared/data/README.md: sentence-transformers, this test split
DEFAULT_METHODS = ["featx-fp32", "featx-int8", "st-torch"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser, st_onnx=True)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=common.METHODS)
    parser.add_argument("--n-pairs", type=int, default=0, help="first N test pairs (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    common.add_out_arg(parser, "bench_quality")
    args = parser.parse_args(argv)
    if args.n_pairs < 0 or args.threads < 1 or args.batch_size < 1:
        parser.error("--n-pairs must be >= 0, --threads and --batch-size >= 1")
    args.methods = list(dict.fromkeys(args.methods))
    return args


def stsb_test(data: Path, n_pairs: int = 0) -> tuple[list[str], list[str], np.ndarray]:
    """Sentence pairs and gold scores of the STS-B test split (the first ``n_pairs``)."""
    header, rows = common.read_tsv(data / "stsb" / "test.tsv")
    i1, i2, i3 = (header.index(c) for c in ("sentence1", "sentence2", "score"))
    if n_pairs:
        rows = rows[:n_pairs]
    return (
        [r[i1] for r in rows],
        [r[i2] for r in rows],
        np.array([float(r[i3]) for r in rows], dtype=np.float64),
    )


def spearman_x100(pred: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rank correlation x 100."""
    from scipy.stats import spearmanr

    return float(spearmanr(pred, gold).statistic) * 100


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = common.machine_record(args.threads)
    setup, artifact_status, skipped = common.setup_methods(args)
    first, second, gold = stsb_test(args.data, args.n_pairs)
    unique = sorted(set(first) | set(second))
    index = {s: i for i, s in enumerate(unique)}
    a = np.array([index[s] for s in first])
    b = np.array([index[s] for s in second])
    base = common.base_record(
        "quality",
        threads=args.threads,
        settings={
            "threads": args.threads,
            "batch_size": args.batch_size,
            "n_pairs_arg": args.n_pairs,
        },
        artifact=setup.artifact,
        machine=machine,
        task="stsb-test",
        metric="spearman_cosine_x100",
        model_folder=str(setup.model_folder),
        artifact_status=artifact_status,
        reference_x100=STSB_REFERENCE_X100,
        n_pairs=len(gold),
        n_sentences=len(unique),
    )
    records: list[dict[str, Any]] = []
    for name in args.methods:
        rec: dict[str, Any] = {**base, "method": name, "description": common.DESCRIPTIONS[name]}
        if name in skipped:
            records.append({**rec, "status": "skipped", "reason": skipped[name]})
            print(f"SKIPPED {name}: {skipped[name]}", file=sys.stderr)
            continue
        print(f"[{name}] embedding {len(unique)} sentences ...", file=sys.stderr)
        method = common.load_method(name, setup)
        start = time.perf_counter_ns()
        vectors = method.embed(unique)
        embed_s = (time.perf_counter_ns() - start) / 1e9
        score = spearman_x100(common.cosines(vectors[a], vectors[b]), gold)
        records.append(
            {
                **rec,
                "status": "ok",
                "method_settings": method.settings,
                "spearman_x100": score,
                "delta_vs_reference": score - STSB_REFERENCE_X100,
                "embed_s": embed_s,
            }
        )
    common.finish(args.out, records, render)
    return 0


def render(records: list[dict[str, Any]]) -> str:
    """The Markdown table of one run."""
    ok = {r["method"]: r for r in records if r["status"] == "ok"}
    st = ok.get(common.REFERENCE, {}).get("spearman_x100")
    rows = []
    for r in records:
        if r["status"] != "ok":
            rows.append([r["method"], f"skipped: {r['reason']}", "-", "-"])
            continue
        vs_st = None if st is None else r["spearman_x100"] - st
        rows.append(
            [
                r["method"],
                f"{r['spearman_x100']:.2f}",
                f"{r['delta_vs_reference']:+.2f}",
                common.fmt(vs_st, "+.2f"),
            ]
        )
    header = [
        "method",
        "STS-B test Spearman x100",
        f"vs reference {STSB_REFERENCE_X100}",
        f"vs {common.REFERENCE} (this run)",
    ]
    n = records[0]["n_pairs"] if records else 0
    return common.markdown_table(header, rows) + f"\n\n{n} pairs."


if __name__ == "__main__":
    sys.exit(main())
