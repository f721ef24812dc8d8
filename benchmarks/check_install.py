"""Installing featx beside sentence-transformers 6 changes no torch or transformers version.

In a fresh venv: ``pip install torch==2.13.0 'sentence-transformers>=6'`` (a user's current
environment), then ``pip install -e '<repo>[export,io,server]'``. Every package whose version
the second step changed is recorded; the check fails if torch or transformers is among them.

    python benchmarks/check_install.py            # appends to results/check_install.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from common import add_out_arg

REPO = Path(__file__).resolve().parents[1]
WATCHED = ("torch", "transformers")


def _freeze(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {p["name"].lower(): p["version"] for p in json.loads(out.stdout)}


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "-q", *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="export,io,server")
    add_out_arg(parser, "check_install")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="featx-install-") as tmp:
        venv.create(tmp, with_pip=True)
        python = Path(tmp) / "bin" / "python"
        _pip(python, "torch==2.13.0", "sentence-transformers>=6")
        before = _freeze(python)
        _pip(python, "-e", f"{REPO}[{args.extras}]")
        after = _freeze(python)
    changed = {
        name: [before[name], after.get(name)] for name in before if after.get(name) != before[name]
    }
    record = {
        "script": "check_install",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "preinstalled": "torch==2.13.0 sentence-transformers>=6",
        "installed": f"-e .[{args.extras}]",
        "versions_before": {n: before.get(n) for n in (*WATCHED, "sentence-transformers")},
        "changed": changed,
        "added": sorted(set(after) - set(before)),
        "passed": not any(name in changed for name in WATCHED),
    }
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=2))
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
