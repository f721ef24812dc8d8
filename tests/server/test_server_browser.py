"""The playground in a real browser: `featx serve` under gunicorn, then headless Chromium
loads `/?run`, which fetches /v1/models, embeds the sample texts with POST /embed and
draws the cosine-similarity heat map. Needs Debian's Chromium (`apt-get install chromium`).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real, pytest.mark.browser]

MODEL = "playground"  # a name of our own: /readyz proves the server on the port is ours
N_SAMPLES = 4  # the sample texts in server/playground.html
READY_TIMEOUT_S = 60
BROWSER_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200 and json.load(response)["models"] == [MODEL]
    except (OSError, ValueError, KeyError):  # not listening yet, or not our server
        return False


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (a graceful gunicorn shutdown), then SIGKILL to the whole process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: gunicorn and its workers
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture()
def server(real_artifact, tmp_path):
    """The base URL of `featx serve` on a free loopback port; stopped however the test ends."""
    yield from _serve(real_artifact, tmp_path)


@pytest.fixture()
def qa_server(tiny_qa_artifact, tmp_path):
    """The same, serving a (tiny) question answerer."""
    yield from _serve(tiny_qa_artifact, tmp_path)


def _serve(artifact, tmp_path):
    featx = Path(sys.executable).parent / "featx"
    assert featx.exists(), f"no featx console script next to {sys.executable}"
    log_path = tmp_path / "server.log"
    for _attempt in range(3):  # another process may take the free port before gunicorn binds
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        command = [str(featx), "serve", f"{MODEL}={artifact}", "--port", str(port)]
        # Output goes to a file, not a pipe that nobody reads and that would fill and block.
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                if _ready(url):
                    yield url
                    return
                time.sleep(0.25)
        finally:
            _stop(proc)
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
        if "Address already in use" not in log_text:
            break
    pytest.fail(
        f"`featx serve` was not ready within {READY_TIMEOUT_S} s (exit code {proc.returncode});"
        f" its log:\n{log_text[-4000:]}"
    )


class _Page(HTMLParser):
    """The model options and the heat map's cell texts, row by row, of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.models: list[str] = []
        self.rows: list[list[str]] = []
        self.status = ""
        self.heatmap = False
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "table" and attr.get("id") == "heatmap":
            self.heatmap = True
        elif tag == "tr" and self.heatmap:
            self.rows.append([])
        elif tag == "td" and attr.get("class") == "cell" and self.heatmap:
            self.rows[-1].append("")
            self._field = "cell"
        elif tag == "option":
            self.models.append(attr.get("value") or "")
        elif tag == "span" and attr.get("id") == "status":
            self._field = "status"

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.heatmap = False
        if tag in ("td", "span"):
            self._field = None

    def handle_data(self, data: str) -> None:
        if self._field == "cell":
            self.rows[-1][-1] += data
        elif self._field == "status":
            self.status += data


def _chromium_dom(url: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The DOM of ``url`` once its script ran, dumped by headless Chromium."""
    chromium = shutil.which("chromium")
    assert chromium is not None
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # Let the page's fetches and script run (virtual time) before dumping the DOM.
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False
    )


def _need_chromium() -> None:
    if shutil.which("chromium") is None:
        pytest.fail(
            "Chromium is not installed; this test needs it: `apt-get install chromium` (Debian)."
        )


def test_the_playground_draws_the_heat_map_in_chromium(request, tmp_path):
    _need_chromium()
    server = request.getfixturevalue("server")  # only now: without Chromium, fail at once
    done = _chromium_dom(f"{server}/?run", tmp_path)
    page = _Page()
    page.feed(done.stdout)
    context = f"exit code {done.returncode}; Chromium's stderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, context
    assert 'id="heatmap"' in done.stdout, f"no heat map; page status {page.status!r}; {context}"
    assert page.models == [MODEL]
    assert page.status == ""
    rows = [row for row in page.rows if row]  # the first row holds the column headers
    assert sum(len(row) for row in rows) == N_SAMPLES * N_SAMPLES
    assert [len(row) for row in rows] == [N_SAMPLES] * N_SAMPLES
    assert [rows[i][i] for i in range(N_SAMPLES)] == ["1.00"] * N_SAMPLES
    sims = [[float(cell) for cell in row] for row in rows]
    assert all(sims[i][j] == sims[j][i] for i in range(N_SAMPLES) for j in range(N_SAMPLES))
    # Samples 1 and 2 paraphrase each other (guitar); sample 3 is about the stock market.
    assert sims[0][1] > 0.8
    assert sims[0][2] < 0.3


def test_the_playground_answers_a_question_in_chromium(request, tmp_path):
    _need_chromium()
    server = request.getfixturevalue("qa_server")
    query = urllib.parse.urlencode(
        {"run": "qa", "question": "what color is the car?",
         "context": "the quick car is green and the lazy dog is slow"}
    )  # fmt: skip
    done = _chromium_dom(f"{server}/?{query}", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '<b id="qa-answer">green</b>' in done.stdout, done.stdout[-3000:]
    assert "<mark>green</mark>" in done.stdout
