"""The ONNX Runtime backend: the default, torch-free inference path."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Tokenizer

from featx.artifact import Artifact, EncoderSection
from featx.artifact.manifest import POOLED_OUTPUT
from featx.config import ModelSpec, Precision, Representation, RepresentationOptions, parse_enum
from featx.encoders.transformer import TransformerEncoder
from featx.environment import available_cpus
from featx.errors import ModelLoadError

if TYPE_CHECKING:
    from typing import Unpack

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def check_providers(providers: list[str] | None) -> list[str]:
    """Validate execution providers against this onnxruntime build; default is CPU."""
    if providers is None:
        return [CPU]
    if isinstance(providers, str):
        providers = [providers]
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ValueError(
            f"Execution provider(s) {missing} are not available in this onnxruntime build. "
            f"Available: {', '.join(available)}. For CUDA install onnxruntime-gpu."
        )
    return list(providers)


def make_session(
    model: bytes | str, *, providers: list[str] | None = None, threads: int | None = None
) -> ort.InferenceSession:
    """Create an inference session with explicit threading and full graph optimisation."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers are noise here
    return ort.InferenceSession(model, sess_options=options, providers=check_providers(providers))


def choose_precision(
    encoder: EncoderSection, precision: str | None, providers: list[str]
) -> Precision:
    """Pick the graph variant: the asked one, fp16 on CUDA when present, else the default."""
    if precision is not None:
        wanted = parse_enum(Precision, precision, "precision")
        if wanted not in encoder.variants:
            raise ValueError(
                f"This artifact has no {wanted.value} graph; it has "
                f"{', '.join(encoder.precisions)}. Re-export with the option that builds it "
                "(featx export --help)."
            )
        return wanted
    if CUDA in providers and Precision.FP16 in encoder.variants:
        return Precision.FP16
    return encoder.default_precision


class OnnxEncoder(TransformerEncoder):
    """Text encoder running an exported graph on ONNX Runtime.

    Build one from an artifact with :meth:`from_dir` (or :func:`featx.load`); the
    constructor takes ready-made objects.

    Args:
        session: An inference session over a featx-exported graph.
        tokenizer: The model's tokenizer.
        spec: How to feed the model and pool its output.
        outputs: Hidden state index -> graph output name where the graph does not name
            every layer featx's way (``hidden_state_<i>``); the other layers do not exist.
        fast: A session over the artifact's fast graph (the default pooling of the last
            layer as its one output); calls that ask for just that run it. ``session``
            may then be a callable that opens the full graph when a call first needs it.
        **options: ``representation``, ``batch_size`` and ``max_tokens``, as for
            :class:`~featx.encoders.transformer.TransformerEncoder`.
    """

    def __init__(
        self,
        session: ort.InferenceSession | Callable[[], ort.InferenceSession],
        tokenizer: Tokenizer,
        spec: ModelSpec,
        *,
        outputs: Mapping[int, str] | None = None,
        fast: ort.InferenceSession | None = None,
        **options: Any,
    ) -> None:
        self.outputs = dict(outputs or {})  # before super(): it checks the default layers
        super().__init__(tokenizer, spec, **options)
        if isinstance(session, ort.InferenceSession):
            self._session: ort.InferenceSession | None = session
            self._open_session: Callable[[], ort.InferenceSession] | None = None
        else:
            self._session, self._open_session = None, session
        self._session_lock = threading.Lock()
        self.fast = fast
        self._fast_inputs = set() if fast is None else {i.name for i in fast.get_inputs()}
        self.path: Path | None = None
        self.precision: str | None = None
        self.graph_file: str | None = None  # the artifact's files behind the sessions
        self.fast_graph_file: str | None = None
        self._reload_args: dict[str, Any] | None = None

    @classmethod
    def from_dir(
        cls,
        path: str | os.PathLike[str],
        *,
        precision: str | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        max_tokens: int | None = None,
        lazy: bool = False,
        **representation: Unpack[RepresentationOptions],
    ) -> OnnxEncoder:
        """Load an artifact made by ``featx export``, verifying every file it reads.

        Args:
            path: The artifact directory.
            precision: ``"fp32"``, ``"int8"`` or ``"fp16"``; default: fp16 on CUDA when the
                artifact has it, else the artifact's default (int8 if it passed its gate).
            providers: ONNX Runtime execution providers, for example
                ``["CUDAExecutionProvider", "CPUExecutionProvider"]``; default CPU.
            threads: Intra-op threads; default: the cores this process may use.
            batch_size: Most texts per forward pass.
            max_tokens: Most padded tokens per forward pass.
            lazy: Open the full graph only when a call first needs it, even without a
                fast graph (for a caller that runs graphs of its own, such as
                :class:`featx.qa.Answerer`).
            **representation: Overrides of the artifact's pooling, normalize, layers,
                combine, long_text and stride.

        Raises:
            FileNotFoundError: If ``path`` is not an artifact.
            ArtifactIntegrityError: If a file is missing or altered.
            ModelLoadError: If the manifest or a file cannot be used.
        """
        artifact = Artifact.open(path)
        spec, encoder_section = artifact.manifest.model, artifact.manifest.encoder
        if spec is None or encoder_section is None:
            raise ModelLoadError(
                f"{artifact.path} holds no encoder (no ONNX graph): its head embeds with an "
                "in-memory encoder. Load it with featx.Predictor.load."
            )
        chosen_providers = check_providers(providers)
        chosen = choose_precision(encoder_section, precision, chosen_providers)
        default = spec.representation.updated(**representation)

        open_graph = _graph_opener(artifact, chosen_providers, threads)

        try:
            tokenizer = Tokenizer.from_str(artifact.read("tokenizer.json").decode("utf-8"))
        except (TypeError, ValueError) as err:
            raise ModelLoadError(f"Cannot load artifact {artifact.path}: {err}") from err
        full_file = encoder_section.variants[chosen].file
        fast_variant = encoder_section.fast.get(chosen)
        # The fast graph serves the default call; the full one opens when a call needs it
        # (other layers, poolings, token features), so the common case loads one graph.
        use_fast = fast_variant is not None and _same_pooled(default, spec)
        extra = {} if max_tokens is None else {"max_tokens": max_tokens}
        encoder = cls(
            (lambda: open_graph(full_file)) if use_fast or lazy else open_graph(full_file),
            tokenizer,
            spec,
            outputs=encoder_section.outputs,
            fast=open_graph(fast_variant.file) if use_fast and fast_variant else None,
            representation=default,
            batch_size=batch_size,
            **extra,
        )
        encoder.path = artifact.path
        encoder.precision = chosen.value
        encoder.graph_file = full_file
        encoder.fast_graph_file = fast_variant.file if fast_variant else None
        encoder._reload_args = {
            "precision": chosen.value,
            "providers": providers,
            "threads": threads,
            "batch_size": batch_size,
            "max_tokens": max_tokens,
            **representation,
        }
        return encoder

    def layer_indices(self, representation: Representation) -> tuple[int, ...]:
        """As for every encoder, and refused early where the graph lacks a hidden state."""
        indices = super().layer_indices(representation)
        missing = [i for i in indices if self.outputs and i not in self.outputs]
        if missing:
            have = ", ".join(str(i) for i in sorted(self.outputs))
            raise ValueError(
                f"This graph has hidden state {have} only (of 0 to {self.spec.num_layers}): "
                f"it came from the model folder's own ONNX file, which has no others, so "
                f"layers {representation.layers} cannot be read. Export the model from its "
                "weights (featx export MODEL OUT --exporter torch) to choose layers."
            )
        return indices

    @property
    def session(self) -> ort.InferenceSession:
        """The full graph's session (every hidden state), opened on first use if need be."""
        if self._session is None:
            with self._session_lock:
                if self._session is None and self._open_session is not None:
                    self._session = self._open_session()
        assert self._session is not None
        return self._session

    def graphs_used(self, **representation: Any) -> set[str]:
        """The graph file(s) an ``encode(texts, **representation)`` call runs."""
        wanted = self.representation.updated(**representation)
        if self.fast_graph_file is not None and _same_pooled(wanted, self.spec):
            return {self.fast_graph_file}
        if self.graph_file is None:
            raise ValueError("This encoder was built from a session, not an artifact's graphs.")
        return {self.graph_file}

    def pooled(
        self,
        inputs: dict[str, NDArray[np.int64]],
        representation: Representation,
        layers: tuple[int, ...],
    ) -> NDArray[np.float32]:
        """The fast graph's output where it is what the call asks for, else as usual."""
        if self.fast is not None and _same_pooled(representation, self.spec, layers):
            feed = {k: v for k, v in inputs.items() if k in self._fast_inputs}
            return np.asarray(self.fast.run([POOLED_OUTPUT], feed)[0], dtype=np.float32)
        return super().pooled(inputs, representation, layers)

    def forward(
        self, inputs: dict[str, NDArray[np.int64]], layers: tuple[int, ...]
    ) -> list[NDArray[np.float32]]:
        """Run the graph for ``layers`` only: ONNX Runtime computes what the outputs need."""
        names = [self.outputs.get(i, f"hidden_state_{i}") for i in layers]
        outputs = self.session.run(names, inputs)
        return [np.asarray(o, dtype=np.float32) for o in outputs]

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle as a reference: joblib workers and unpickled estimators reload the
        # (verified) artifact instead of shipping a session.
        if self.path is None or self._reload_args is None:
            raise TypeError(
                "This OnnxEncoder was built from a session, so it cannot be pickled; "
                "load it with OnnxEncoder.from_dir(path) instead."
            )
        return (_reload, (str(self.path), self._reload_args))

    def __repr__(self) -> str:
        return (
            f"OnnxEncoder(path={str(self.path)!r}, precision={self.precision!r}, "
            f"dim={self.dim}, pooling={self.representation.pooling.value!r})"
        )


def _graph_opener(
    artifact: Artifact, providers: list[str], threads: int | None
) -> Callable[[str], ort.InferenceSession]:
    """Opens one verified graph of ``artifact`` as a session; every failure says which."""

    def open_graph(file: str) -> ort.InferenceSession:
        if file not in artifact.manifest.files:  # a predictor saved with its graph only
            raise ModelLoadError(
                f"{artifact.path} keeps only the graph its model uses, not {file}, which "
                "this call needs (other layers, poolings or token features). Embed with "
                "the encoder artifact it was trained from, or save it with all_graphs=True."
            )
        try:
            graph = artifact.read(file)
            return make_session(graph, providers=providers, threads=threads)
        except (ValueError, ort.capi.onnxruntime_pybind11_state.Fail) as err:
            raise ModelLoadError(f"Cannot load {file} of {artifact.path}: {err}") from err

    return open_graph


def _same_pooled(
    representation: Representation, spec: ModelSpec, layers: tuple[int, ...] | None = None
) -> bool:
    """Whether ``representation`` pools as the fast graph does: the default, last layer."""
    if layers is None:
        n = spec.num_layers
        layers = tuple(i % (n + 1) for i in representation.layers)
    return layers == (spec.num_layers,) and representation.pooling is spec.representation.pooling


def _reload(path: str, kwargs: dict[str, Any]) -> OnnxEncoder:
    return OnnxEncoder.from_dir(path, **kwargs)
