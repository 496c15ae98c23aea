"""compare stage: every metrics file (a model's seed) -> one Markdown + JSON table and a bar plot."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pipeline.params import run_main

log = logging.getLogger("compare")


def collect_runs(metrics_dir: str) -> list[dict]:
    """Every metrics/<model>/seed<k>.json, in a stable order."""
    runs = []
    for path in sorted(Path(metrics_dir).glob("*/seed*.json")):
        metrics = json.loads(path.read_text(encoding="utf-8"))
        runs.append({"model": metrics["model"], "seed": metrics["seed"], "metrics": metrics})
    if not runs:
        raise FileNotFoundError(f"{metrics_dir}: no */seed*.json metrics; run the evaluate stages")
    return runs


def main() -> None:
    from heads.report import write_report

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", default="metrics/heads")
    parser.add_argument("--models", nargs="+", required=True, help="model ids in report order")
    parser.add_argument("--markdown", default="reports/results.md")
    parser.add_argument("--json", default="reports/results.json")
    parser.add_argument("--plot", default="reports/plots/comparison.png")
    parser.add_argument("--choices", default=None, help="the train stages' choice files: metrics/choice")
    args = parser.parse_args()
    order = {model: i for i, model in enumerate(args.models)}
    runs = [run for run in collect_runs(args.metrics) if run["model"] in order]
    runs.sort(key=lambda run: (order[run["model"]], run["seed"]))
    choices = {}
    if args.choices is not None:
        for path in sorted(Path(args.choices).glob("*.json")):
            if path.stem in order:
                choices[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    write_report(runs, args.markdown, args.json, args.plot, choices)
    log.info("compared %d runs of %d models", len(runs), len({run["model"] for run in runs}))


if __name__ == "__main__":
    run_main(main)
