"""The command line as a user runs it: `featx embed` start-up and memory on big jobs.

Two measurements, each in fresh processes:
- one sentence on stdin -> JSONL on stdout from an existing artifact: wall time from
  process start to exit (median of ``--repeats``), and whether torch was imported;
- ``--n-texts`` mixed-length texts from a file -> .npy: wall time and peak RSS
  (``ru_maxrss`` of the child).

    python benchmarks/bench_cli.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

# Runs the real CLI entry point, then reports its own peak RSS and whether torch was
# imported along the way (read from /proc, so it is this process's figure alone).
_RUN_CLI = """\
import sys
from featx.cli import main
try:
    main(sys.argv[1:])
finally:
    hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
    print(f"bench: peak_rss_kb={hwm[0]} torch={'torch' in sys.modules}", file=sys.stderr)
"""


def featx_embed(args: list[str], stdin: str | None = None) -> tuple[float, int, bool]:
    """Run `featx embed ARGS` in a fresh process: wall seconds, peak RSS (MB), torch seen."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, "embed", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode not in (0, None):
        raise RuntimeError(f"featx embed failed: {done.stderr}")
    report = done.stderr.rsplit("bench: ", 1)[-1].split()
    fields = dict(item.split("=") for item in report)
    return wall, int(fields["peak_rss_kb"]) // 1024, fields["torch"] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-texts", type=int, default=10_000)
    common.add_out_arg(parser, "bench_cli", text=None)
    args = parser.parse_args()
    common.warn_if_busy(threads=2)
    artifact, _ = common.ensure_artifact(args.artifact)
    sentence = "A man is playing a guitar."

    featx_embed(["-m", str(artifact)], stdin=sentence)  # warm the page cache once
    walls, torch_seen = [], False
    for _ in range(args.repeats):
        wall, _, torch_imported = featx_embed(["-m", str(artifact)], stdin=sentence)
        walls.append(wall)
        torch_seen |= torch_imported

    texts = common.mixed_workload(common.sst2_sentences(args.data), args.n_texts)
    workdir = Path(tempfile.mkdtemp(prefix="featx-bench-cli-"))
    try:
        source = workdir / "texts.txt"
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
        big_wall, peak_mb, _ = featx_embed(
            [str(source), "-m", str(artifact), "-o", str(workdir / "out.npy")]
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    record = {
        **common.machine_record(threads=os.cpu_count() or 1),
        "benchmark": "bench_cli",
        "artifact": common.artifact_record(artifact),
        "one_sentence_wall_s_median": common.median(walls),
        "one_sentence_wall_s_all": walls,
        "torch_imported": torch_seen,
        "n_texts": args.n_texts,
        "n_texts_wall_s": big_wall,
        "n_texts_texts_per_s": args.n_texts / big_wall,
        "n_texts_peak_rss_mb": peak_mb,
    }
    common.append_results(args.out, [record])
    print(
        common.markdown_table(
            ["measurement", "value"],
            [
                [
                    "`featx embed`, one sentence, start to exit (median)",
                    f"{record['one_sentence_wall_s_median']:.2f} s",
                ],
                ["torch imported", str(torch_seen)],
                [
                    f"`featx embed`, {args.n_texts:,} mixed texts",
                    f"{big_wall:.1f} s ({record['n_texts_texts_per_s']:.0f} texts/s)",
                ],
                [f"peak RSS, {args.n_texts:,} texts", f"{peak_mb} MB"],
            ],
        )
    )


if __name__ == "__main__":
    main()
