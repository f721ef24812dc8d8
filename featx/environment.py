"""What featx takes from its environment: the cache folder, the CPUs, a terminal (progress)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Protocol

# Jobs of at least this many items show a progress bar (when stderr is a terminal).
PROGRESS_MIN_ITEMS = 2048


def cache_dir() -> Path:
    """Where exported artifacts are cached: ``$FEATX_CACHE_DIR`` or ``~/.cache/featx``."""
    env = os.environ.get("FEATX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "featx"


def available_cpus() -> int:
    """Cores this process may run on (respects CPU affinity and cgroup-pinned sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def want_progress(
    show: bool | None, *, items: int | None = None, min_items: int = PROGRESS_MIN_ITEMS
) -> bool:
    """Whether to draw a progress bar: as asked, else for long jobs on a terminal.

    Args:
        show: The caller's choice; ``None`` decides by the job and the terminal.
        items: How many items the job has (None: long enough).
        min_items: Fewer items than this get no bar unless asked.
    """
    if show is not None:
        return show
    if items is not None and items < min_items:
        return False
    return sys.stderr.isatty()


class Bar(Protocol):
    """The part of a tqdm progress bar featx uses."""

    def update(self, n: int = 1) -> Any:
        """Advance by ``n`` items."""
        ...

    def close(self) -> None:
        """Finish the bar."""
        ...


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int, desc: str, unit: str = "text") -> Bar:
    """A tqdm bar when ``enabled``, else one that draws nothing (and imports nothing)."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm  # only jobs that show a bar pay for the import

    bar: Bar = tqdm(total=total, desc=desc, unit=unit)
    return bar
