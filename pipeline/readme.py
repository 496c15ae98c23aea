"""Copy the generated results into README.md (between marker comments) and docs/.

Not a DVC stage: README.md is tracked by git, DVC outputs are not. `make repro`
runs this after `dvc repro`, so the README's table is always the pipeline's.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from data.prepared import atomic_write_text


def splice(text: str, name: str, body: str) -> str:
    """Replace what stands between <!-- name:start --> and <!-- name:end -->."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> markers")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--results", default="reports/results.md")
    parser.add_argument("--plots", nargs="*", default=["reports/plots/comparison.png"])
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args()
    readme = Path(args.readme)
    text = splice(readme.read_text(encoding="utf-8"), "results",
                  Path(args.results).read_text(encoding="utf-8"))
    Path(args.docs).mkdir(exist_ok=True)
    for plot in args.plots:
        shutil.copyfile(plot, Path(args.docs) / Path(plot).name)
    atomic_write_text(readme, text)


if __name__ == "__main__":
    main()
