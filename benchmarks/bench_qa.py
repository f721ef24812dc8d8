"""Extractive question answering: fine-tuning on SQuAD, dev EM/F1, int8, and speed vs torch.

Parts, in one run on one machine:

- ``finetune``: the default model fine-tuned with ``featx.qa.finetune`` on
  ``squad/train.jsonl`` (11,877 questions), once per ``--layers`` value (the top-N curve:
  ``2 4 all``); each model scored on the dev set (``--dev-limit`` questions, 0 = all
  10,570) with fp32 and int8, with its training time, time per epoch and window report.
  The int8 gate uses the first ``--gate-dev`` dev questions.
- ``speed``: the last model (or ``--qa-artifact``) answering ``--speed-questions`` dev
  questions: featx (ONNX Runtime, fp32 and int8) against the same fine-tuned weights in
  transformers' ``AutoModelForQuestionAnswering`` on torch, with the preprocessing and
  decoding of transformers' question-answering recipe (the fast tokenizer's overflowing
  windows and offsets, n-best start/end, softmax scores). transformers 5 has no
  ``pipeline("question-answering")`` any more, so this is what that pipeline ran. Same
  texts, same threads, same window length and stride; questions per second and the
  share of questions with the same answer, and each one's share of the fp32 bound: this
  machine's best fp32 GEMM rate (:mod:`gemm_peak`) over the arithmetic of featx's
  unpadded windows.

Appends one JSON line per row to ``benchmarks/results/bench_qa.jsonl``.

    python benchmarks/bench_qa.py                       # all layers, full dev (~1 h)
    python benchmarks/bench_qa.py --layers 2 4 all      # the curve
    python benchmarks/bench_qa.py --train-limit 64 --dev-limit 32 --speed-questions 16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

PARTS = ("finetune", "speed")
TUNABLE = ("epochs", "lr", "layer_decay", "head_lr")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--layers", nargs="+", default=["all"], help="train_layers values")
    parser.add_argument("--epochs", type=int, default=None, help="default: featx's")
    parser.add_argument("--lr", type=float, default=None, help="default: featx's")
    parser.add_argument("--layer-decay", type=float, default=None, help="default: featx's")
    parser.add_argument("--head-lr", type=float, default=None, help="default: 5 x lr")
    parser.add_argument("--train-limit", type=int, default=0, help="first N train questions")
    parser.add_argument("--dev-limit", type=int, default=0, help="first N dev questions")
    parser.add_argument("--gate-dev", type=int, default=500, help="dev questions for the gate")
    parser.add_argument("--speed-questions", type=int, default=1000)
    parser.add_argument("--qa-artifact", type=Path, default=None, help="skip training: use this")
    parser.add_argument("--threads", type=int, default=2)
    common.add_out_arg(parser, "bench_qa")
    args = parser.parse_args(argv)
    if min(args.train_limit, args.dev_limit, args.gate_dev) < 0 or args.threads < 1:
        parser.error("limits must be >= 0 and --threads >= 1")
    return args


class Run(common.Run):
    """The data, a work folder for the models, the last model trained."""

    def __init__(self, args: argparse.Namespace) -> None:
        from featx.qa import read_squad

        self.work = Path(tempfile.mkdtemp(prefix="featx-bench-qa-"))
        squad = args.data / "squad"
        self.train = read_squad(squad / "train.jsonl")
        self.dev = read_squad(squad / "dev.jsonl")
        if args.train_limit:
            self.train = self.train[: args.train_limit]
        if args.dev_limit:
            self.dev = self.dev[: args.dev_limit]
        self.model: Path | None = args.qa_artifact
        settings = {k: getattr(args, k) for k in (*TUNABLE, "gate_dev", "threads")}
        base = common.base_record("qa", threads=args.threads, settings=settings)
        super().__init__(args, base)

    def summary(self, fields: dict[str, Any]) -> str:
        keys = ("config", "exact_match", "f1", "train_seconds", "questions_per_s", "same_answer")
        return ", ".join(f"{k} {fields[k]}" for k in keys if fields.get(k) is not None)


def part_finetune(run: Run) -> None:
    from featx import qa

    args = run.args
    options = {k: getattr(args, k) for k in TUNABLE if getattr(args, k) is not None}
    for layers in args.layers:
        train_layers: int | str = layers if layers == "all" else int(layers)
        out = run.work / f"qa-{layers}"
        start = time.perf_counter()
        answerer = qa.finetune(
            run.train, dev=run.dev[: args.gate_dev] or None, out=out,
            train_layers=train_layers, show_progress=False, **options,
        )  # fmt: skip
        wall = time.perf_counter() - start
        tuned = answerer.metrics["finetune"]
        scores = {}
        for precision in ("fp32", "int8"):
            scored = qa.Answerer.load(out, precision=precision, threads=args.threads)
            begin = time.perf_counter()
            result = scored.evaluate(run.dev)
            scores[precision] = {
                "exact_match": round(result["exact_match"], 2),
                "f1": round(result["f1"], 2),
                "seconds": round(time.perf_counter() - begin, 1),
            }
        run.model = out
        evals = json.loads((out / "finetune.json").read_text())["history"]["evals"]
        run.record(
            part="finetune",
            config=f"train_layers={layers}",
            n_train=len(run.train),
            n_dev=len(run.dev),
            exact_match=scores["fp32"]["exact_match"],
            f1=scores["fp32"]["f1"],
            int8=scores["int8"],
            default_precision=answerer.encoder.precision,
            dev_gate=answerer.metrics["dev_gate"],
            train_seconds=tuned["train_seconds"],
            seconds_per_epoch=tuned["train_seconds"] / tuned["settings"]["epochs"],
            gate_dev_curve=[
                {k: round(e[k], 2) for k in ("epoch", "exact_match", "f1")} for e in evals
            ],  # fmt: skip
            wall_seconds=round(wall, 1),
            settings_used=tuned["settings"],
            windows=tuned["windows"],
        )


def part_speed(run: Run) -> None:
    import torch

    from featx import qa

    if run.model is None:
        raise SystemExit("speed needs a model: run the finetune part first or --qa-artifact")
    torch.set_num_threads(run.args.threads)
    pairs = [(q.question, q.context) for q in run.dev[: run.args.speed_questions]]
    fp32 = qa.Answerer.load(run.model, precision="fp32", threads=run.args.threads)
    torch_recipe(run.model, pairs[:8], fp32)  # warm-up
    torch_answers, torch_seconds = torch_recipe(run.model, pairs, fp32)
    torch_speed = len(pairs) / torch_seconds
    bound = fp32_bound(run.model, fp32, pairs, run.args.threads)
    run.record(
        part="speed",
        config="transformers AutoModelForQuestionAnswering (torch fp32)",
        n_questions=len(pairs),
        questions_per_s=round(torch_speed, 2),
        share_of_fp32_bound=round(torch_speed / bound["questions_per_s"], 3),
        fp32_bound=bound,
        torch_version=torch.__version__,
    )
    for precision in ("fp32", "int8"):
        answerer = qa.Answerer.load(run.model, precision=precision, threads=run.args.threads)
        answerer.answer_batch(pairs[:8])  # warm-up
        ns, spans = common.time_ns(lambda a=answerer: a.answer_batch(pairs))
        same = [s.text == t for s, t in zip(spans, torch_answers, strict=True)]
        speed = len(pairs) / (ns / 1e9)
        run.record(
            part="speed",
            config=f"featx {precision}",
            n_questions=len(pairs),
            questions_per_s=round(speed, 2),
            ratio_vs_torch=round(speed / torch_speed, 2),
            share_of_fp32_bound=round(speed / bound["questions_per_s"], 3),
            same_answer=round(100 * float(np.mean(same)), 2),
        )


def fp32_bound(
    artifact: Path, answerer: Any, pairs: list[tuple[str, str]], threads: int
) -> dict[str, Any]:
    """Questions/s no fp32 contender can beat here: the GEMM peak over the windows' work.

    The work counts featx's windows without padding (all of them, several for a long
    context), so a share near 1 leaves nothing to gain but by doing less arithmetic.
    """
    import gemm_peak

    shape = gemm_peak.encoder_shape(artifact / "hf")
    peak = gemm_peak.gemm_peaks(shape["hidden"], shape["ffn"], threads)["fp32_gop_s"]
    lengths = [len(ids) for ids in answerer.preparer.windows(pairs).ids]
    ops = gemm_peak.ops_per_text(lengths, shape) * len(lengths) / len(pairs)
    return {
        "fp32_gop_s": round(peak, 1),
        "windows_per_question": round(len(lengths) / len(pairs), 3),
        "pieces_per_window": round(float(np.mean(lengths)), 1),
        "gop_per_question": round(ops / 1e9, 3),
        "questions_per_s": round(peak * 1e9 / ops, 1),
    }


def torch_recipe(
    artifact: Path, pairs: list[tuple[str, str]], answerer: Any
) -> tuple[list[str], float]:
    """The same weights in transformers on torch, with transformers' QA pre- and post-processing."""
    import torch
    import transformers

    hf = artifact / "hf"
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(hf)).eval()
    with torch.no_grad():
        model.qa_outputs.weight.copy_(torch.from_numpy(answerer.weight.T))
        model.qa_outputs.bias.copy_(torch.from_numpy(answerer.bias))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf))
    section = answerer.section
    start = time.perf_counter()
    texts: list[str] = []
    for begin in range(0, len(pairs), 32):
        batch = pairs[begin : begin + 32]
        enc = tokenizer(
            [q[: _question_chars(tokenizer, q, section.max_question)] for q, _ in batch],
            [c for _, c in batch],
            truncation="only_second",
            max_length=answerer.encoder.max_length,
            stride=section.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        owner = enc.pop("overflow_to_sample_mapping").numpy()
        offsets = enc.pop("offset_mapping").numpy()
        with torch.no_grad():
            out = model(**enc)
        best: dict[int, tuple[float, str]] = {}
        for w in range(len(owner)):
            sequence = np.asarray([s == 1 for s in enc.sequence_ids(w)])
            found = _best(out.start_logits[w].numpy(), out.end_logits[w].numpy(), sequence,
                          offsets[w], batch[owner[w]][1], section.max_answer_length)  # fmt: skip
            if found and found[0] > best.get(owner[w], (-1.0, ""))[0]:
                best[owner[w]] = found
        texts += [best.get(i, (0.0, ""))[1] for i in range(len(batch))]
    return texts, time.perf_counter() - start


def _question_chars(tokenizer: Any, question: str, max_question: int) -> int:
    """Characters of ``question`` in its first ``max_question`` pieces.

    The same cut as featx's SpanPreparer, written again on purpose: the torch baseline
    must not run featx code, so both sides see the same windows by construction, not reuse.
    """
    offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    spans = offsets["offset_mapping"]
    return len(question) if len(spans) <= max_question else spans[max_question - 1][1]


def _best(start: Any, end: Any, context: Any, offsets: Any, text: str, longest: int) -> Any:
    """transformers' QA decoding: softmax over context pieces, n-best (20) starts and ends."""
    where = np.flatnonzero(context)
    if not len(where):
        return None
    p_start = np.exp(start[where] - start[where].max())
    p_end = np.exp(end[where] - end[where].max())
    p_start, p_end = p_start / p_start.sum(), p_end / p_end.sum()
    best = None
    for i in np.argsort(-p_start)[:20]:
        for j in np.argsort(-p_end)[:20]:
            if j < i or where[j] - where[i] >= longest:
                continue
            score = float(p_start[i] * p_end[j])
            if best is None or score > best[0]:
                a, b = int(offsets[where[i]][0]), int(offsets[where[j]][1])
                best = (score, text[a:b].strip())
    return best


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run_parts(
        {"finetune": part_finetune, "speed": part_speed}, args, Run(args), render
    )


def render(records: list[dict[str, Any]]) -> str:
    rows = [
        [
            r["part"],
            r["config"],
            *(common.fmt(r.get(k), ".2f") for k in ("exact_match", "f1")),
            common.fmt(r.get("train_seconds"), ".0f"),
            common.fmt(r.get("questions_per_s"), ".1f"),
            common.fmt(r.get("ratio_vs_torch"), ".2f", "x"),
            common.fmt(r.get("same_answer"), ".2f"),
            common.fmt(r.get("share_of_fp32_bound"), ".2f"),
        ]
        for r in records
    ]
    header = ["part", "config", "dev EM", "dev F1", "train s", "questions/s", "vs torch"]
    header += ["same %", "of fp32 bound"]
    return common.markdown_table(header, rows)


if __name__ == "__main__":
    raise SystemExit(main())
