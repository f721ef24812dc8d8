"""What featx takes from its environment: the cache folder, the CPUs, a terminal (progress)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol

# Jobs of at least this many items show a progress bar (when stderr is a terminal).
PROGRESS_MIN_ITEMS = 2048
# Without a bar, progress goes to this logger (INFO) at most this often: a job writing to
# a log file says how far it is, without a line per batch.
PROGRESS_LOG_EVERY_S = 30.0
progress_log = logging.getLogger("featx.progress")


def cache_dir() -> Path:
    """Where exported artifacts are cached: ``$FEATX_CACHE_DIR`` or ``~/.cache/featx``."""
    env = os.environ.get("FEATX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "featx"


def available_cpus() -> int:
    """Cores this process may really use: its affinity mask, capped by a cgroup CPU quota.

    A container limited with ``--cpus 2`` on a 64-core host still sees 64 cores in its
    affinity mask; 64 ONNX Runtime threads sharing two cores' worth of quota are throttled
    in the middle of every matrix product, which stalls all of them at the next barrier.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    # Whole cores only: a thread on a fraction of a core is the throttling above.
    return cores if quota is None else max(1, min(cores, math.floor(quota)))


def cgroup_cpu_quota(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The tightest CPU quota (in cores) of this process's cgroup and its parents, if any.

    Reads cgroup v2 ``cpu.max`` ("max 100000" or "200000 100000") along the path
    ``/proc/self/cgroup`` names, and cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``.
    """
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            folders = [root / path.lstrip("/"), *(root / path.lstrip("/")).parents]
            quotas += [_v2_quota(f / "cpu.max") for f in folders if f.is_relative_to(root)]
        elif "cpu" in controllers.split(","):
            base = root / controllers
            if not base.is_dir():
                base = root / "cpu,cpuacct"
            folder = base / path.lstrip("/")
            quotas += [_v1_quota(f) for f in [folder, *folder.parents] if f.is_relative_to(base)]
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _v2_quota(file: Path) -> float | None:
    try:
        quota, period = file.read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
        period = int((folder / "cpu.cfs_period_us").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


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

    def set_postfix(self, **values: Any) -> Any:
        """Show ``values`` (a loss, a learning rate) after the count."""
        ...

    def close(self) -> None:
        """Finish the bar."""
        ...


class _LogBar:
    """Progress as log lines where no bar is drawn: every 30 s at most, and a last one."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0
        self.postfix = ""
        self.started = self.logged = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        if time.monotonic() - self.logged >= PROGRESS_LOG_EVERY_S:
            self._log()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.logged > self.started:  # long enough to have said something: say the end
            self._log()

    def _log(self) -> None:
        self.logged = time.monotonic()
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        plural = self.unit + ("es" if self.unit.endswith(("s", "ch")) else "s")
        progress_log.info(
            "%s: %d/%d %s%s, %.0f s%s",
            self.desc,
            self.done,
            self.total,
            plural,
            share,
            self.logged - self.started,
            f", {self.postfix}" if self.postfix else "",
        )


def progress_bar(enabled: bool, total: int, desc: str, unit: str = "text") -> Bar:
    """A tqdm bar when ``enabled``, else progress in the ``featx.progress`` log (INFO)."""
    if not enabled:
        return _LogBar(total, desc, unit)
    from tqdm.auto import tqdm  # only jobs that show a bar pay for the import

    bar: Bar = tqdm(total=total, desc=desc, unit=unit)
    return bar
