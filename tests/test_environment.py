"""The CPUs featx takes from its environment: the affinity mask, capped by a cgroup quota."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from featx import environment
from featx.environment import available_cpus, cgroup_cpu_quota


def _tree(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "sys-fs-cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "cgroup").write_text(proc)
    return tmp_path / "cgroup", root


def test_a_v2_quota_is_the_tightest_along_the_path(tmp_path):
    proc, root = _tree(
        tmp_path,
        "0::/docker/abc\n",
        {"docker/abc/cpu.max": "max 100000\n", "docker/cpu.max": "150000 100000\n"},
    )
    assert cgroup_cpu_quota(proc, root) == 1.5
    (root / "docker" / "abc" / "cpu.max").write_text("50000 100000\n")
    assert cgroup_cpu_quota(proc, root) == 0.5


def test_a_v1_quota_and_no_quota(tmp_path):
    proc, root = _tree(
        tmp_path,
        "4:memory:/x\n3:cpu,cpuacct:/x\n",
        {"cpu,cpuacct/x/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/x/cpu.cfs_period_us": "100000"},
    )
    assert cgroup_cpu_quota(proc, root) == 3.0
    (root / "cpu,cpuacct" / "x" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert cgroup_cpu_quota(proc, root) is None
    assert cgroup_cpu_quota(tmp_path / "missing", root) is None


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only")
def test_threads_are_whole_cores_of_the_quota_within_the_mask(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(environment, "cgroup_cpu_quota", lambda: None)
    assert available_cpus() == cores
    monkeypatch.setattr(environment, "cgroup_cpu_quota", lambda: 1.5)
    assert available_cpus() == 1  # a fraction of a core is throttling, not a thread
    monkeypatch.setattr(environment, "cgroup_cpu_quota", lambda: 0.2)
    assert available_cpus() == 1
    monkeypatch.setattr(environment, "cgroup_cpu_quota", lambda: 1000.0)
    assert available_cpus() == cores


def test_without_a_bar_long_work_reports_progress_in_the_log(monkeypatch, caplog):
    # Finding: a 7.5-minute training wrote nothing to a log until it finished.
    monkeypatch.setattr(environment, "PROGRESS_LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="featx.progress"):
        bar = environment.progress_bar(False, 4, "epoch 1/3", unit="batch")
        bar.update(1)
        bar.set_postfix(loss="0.6931")
        bar.update(3)
        bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "featx.progress"]
    assert lines[0].startswith("epoch 1/3: 1/4 batches (25 %)")
    assert lines[-1].startswith("epoch 1/3: 4/4 batches (100 %)") and "loss=0.6931" in lines[-1]
    monkeypatch.setattr(environment, "PROGRESS_LOG_EVERY_S", 3600.0)
    with caplog.at_level(logging.INFO, logger="featx.progress"):
        caplog.clear()
        quick = environment.progress_bar(False, 4, "quick")
        quick.update(4)
        quick.close()
    assert not caplog.records  # a short job says nothing
