"""Optional dependencies: one check, one message that says how to install what is missing."""

from __future__ import annotations

import importlib
import importlib.util

# Each extra of pyproject.toml, with the modules featx imports from it.
MODULES: dict[str, tuple[str, ...]] = {
    "export": ("torch", "transformers", "onnx"),
    "io": ("pyarrow",),
    "optimum": ("optimum.exporters.onnx",),
    "report": ("matplotlib",),
    "server": ("flask", "gunicorn", "prometheus_client", "orjson"),
    "spark": ("pyspark", "pyarrow"),
}
# torch first, and pinned: a resolver's unpinned torch is a multi-GB CUDA build.
_INSTALL = {"export": "pip install torch==2.13.0 'featx[export]'"}


def install_command(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return _INSTALL.get(extra, f"pip install 'featx[{extra}]'")


def available(extra: str) -> bool:
    """Whether every top-level package of ``extra`` is installed (found, not imported)."""
    return all(importlib.util.find_spec(m.partition(".")[0]) is not None for m in MODULES[extra])


def require(extra: str, what: str) -> None:
    """Import the modules of ``extra``, or raise an ImportError that names the fix.

    Args:
        extra: The extra's name in pyproject.toml (``export``, ``server``, ...).
        what: What needs it, for the message (``"featx.export"``).

    Raises:
        ImportError: If a module of the extra cannot be imported.
    """
    for module in MODULES[extra]:
        require_module(
            module,
            f"{what} needs {', '.join(MODULES[extra])} (the {extra!r} extra)",
            install_command(extra),
        )


def require_module(module: str, what: str, install: str) -> None:
    """Import ``module``, or raise an ImportError: ``what``, what is missing, ``install``."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what}; {module} is missing. Install it with: {install}") from err
