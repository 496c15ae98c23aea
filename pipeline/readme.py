"""Copy the generated results into README.md (between marker comments) and docs/.

Not a DVC stage: README.md is tracked by git, DVC outputs are not. `make repro`
runs this after `dvc repro`, so the README's table is always the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

from data.prepared_io import atomic_write_text


def splice(text: str, name: str, body: str) -> str:
    """Replace what stands between <!-- name:start --> and <!-- name:end -->."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> markers")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def probe_table(path: Path) -> str:
    """The layer probe's figures as a Markdown table."""
    probe = json.loads(path.read_text(encoding="utf-8"))
    rows = ["| hidden states | dim | validation accuracy | validation mean F1 |", "|---|---|---|---|"]
    for name, result in probe["results"].items():
        rows.append(f"| {name} | {result['dim']} | {100 * result['val_accuracy']:.2f}% | {result['val_mean_f1']:.4f} |")
    return "\n".join(rows) + f"\n\n({probe['validation_words']:,} validation words.)"


def bench_table(extraction: Path, heads: Path, full_run: Path) -> str:
    """Extraction and head-training figures, each from the JSON its script or stage wrote."""
    lines = ["| measure | ours | baseline | ratio |", "|---|---|---|---|"]
    if extraction.exists():
        e = json.loads(extraction.read_text(encoding="utf-8"))
        lines += [f"| word pieces / s, {e['sentences']:,} sentences | {e['ours']['pieces_per_second']:,} "
                  f"| {e['naive']['pieces_per_second']:,} (naive loop) | {e['speedup']}x |",
                  f"| padded slots filled | {100 * e['ours']['padding_fill']:.0f}% "
                  f"| {100 * e['naive']['padding_fill']:.0f}% | |",
                  f"| fp32, length-sorted only | {e['ours_fp32']['pieces_per_second']:,} | | "
                  f"{e['speedup_fp32_only_batching']}x |",
                  f"| min cosine per word, bf16 vs fp32 | {e['min_cosine_bf16_vs_fp32']} | | |",
                  f"| words the naive loop lost | 0 | {e['words_lost_by_naive']} | |",
                  f"| peak RSS (benchmark process) | {e['peak_rss_mib']:,.0f} MiB | | |"]
    if full_run.exists():
        f = json.loads(full_run.read_text(encoding="utf-8"))
        layers, pooling = f["fingerprint"]["layers"], f["fingerprint"]["pooling"]
        lines.append(f"| full corpus ({f['sentences']:,} sentences, {f['words']:,} words; hidden states "
                     f"{', '.join(map(str, layers))}, {pooling} pooling) | {f['seconds']} s, "
                     f"peak RSS {f['peak_rss_mib']:,.0f} MiB, cache {f['cache_bytes'] / 2**20:,.0f} MiB | | |")
    if heads.exists():
        h = json.loads(heads.read_text(encoding="utf-8"))
        lines.append(f"| one head stage: {h['cached']['steps']} steps (400 CE + 80 KL rounds), JIT included "
                     f"| {h['cached']['seconds']} s | {h['encoder_in_loop']['extrapolated_seconds']} s (encoder in "
                     f"every step, {h['encoder_in_loop']['seconds_per_step']} s/step x {h['cached']['steps']}) "
                     f"| {h['speedup']}x |")
    return "\n".join(lines)


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
    text = splice(text, "probe", probe_table(Path("bench/probe_layers.json")))
    text = splice(text, "bench", bench_table(Path("bench/extraction.json"), Path("bench/heads.json"),
                                             Path("bench/extract_full.json")))
    Path(args.docs).mkdir(exist_ok=True)
    for plot in args.plots:
        shutil.copyfile(plot, Path(args.docs) / Path(plot).name)
    # The experiments report is a DVC output (git-ignored); a copy in docs/ is what the README links.
    experiments = Path("reports/experiments.md")
    if experiments.exists():
        shutil.copyfile(experiments, Path(args.docs) / "experiments.md")
        plots = Path(args.docs) / "experiments" / "plots"
        plots.mkdir(parents=True, exist_ok=True)
        for plot in Path("reports/experiments/plots").glob("*.png"):
            shutil.copyfile(plot, plots / plot.name)
    atomic_write_text(readme, text)


if __name__ == "__main__":
    main()
