"""The experiments' report: reports/experiments/*.json -> reports/experiments.md with plots.

python -m experiments.report --runs reports/experiments --out reports/experiments.md --plots reports/experiments
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data.prepared_io import atomic_write_text
from experiments.report.document import render
from pipeline.params import run_main


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__)
    parser.add_argument("--runs", default="reports/experiments")
    parser.add_argument("--out", default="reports/experiments.md")
    parser.add_argument("--plots", default="reports/experiments")
    args = parser.parse_args()
    runs_dir = Path(args.runs)
    data = {path.stem: json.loads(path.read_text()) for path in sorted(runs_dir.glob("*.json"))}
    atomic_write_text(Path(args.out), render(data, runs_dir, Path(args.plots) / "plots"))


if __name__ == "__main__":
    run_main(main)
