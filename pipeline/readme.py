"""Copy the generated results into README.md (between marker comments) and docs/.

Not a DVC stage: README.md is tracked by git, DVC outputs are not. `make repro`
runs this after `dvc repro`, so the README's table is always the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
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
        lines += [
            f"| word pieces / s, {e['sentences']:,} sentences | {e['ours']['pieces_per_second']:,} "
            f"| {e['naive']['pieces_per_second']:,} (naive loop) | {e['speedup']}x |",
            f"| padded slots filled | {100 * e['ours']['padding_fill']:.0f}% "
            f"| {100 * e['naive']['padding_fill']:.0f}% | |",
            f"| fp32, length-sorted only | {e['ours_fp32']['pieces_per_second']:,} | | "
            f"{e['speedup_fp32_only_batching']}x |",
            f"| min cosine per word, bf16 vs fp32 | {e['min_cosine_bf16_vs_fp32']} | | |",
            f"| words the naive loop lost | 0 | {e['words_lost_by_naive']} | |",
            f"| peak RSS (benchmark process) | {e['peak_rss_mib']:,.0f} MiB | | |",
        ]
    if full_run.exists():
        f = json.loads(full_run.read_text(encoding="utf-8"))
        layers, pooling = f["fingerprint"]["layers"], f["fingerprint"]["pooling"]
        lines.append(
            f"| full corpus ({f['sentences']:,} sentences, {f['words']:,} words; hidden states "
            f"{', '.join(map(str, layers))}, {pooling} pooling) | {f['seconds']} s, "
            f"peak RSS {f['peak_rss_mib']:,.0f} MiB, cache {f['cache_bytes'] / 2**20:,.0f} MiB | | |"
        )
    if heads.exists():
        h = json.loads(heads.read_text(encoding="utf-8"))
        lines.append(
            f"| one head stage: {h['cached']['steps']} steps (400 CE + 80 KL rounds), JIT included "
            f"| {h['cached']['seconds']} s | {h['encoder_in_loop']['extrapolated_seconds']} s (encoder in "
            f"every step, {h['encoder_in_loop']['seconds_per_step']} s/step x {h['cached']['steps']}) "
            f"| {h['speedup']}x |"
        )
        kinds = h.get("head_kinds")
        if kinds:
            repeats = f", median of {len(kinds['mlp']['runs'])} runs" if "runs" in kinds["mlp"] else ""
            lines.append(
                f"| a BiLSTM head, the seed's 20 epochs ({kinds['bilstm']['steps']} steps), "
                f"{kinds.get('inputs', 'shape flags')}, JIT included{repeats} | {kinds['bilstm']['seconds']} s "
                f"| {kinds['mlp']['seconds']} s (the MLP head) | {kinds['bilstm_over_mlp']}x slower |"
            )
    return "\n".join(lines)


def section(markdown: str, heading_word: str) -> str | None:
    """The body of the first ``## `` section whose heading contains ``heading_word``, or None."""
    match = re.search(rf"^## [^\n]*{heading_word}[^\n]*\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    return match.group(1).strip() if match else None


def encoders_table(path: Path) -> str:
    """bench/encoders.json as a Markdown table, with the rule and the choice it made."""
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "| encoder | layers | head | shape flags | val. entity F1 | val. mean F1 | val. accuracy no O "
        "| train s / head |",
        "|---|---|---|---|---|---|---|---|",
    ]
    costs = []
    for name, entry in data["encoders"].items():
        for row in entry["grid"]:
            lines.append(
                f"| {name} | {'-'.join(map(str, row['layers']))} | {row['head']} "
                f"| {'yes' if row['shape_flags'] else 'no'} | {row['entity_f1']:.4f} | {row['mean_f1']:.4f} "
                f"| {100 * row['accuracy_no_o']:.2f}% | {row['train_seconds_per_head']} |"
            )
        costs.append(
            f"{name}: {entry['dim']}-d, {entry['words_per_second']:,.0f} words/s, full corpus about "
            f"{entry['full_corpus_seconds_estimate'] / 60:.1f} min and "
            f"{entry['full_corpus_cache_bytes'] / 2**20:,.0f} MiB of cache"
        )
    chosen = data["chosen"]
    return "\n".join(lines) + (
        f"\n\nValidation: {data['labelled_words']:,} labelled words, seeds {data['seeds']}, "
        f"{data['epochs']} epochs per head. Extraction cost (measured on the labelled split, "
        f"extrapolated to {data['corpus_words']:,} words, all hidden states kept; "
        f"other jobs shared the machine, so compare the encoders with each other, not with the Speed "
        f"section's idle-machine figures): " + "; ".join(costs) + ". "
        f"Rule: {data['rule']}. Chosen: **{chosen['encoder']}**, layers "
        f"{'-'.join(map(str, chosen['layers']))}, {chosen['head']}, shape flags "
        f"{'on' if chosen['shape_flags'] else 'off'}."
    )


def full_extraction_line(path: Path) -> str:
    """A full-corpus extraction's stats JSON (the extract stage's --stats) as one sentence."""
    data = json.loads(path.read_text(encoding="utf-8"))
    fingerprint = data["fingerprint"]
    return (
        f"Measured on the full corpus ({data['words']:,} words, `bench/{path.name}`): {fingerprint['encoder']}, "
        f"hidden states {'-'.join(map(str, fingerprint['layers']))}, {fingerprint['precision']}: "
        f"{data['seconds'] / 60:.1f} min on {data['device']}, cache {data['cache_bytes'] / 2**20:,.0f} MiB, "
        f"peak RSS {data['peak_rss_mib']:,.0f} MiB" + (f" ({data['note']})." if data.get("note") else ".")
    )


def validation_setup(data: dict) -> str:
    """The encoder, seeds and parts a bench.head_kinds.Validation run used, in words."""
    return (
        f"{data['encoder']} layers {'-'.join(map(str, data['layers']))}, seeds {data['seeds']}, "
        f"{data['train_sentences']:,} train and {data['validation_sentences']:,} validation sentences"
    )


def head_kinds_table(path: Path) -> str:
    """bench/head_kinds.json: MLP and BiLSTM heads, each trained to convergence, on validation."""
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "| head (shape flags, early stopping) | val. entity F1 | val. mean F1 | val. accuracy no O "
        "| chosen steps | train s / head |",
        "|---|---|---|---|---|---|",
    ]
    for kind, mean in data["mean"].items():
        lines.append(
            f"| {kind} | {mean['entity_f1']:.4f} | {mean['mean_f1']:.4f} | {100 * mean['accuracy_no_o']:.2f}% "
            f"| {mean['best_step']:.0f} | {mean['train_seconds']:.1f} |"
        )
    gain = data["bilstm_minus_mlp_entity_f1"]
    return "\n".join(lines) + (
        f"\n\n{validation_setup(data)}. "
        f"BiLSTM minus MLP, validation entity F1, paired by seed: {gain['mean']:+.4f} (p={gain['p_value']:.3f}). "
        f"Rule: {data['rule']}. Chosen: **{data['chosen']}**."
    )


def head_inputs_table(path: Path) -> str:
    """bench/head_inputs.json: the MLP's inputs and loss, each change against the reference, on validation."""
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "| MLP (shape flags, early stopping) | val. entity F1 | minus reference (p) | val. mean F1 "
        "| val. accuracy no O | chosen steps | train s / head |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, mean in data["mean"].items():
        gain = data["minus_reference_entity_f1"].get(name)
        versus = f"{gain['mean']:+.4f} (p={gain['p_value']:.3f})" if gain else "reference"
        lines.append(
            f"| {name.replace('_', ' ')} | {mean['entity_f1']:.4f} | {versus} | {mean['mean_f1']:.4f} "
            f"| {100 * mean['accuracy_no_o']:.2f}% | {mean['best_step']:.0f} | {mean['train_seconds']:.1f} |"
        )
    chosen = ", ".join(name.replace("_", " ") for name in data["chosen"]) or "none (the reference stays)"
    return (
        "\n".join(lines) + f"\n\n{validation_setup(data)}, paired by seed. Rule: {data['rule']}. Taken: **{chosen}**."
    )


def fresh_clone_line(path: Path) -> str:
    """bench/fresh_clone.json: make setup and make repro on a fresh clone, timed."""
    data = json.loads(path.read_text(encoding="utf-8"))
    total = data["setup_seconds"] + data["repro_seconds"]
    return (
        f"On a fresh clone ({data['machine']}, commit {data['commit']}, `bench/fresh_clone.sh`): `make setup` "
        f"{data['setup_seconds'] / 60:.1f} min, then `make repro` {data['repro_seconds'] / 60:.1f} min for its "
        f"{data['stages_run']} stages; {total / 60:.1f} min in all."
        + (f" ({data['note']}.)" if data.get("note") else "")
    )


def compute_line(runs_dir: Path) -> str:
    """Each experiment's compute time, from the seconds its JSON recorded."""
    seconds = {
        p.stem: json.loads(p.read_text(encoding="utf-8")).get("seconds", 0.0) for p in sorted(runs_dir.glob("*.json"))
    }
    return (
        "Compute measured on this kind of machine (2 cores): "
        + ", ".join(f"{name} {value / 60:.1f} min" for name, value in seconds.items())
        + f"; {sum(seconds.values()) / 60:.0f} minutes in all."
    )


def integrity_line(path: Path) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    return (
        f"| open + verify every chunk's checksum and finiteness, {data['words']:,} x {data['dim']} float16 "
        f"({'synthetic' if data.get('synthetic') else 'the corpus cache'}) | {data['open_and_verify_seconds']} s "
        f"| {data['open_seconds']} s (open only) | {data['verify_gib_per_second']} GiB/s |"
    )


def ray_full_corpus_line(path: Path) -> str:
    """bench/ray_full_corpus.json: the Ray backend's full-corpus cache and head against the local backend's."""
    data = json.loads(path.read_text(encoding="utf-8"))
    cache, metrics = data["cache"], data["metrics"]
    same = [name for name in ("offsets", "piece_ids", "fingerprint") if cache[f"same_{name}"]]
    return (
        f"Checked on the full corpus (`dvc exp run -S extract.backend=ray`, {cache['words']:,} words x "
        f"{cache['dim']}): the Ray cache differs from the local one by at most {cache['max_abs_difference']:g} "
        f"(min cosine per word {cache['min_cosine_per_word']:.7f}), with the same {', '.join(same)}; "
        f"{data['model']} seed {data['seed']} trained on it is "
        f"{'byte-identical to' if data['head_bytes_identical'] else 'a different file from'} the local head, "
        f"entity F1 {metrics['ray']['entity_f1']:.4f} vs {metrics['local']['entity_f1']:.4f} (largest metric "
        f"difference {data['largest_metric_difference']:g}; `bench/ray_full_corpus.json`)."
    )


def splice_file(text: str, name: str, path: Path, render) -> str:
    """Splice ``render(path)`` into block ``name``; a missing source file leaves the block as it is."""
    if not path.exists():
        print(f"readme: {path} not found: block '{name}' left as it is", file=sys.stderr)
        return text
    return splice(text, name, render(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--results", default="reports/results.md")
    parser.add_argument("--plots", nargs="*", default=["reports/plots/comparison.png"])
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args()
    readme = Path(args.readme)
    docs = Path(args.docs)
    docs.mkdir(exist_ok=True)
    # The experiments report is a DVC output (git-ignored); a copy in docs/ is what the README links.
    experiments = Path("reports/experiments.md")
    if experiments.exists():
        shutil.copyfile(experiments, docs / "experiments.md")
        plots = docs / "experiments" / "plots"
        plots.mkdir(parents=True, exist_ok=True)
        for plot in Path("reports/experiments/plots").glob("*.png"):
            shutil.copyfile(plot, plots / plot.name)
    for plot in args.plots:
        if Path(plot).exists():
            shutil.copyfile(plot, docs / Path(plot).name)
    text = readme.read_text(encoding="utf-8")
    text = splice_file(text, "results", Path(args.results), lambda p: p.read_text(encoding="utf-8"))
    text = splice_file(
        text,
        "findings",
        docs / "experiments.md",
        lambda p: (
            section(p.read_text(encoding="utf-8"), "Recommendation")
            or "(the experiments report has no recommendation yet: `make experiments`)"
        ),
    )
    text = splice_file(text, "encoders", Path("bench/encoders.json"), encoders_table)
    text = splice_file(text, "fresh_clone", Path("bench/fresh_clone.json"), fresh_clone_line)
    text = splice_file(text, "mpnet_full", Path("bench/extract_full_mpnet.json"), full_extraction_line)
    text = splice_file(text, "head_kinds", Path("bench/head_kinds.json"), head_kinds_table)
    text = splice_file(text, "head_inputs", Path("bench/head_inputs.json"), head_inputs_table)
    if list(Path("reports/experiments").glob("*.json")):
        text = splice(text, "compute", compute_line(Path("reports/experiments")))
    text = splice_file(text, "probe", Path("bench/probe_layers.json"), probe_table)
    text = splice_file(text, "ray", Path("bench/ray_full_corpus.json"), ray_full_corpus_line)
    bench = bench_table(Path("bench/extraction.json"), Path("bench/heads.json"), Path("bench/extract_full.json"))
    if Path("bench/integrity.json").exists():
        bench += "\n" + integrity_line(Path("bench/integrity.json"))
    text = splice(text, "bench", bench)
    atomic_write_text(readme, text)


if __name__ == "__main__":
    main()
