"""The wheel installs one top-level package, featx (the server as featx.server), and serves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return next(out.glob("featx-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel; its dependencies come from this one's."""
    env = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", purelib, wheel],
        check=True,
        capture_output=True,
    )
    # Only the dependencies: this environment's featx is an editable install of the checkout.
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_wheel_holds_featx_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"featx"}
    assert "featx/server/__init__.py" in names and "featx/server/playground.html" in names
    assert "featx/_registry.toml" in names


def test_installed_there_is_no_top_level_server(installed: Path, tmp_path: Path) -> None:
    run = [str(installed), "-c", "import server"]
    result = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "No module named 'server'" in result.stderr
    code = "import featx, featx.server; print(featx.__file__, featx.server.__file__)"
    found = subprocess.run(
        [str(installed), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert all(str(installed.parents[1]) in path for path in found)  # from the wheel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_featx_serve_works_from_the_wheel(
    installed: Path, tiny_artifacts: dict[str, Path], tmp_path: Path
) -> None:
    port = _free_port()
    command = "from featx.cli import main; main()"
    args = ["serve", f"tiny={tiny_artifacts['bert']}", "--port", str(port)]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(installed), "-c", command, *args],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{url}/embed",
            data=json.dumps({"texts": ["a man is playing a guitar"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert body["dim"] == 32 and len(body["embeddings"]) == 1
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()  # SIGTERM: a graceful exit
