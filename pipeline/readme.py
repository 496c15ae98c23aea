"""Copy the generated figures into README.md and docs/results.md (between marker comments), and the
experiments report and plots into docs/.

Not a DVC stage: README.md and docs/ are tracked by git, DVC outputs are not. `make repro` and
`make experiments` run this after `dvc repro`, so the pages always hold the pipeline's figures.
The blocks are rendered by docgen/blocks.py.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from data.prepared_io import atomic_write_text
from docgen.blocks import render_blocks, splice_pages
from pipeline.params import run_main

log = logging.getLogger("readme")


def copy_reports(docs: Path, experiments_report: Path, experiments_plots: Path, plots: list[Path]) -> None:
    """The experiments report and plots, and the comparison plot, into ``docs`` (DVC outputs are git-ignored;
    the copies are what the pages link)."""
    docs.mkdir(exist_ok=True)
    if experiments_report.exists():
        shutil.copyfile(experiments_report, docs / "experiments.md")
        (docs / "experiments" / "plots").mkdir(parents=True, exist_ok=True)
        for plot in experiments_plots.glob("*.png"):
            shutil.copyfile(plot, docs / "experiments" / "plots" / plot.name)
    for plot in plots:
        if plot.exists():
            shutil.copyfile(plot, docs / plot.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--results", default="reports/results.md", help="the compare stage's Markdown")
    parser.add_argument("--plots", nargs="*", default=["reports/plots/comparison.png"])
    parser.add_argument("--docs", default="docs")
    parser.add_argument("--experiments", default="reports/experiments", help="the experiments' runs and plots")
    parser.add_argument("--bench", default="bench", help="the benchmarks' JSON figures")
    args = parser.parse_args()
    docs, experiments = Path(args.docs), Path(args.experiments)
    copy_reports(docs, experiments.with_suffix(".md"), experiments / "plots", [Path(p) for p in args.plots])
    bodies = render_blocks(Path(args.results), docs / "experiments.md", experiments, Path(args.bench))
    paths = [Path(args.readme), docs / "results.md"]
    pages = splice_pages({path: path.read_text(encoding="utf-8") for path in paths}, bodies)
    for path, text in pages.items():
        atomic_write_text(path, text)
    log.info("%d blocks written into %s", len(bodies), ", ".join(map(str, paths)))


if __name__ == "__main__":
    run_main(main)
