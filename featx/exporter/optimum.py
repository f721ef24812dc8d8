"""optimum's ONNX exporter, with every hidden state as a graph output (``featx[optimum]``).

optimum's stock configurations export ``last_hidden_state`` only (or, for a
sentence-transformers folder, the pooled vector). featx wraps the family's own optimum
configuration so that the graph returns ``hidden_state_0`` .. ``hidden_state_N`` like
featx's torch exporter (:mod:`featx.exporter.onnx`), and the same parity gate and int8
recipe then apply. optimum-onnx's releases pin transformers below 4.58, so this exporter
runs in an environment with transformers 4.x.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from optimum.exporters.onnx import main_export
from optimum.exporters.onnx.model_patcher import ModelPatcher
from optimum.exporters.tasks import TasksManager
from transformers import AutoConfig

from featx.config import ModelSpec
from featx.encoders.torch import hidden_states

TASK = "feature-extraction"


class _HiddenStatesPatcher(ModelPatcher):
    """optimum's patcher, answering with every hidden state by featx's output names."""

    def __init__(self, config: Any, model: Any, model_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(config, model, model_kwargs)
        forward = self.orig_forward
        signature = inspect.signature(forward)

        @functools.wraps(forward)  # optimum matches the graph inputs to this signature
        def every_state(*args: Any, **kwargs: Any) -> dict[str, Any]:
            bound = signature.bind(*args, **kwargs)  # optimum passes arguments by position
            extra = {}
            for name in ("output_hidden_states", "return_dict"):
                if name in signature.parameters:
                    bound.arguments[name] = True
                else:  # newer models take them through **kwargs
                    extra[name] = True
            out = forward(*bound.args, **{**bound.kwargs, **extra})
            return {f"hidden_state_{i}": h for i, h in enumerate(hidden_states(out))}

        self.patched_forward = every_state


def _onnx_config(model_dir: Path, spec: ModelSpec) -> Any:
    """The family's optimum configuration, with featx's hidden-state outputs."""
    model_type = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["model_type"]
    constructor = TasksManager.get_exporter_config_constructor(
        "onnx", task=TASK, model_type=model_type, library_name="transformers"
    )
    base = type(constructor(AutoConfig.from_pretrained(str(model_dir))))
    n_states = spec.num_layers + 1

    class HiddenStatesConfig(base):  # type: ignore[valid-type,misc]
        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            # featx feeds these (decoders' position_ids default to 0..n-1: right padding).
            return {k: v for k, v in super().inputs.items() if k in spec.input_names}

        @property
        def outputs(self) -> dict[str, dict[int, str]]:
            axes = {0: "batch_size", 1: "sequence_length"}
            return {f"hidden_state_{i}": dict(axes) for i in range(n_states)}

        def patch_model_for_export(
            self, model: Any, model_kwargs: dict[str, Any] | None = None
        ) -> ModelPatcher:
            return _HiddenStatesPatcher(self, model, model_kwargs)

    return HiddenStatesConfig(AutoConfig.from_pretrained(str(model_dir)), task=TASK)


def export_onnx(model_dir: Path, out: Path, spec: ModelSpec, *, opset: int) -> None:
    """Export the model in ``model_dir`` to ``out`` with optimum (fp32, dynamic axes)."""
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=".optimum-"))
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter optimum uses warns while tracing (deprecation, tracer
            # notices); featx's parity gate, not a warning, says whether the graph is right.
            warnings.simplefilter("ignore")
            main_export(
                str(model_dir),
                str(work),
                task=TASK,
                opset=opset,
                custom_onnx_configs={"model": _onnx_config(model_dir, spec)},
                library_name="transformers",
                do_validation=False,  # featx's parity gate checks the graph against torch
                no_post_process=True,
            )
        os.replace(work / "model.onnx", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
