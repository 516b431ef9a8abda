"""Benchmark two revisions side by side: this checkout and another commit, in one run.

Shared machines are noisy, so the two trees take turns (A B, B A, A B, ...:
neither always runs first) and the medians are compared; the ratio is this checkout's median over the base's
(below 1: faster now). The base revision is checked out into a temporary git
worktree and run with this checkout's Python environment: each benchmark
script puts its own tree first on ``sys.path`` (and ``PYTHONPATH`` carries it
to the processes a benchmark starts), so each side runs its own code.

Usage::

    .venv/bin/python bench/compare.py --base c2d58ed --rounds 5 sync      # bench/bench_sync.py --json
    .venv/bin/python bench/compare.py --base c2d58ed --rounds 3 service   # bench/bench_service.py
    .venv/bin/python bench/compare.py --base c2d58ed --rounds 3 startup   # bench/cli_startup.py

``sync`` compares every path and pass's seconds and the peak RSS;
``service`` compares the webhook → CRM latencies and the poll passes' wall
times that bench_service.py prints; ``startup`` times ``writeback --help``
in fresh processes (this checkout's cli_startup.py, on each tree's code).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).resolve().parents[1]


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """The base revision checked out in a temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bench-base-")) / "tree"
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(folder), revision],
                   check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(folder)], capture_output=True)


def run(tree: Path, script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # A script that takes --tree is this checkout's, timing the other tree's code; the others are each tree's own.
    path = HERE / "bench" / script if "--tree" in args else tree / "bench" / script
    done = subprocess.run([sys.executable, str(path), *args], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed in {tree}:\n{done.stderr[-2000:]}")
    return done.stdout


def sync_figures(output: str) -> dict[str, float]:
    results = json.loads(output)
    figures = {f"{path} {p['pass']} pass, s": p["seconds"]
               for path, passes in results["paths"].items() for p in passes}
    figures["peak RSS, MiB"] = results["peak_rss_mib"]
    return figures


_SERVICE_ROWS = {
    "webhook -> HubSpot batch update, p50 ms": r"HubSpot: POST .*?\s+\d+\s+([\d.]+)",
    "webhook -> Salesforce record holds it, p50 ms": r"Salesforce: POST .*?\s+\d+\s+([\d.]+)",
    "webhook -> ledger run finished, p50 ms": r"all: POST .*?\s+\d+\s+([\d.]+)",
}


def service_figures(output: str) -> dict[str, float]:
    figures = {name: float(re.search(pattern, output).group(1)) for name, pattern in _SERVICE_ROWS.items()}
    wall = re.search(r"wall s: poll start -> last run finished_at\s+([\d.]+)\s+([\d.]+)", output)
    figures["poll first pass, s"], figures["poll second pass, s"] = float(wall.group(1)), float(wall.group(2))
    return figures


def startup_figures(output: str) -> dict[str, float]:
    figures = json.loads(output)
    return {"writeback --help, median ms": figures["median_s"] * 1000, "p95 ms": figures["p95_s"] * 1000}


BENCHMARKS: dict[str, tuple[str, list[str], Callable[[str], dict[str, float]]]] = {
    "sync": ("bench_sync.py", ["--recordings", "200", "--json"], sync_figures),
    "service": ("bench_service.py", [], service_figures),
    "startup": ("cli_startup.py", ["--runs", "10", "--json", "--tree"], startup_figures),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("--base", required=True, help="the revision to compare with (a commit, a tag)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side, taking turns")
    args = parser.parse_args()
    script, script_args, parse = BENCHMARKS[args.benchmark]
    samples: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
    with worktree(args.base) as base:
        for number in range(args.rounds):
            order = (("base", base), ("head", HERE))
            for side, tree in order if number % 2 == 0 else order[::-1]:  # ABBA: neither side always goes first
                args_for_tree = [*script_args, str(tree)] if script_args[-1:] == ["--tree"] else script_args
                for name, value in parse(run(tree, script, *args_for_tree)).items():
                    samples[side].setdefault(name, []).append(value)
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{args.benchmark}: medians of {args.rounds} runs each, taking turns; base {args.base}, head this checkout")
    print(f"  {'measured':48} {'base':>10} {'head':>10} {'head/base':>10}")
    for name, values in samples["base"].items():
        before, after = statistics.median(values), statistics.median(samples["head"][name])
        print(f"  {name:48} {before:10.2f} {after:10.2f} {after / before if before else float('nan'):10.2f}")


if __name__ == "__main__":
    main()
