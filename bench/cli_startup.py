"""Benchmark: how long ``writeback --help`` takes to answer, start to exit.

The command line imports its heavy modules (SQLAlchemy, Celery, the CRM
clients) inside the commands that need them, so asking for help, or for a
usage error's one line, does not pay for them. Each run is a fresh Python
process, as a user's shell starts it.

Usage::

    .venv/bin/python bench/cli_startup.py [--runs 20] [--tree PATH] [--json]

``--tree`` times another checkout's code (its ``worker`` package first on
``PYTHONPATH``), e.g. a worktree of an older revision; ``bench/compare.py
startup`` does that side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
# What the console script does, without the script wrapper: works for the package and the old module alike.
_HELP = "import sys; from worker.cli import main; sys.exit(main(['--help']))"


def time_help(tree: Path, runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _HELP], cwd=tree, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0 or "usage: writeback" not in done.stdout:
            raise SystemExit(f"`writeback --help` failed in {tree}:\n{done.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tree", type=Path, default=HERE, help="the checkout whose code is timed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times = sorted(time_help(args.tree.resolve(), args.runs))
    figures = {"median_s": round(statistics.median(times), 4),
               "p95_s": round(times[max(0, round(len(times) * 0.95) - 1)], 4), "runs": args.runs}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"writeback --help, {args.runs} fresh processes: median {figures['median_s'] * 1000:.0f} ms, "
              f"p95 {figures['p95_s'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
