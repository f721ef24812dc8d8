"""Embedding speed: featx vs sentence-transformers on the same model, machine and run.

For each method: texts/s on the 'short' and 'mixed' workloads (a warm-up run, then
``--repeats`` timed runs interleaved across methods; the median), the ratio to
sentence-transformers (torch), cosine of its embeddings vs sentence-transformers
(torch) on the same texts, the share of this machine's int8 and fp32 FLOP bound each
reaches (:mod:`gemm_peak`), single-text latency p50/p95, cold start (a fresh
``python -c`` process: spawn to first embedding) and that process's peak RSS after it
embedded the 'short' workload. Prints a Markdown table; appends one JSON line per
(method, measurement) to ``benchmarks/results/bench_encode.jsonl``.

    python benchmarks/bench_encode.py                      # everything (idle machine!)
    python benchmarks/bench_encode.py --n-short 64 --n-mixed 32 --repeats 1 --single 10
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import gemm_peak  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser, st_onnx=True)
    parser.add_argument(
        "--workloads", nargs="+", default=["short", "mixed"], choices=["short", "mixed"]
    )
    parser.add_argument(
        "--methods", nargs="+", default=list(common.METHODS), choices=common.METHODS
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per workload")
    parser.add_argument("--single", type=int, default=200, help="single-text calls timed")
    parser.add_argument("--cold-repeats", type=int, default=3, help="fresh processes (0: skip)")
    parser.add_argument("--n-short", type=int, default=4096)
    parser.add_argument("--n-mixed", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM peaks")
    common.add_out_arg(parser, "bench_encode")
    args = parser.parse_args(argv)
    common.require_at_least_one(
        parser, args, ("repeats", "n_short", "n_mixed", "threads", "batch_size")
    )
    if args.single < 0 or args.cold_repeats < 0:
        parser.error("--single and --cold-repeats must not be negative")
    args.methods = list(dict.fromkeys(args.methods))
    return args


def throughput(
    loaded: dict[str, common.Loaded],
    reference: common.Loaded,
    texts: list[str],
    repeats: int,
) -> dict[str, dict[str, Any]]:
    """Warm up and check every method against the reference, then time interleaved runs."""
    # The reference's own warm-up run is its output when it is timed too.
    ref_out = reference.embed(texts)
    stats: dict[str, dict[str, Any]] = {}
    first: dict[str, np.ndarray] = {}
    for name, method in loaded.items():
        # Warm-up, and the output checked before timing.
        out = ref_out if method is reference else method.embed(texts)
        if out.shape != ref_out.shape:
            raise RuntimeError(f"{name}: output shape {out.shape} != reference {ref_out.shape}")
        cos = common.cosines(out, ref_out)
        if name in common.FP32_METHODS and float(cos.min()) < common.FP32_MIN_COSINE:
            print(
                f"WARNING: {name} disagrees with {common.REFERENCE}: min cosine "
                f"{cos.min():.4f} < {common.FP32_MIN_COSINE}",
                file=sys.stderr,
            )
        first[name] = out
        stats[name] = {
            "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean()),
            "times_s": [],
        }
    names = list(loaded)
    for r in range(repeats):
        # Rotate the order each round so no method always runs first (or after torch).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            ns, out = common.time_ns(functools.partial(loaded[name].embed, texts))
            stats[name]["times_s"].append(ns / 1e9)
            drift = float(np.abs(out - first[name]).max())
            if drift > 1e-4:
                print(
                    f"WARNING: {name} is not deterministic: max |diff| {drift:.2e} between runs",
                    file=sys.stderr,
                )
    for s in stats.values():
        s["time_s_median"] = common.median(s["times_s"])
        s["time_s_p95"] = common.p95(s["times_s"])
        s["texts_per_s"] = len(texts) / s["time_s_median"]
    return stats


def single_latency(method: common.Loaded, text: str, calls: int) -> dict[str, Any]:
    """p50/p95 milliseconds of ``encode([text])`` over ``calls`` calls, after a warm-up."""
    for _ in range(min(10, calls)):
        method.embed([text])
    samples = [common.time_ns(lambda: method.embed([text]))[0] / 1e6 for _ in range(calls)]
    return {
        "n_calls": calls,
        "latency_ms_p50": common.median(samples),
        "latency_ms_p95": common.p95(samples),
    }


def cold_start(
    name: str, setup: common.Setup, text: str, rss_texts: list[str], repeats: int
) -> dict[str, Any]:
    """Fresh processes: spawn to first embedding; the last one also embeds ``rss_texts``."""
    runs = [
        common.run_cold(
            common.cold_start_code(name, setup, text), rss_texts if i == repeats - 1 else None
        )
        for i in range(repeats)
    ]
    starts = [r.first_embedding_s for r in runs]
    return {
        "cold_start_s": common.median(starts),
        "cold_start_s_runs": starts,
        "peak_rss_mb": runs[-1].peak_rss_mb,
        "rss_n_texts": runs[-1].n_embedded,
    }


def ratio(reference: float | None, value: float | None, higher_is_better: bool) -> float | None:
    """Speed-up vs the reference: > 1 means faster than sentence-transformers (torch)."""
    if reference is None or value is None or reference <= 0 or value <= 0:
        return None
    return value / reference if higher_is_better else reference / value


def load_methods(
    names: Sequence[str], setup: common.Setup, skipped: dict[str, str]
) -> dict[str, common.Loaded]:
    """Load each method not yet skipped; one that fails to load (but the reference) is
    added to ``skipped`` with the reason."""
    loaded: dict[str, common.Loaded] = {}
    for name in names:
        if name in loaded or name in skipped:
            continue
        try:
            loaded[name] = common.load_method(name, setup)
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            if name == common.REFERENCE:
                raise
            skipped[name] = f"load failed: {type(exc).__name__}: {exc}"
    return loaded


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every record of the run carries."""
    return {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "single": args.single,
        "cold_repeats": args.cold_repeats,
        "n_short": args.n_short,
        "n_mixed": args.n_mixed,
        "seed": common.SEED,
        "short_words": list(common.SHORT_WORDS),
        "mixed_words": list(common.MIXED_WORDS),
        "mixed_lognormal": common.MIXED_LOGNORMAL,
    }


# record(method, workload, **fields): add one record of the run.
Record = Callable[..., dict[str, Any]]


def measure_workloads(
    record: Record,
    timed: dict[str, common.Loaded],
    reference: common.Loaded,
    workloads: dict[str, list[str]],
    args: argparse.Namespace,
    artifact: Path,
    bound: dict[str, Any] | None,
) -> None:
    """Throughput of every timed method on each workload (and its share of the bound)."""
    for workload, texts in workloads.items():
        print(f"[{workload}] {len(texts)} texts x {args.repeats} repeats ...", file=sys.stderr)
        tokens = common.token_counts(artifact, texts)
        stats = throughput(timed, reference, texts, args.repeats)
        ref_tps = stats.get(common.REFERENCE, {}).get("texts_per_s")
        shares: dict[str, Any] = {}
        if bound is not None:
            ops = gemm_peak.ops_per_text(tokens, bound["shape"])
            shares["ops_per_text"] = ops
            for kind in ("int8", "fp32"):
                shares[f"{kind}_bound_texts_per_s"] = bound[f"{kind}_gop_s"] * 1e9 / ops
        for name, s in stats.items():
            for kind in ("int8", "fp32"):
                if f"{kind}_bound_texts_per_s" in shares:
                    s[f"share_of_{kind}_bound"] = (
                        s["texts_per_s"] / shares[f"{kind}_bound_texts_per_s"]
                    )
            record(
                name,
                workload,
                n_texts=len(texts),
                n_tokens=int(tokens.sum()),
                mean_tokens=float(tokens.mean()),
                tokens_per_s=float(tokens.sum()) / s["time_s_median"],
                ratio_vs_st_torch=ratio(ref_tps, s["texts_per_s"], higher_is_better=True),
                **shares,
                **s,
            )


def measure_single(record: Record, timed: dict[str, common.Loaded], text: str, calls: int) -> None:
    """Single-text latency of every timed method."""
    print(f"[single] {calls} calls ...", file=sys.stderr)
    latency = {name: single_latency(m, text, calls) for name, m in timed.items()}
    ref_ms = latency.get(common.REFERENCE, {}).get("latency_ms_p50")
    for name, s in latency.items():
        record(
            name,
            "single",
            text_words=len(text.split()),
            ratio_vs_st_torch=ratio(ref_ms, s["latency_ms_p50"], higher_is_better=False),
            **s,
        )


def measure_cold(
    record: Record,
    names: Sequence[str],
    setup: common.Setup,
    text: str,
    rss_texts: list[str],
    repeats: int,
) -> None:
    """Cold start and peak RSS of every timed method, in fresh processes."""
    cold: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"[cold] {name}: {repeats} fresh processes ...", file=sys.stderr)
        try:
            cold[name] = cold_start(name, setup, text, rss_texts, repeats)
        except RuntimeError as exc:
            record(name, "cold", status="failed", reason=str(exc)[-2000:])
    ref_cold = cold.get(common.REFERENCE, {}).get("cold_start_s")
    for name, s in cold.items():
        record(
            name,
            "cold",
            ratio_vs_st_torch=ratio(ref_cold, s["cold_start_s"], higher_is_better=False),
            **s,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.warn_if_busy(args.threads)
    machine = common.machine_record(args.threads)
    setup, artifact_status, skipped = common.setup_methods(args)

    sentences = common.sst2_sentences(args.data)
    workloads = common.build_workloads(args.data, args.workloads, args.n_short, args.n_mixed)
    single_text = common.short_workload(sentences, 1, seed=common.SEED + 7)[0]
    rss_texts = common.short_workload(sentences, args.n_short)

    loaded = load_methods([common.REFERENCE, *args.methods], setup, skipped)
    timed = {n: loaded[n] for n in args.methods if n in loaded}
    base = common.base_record(
        "encode",
        threads=args.threads,
        settings=run_settings(args),
        artifact=setup.artifact,
        machine=machine,
        model_folder=str(setup.model_folder),
        artifact_status=artifact_status,
        reference=common.REFERENCE,
    )
    records: list[dict[str, Any]] = []

    def record(name: str, workload: str, **fields: Any) -> dict[str, Any]:
        rec = {
            **base,
            "method": name,
            "description": common.DESCRIPTIONS[name],
            "method_settings": loaded[name].settings if name in loaded else None,
            "workload": workload,
            "status": "ok",
            **fields,
        }
        records.append(rec)
        return rec

    for name in args.methods:
        if name in skipped:
            record(name, "all", status="skipped", reason=skipped[name])
            print(f"SKIPPED {name}: {skipped[name]}", file=sys.stderr)
    bound = None
    if not args.no_gemm:
        print("[gemm] peaks ...", file=sys.stderr)
        shape = gemm_peak.encoder_shape(setup.model_folder)
        bound = {**gemm_peak.gemm_peaks(shape["hidden"], shape["ffn"], args.threads)}
        bound["shape"] = shape
        records.append({**base, "method": "gemm-peak", "workload": "gemm", "status": "ok", **bound})
    measure_workloads(
        record, timed, loaded[common.REFERENCE], workloads, args, setup.artifact, bound
    )
    if args.single:
        measure_single(record, timed, single_text, args.single)
    if args.cold_repeats:
        measure_cold(record, list(timed), setup, single_text, rss_texts, args.cold_repeats)
    common.finish(args.out, records, functools.partial(render, methods=args.methods))
    return 0


def render(records: list[dict[str, Any]], methods: Sequence[str]) -> str:
    """The Markdown table of one run."""
    by = {(r["method"], r["workload"]): r for r in records if r["status"] == "ok"}
    skipped = {r["method"]: r["reason"] for r in records if r["status"] != "ok"}
    header = [
        "method",
        "short texts/s",
        "mixed texts/s",
        "cosine min / mean (short)",
        "cosine min / mean (mixed)",
        "int8 bound share short / mixed",
        "1 text p50 / p95 ms",
        "cold start s",
        "peak RSS MB",
    ]
    rows = []
    for name in methods:
        if name in skipped and not any(k[0] == name for k in by):
            rows.append([name, f"skipped: {skipped[name]}", *["-"] * (len(header) - 2)])
            continue
        row: list[str] = [name]
        for w in ("short", "mixed"):
            r = by.get((name, w))
            row.append(
                "-"
                if r is None
                else f"{r['texts_per_s']:.0f} ({common.fmt(r['ratio_vs_st_torch'], '.2f', '×')})"
            )
        for w in ("short", "mixed"):
            r = by.get((name, w))
            row.append("-" if r is None else f"{r['cosine_min']:.4f} / {r['cosine_mean']:.4f}")
        row.append(
            " / ".join(
                common.fmt(by.get((name, w), {}).get("share_of_int8_bound"), ".0%")
                for w in ("short", "mixed")
            )
        )
        r = by.get((name, "single"))
        row.append("-" if r is None else f"{r['latency_ms_p50']:.2f} / {r['latency_ms_p95']:.2f}")
        r = by.get((name, "cold"))
        row.append("-" if r is None else f"{r['cold_start_s']:.2f}")
        row.append("-" if r is None else f"{r['peak_rss_mb']:.0f}")
        rows.append(row)
    first = next(iter(records), {})
    m = first.get("machine", {})
    note = (
        f"\n{m.get('cpu')}, {m.get('threads')} threads, featx {m.get('featx_version')} "
        f"({(m.get('git_sha') or '?')[:10]}), onnxruntime {m.get('onnxruntime_version')}, "
        f"torch {m.get('torch_version')}, sentence-transformers "
        f"{m.get('sentence_transformers_version')}. Ratios: speed-up vs {common.REFERENCE}."
    )
    gemm = by.get(("gemm-peak", "gemm"))
    if gemm is not None:
        note += (
            f" GEMM peaks: int8 {gemm['int8_gop_s']:.0f} GOP/s, fp32 {gemm['fp32_gop_s']:.0f}"
            " GOP/s (best of ONNX Runtime and torch kernels); bound share = texts/s over"
            " the int8 peak / ops per text."
        )
    return common.markdown_table(header, rows) + "\n" + note


if __name__ == "__main__":
    sys.exit(main())
