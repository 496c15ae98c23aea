"""The generated blocks: each one rendered from the JSON or Markdown file a stage or a benchmark wrote.

A block is the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in a page (README.md or
docs/*.md); ``render_blocks`` renders every block whose source exists and ``splice_pages`` puts each one
into the pages that hold its markers. ``python -m pipeline.readme`` is the command that runs them.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

log = logging.getLogger("docgen")


def has_block(text: str, name: str) -> bool:
    """Whether ``text`` holds the markers of block ``name``."""
    return f"<!-- {name}:start -->" in text and f"<!-- {name}:end -->" in text


def splice(text: str, name: str, body: str) -> str:
    """Replace what stands between <!-- name:start --> and <!-- name:end -->."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> markers")
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
            for kind in ("mlp", "bilstm"):
                if f"{kind}_crf" in kinds:
                    crf, softmax = kinds[f"{kind}_crf"]["seconds"], kinds[kind]["seconds"]
                    lines.append(
                        f"| the {kind.upper() if kind == 'mlp' else 'BiLSTM'} head with a CRF output, the same "
                        f"{kinds[kind]['steps']} steps | {crf} s | {softmax} s (softmax) | {crf / softmax:.1f}x slower |"
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


def rare_categories_table(path: Path) -> str:
    """bench/rare_categories.json: the class-weighted word loss beside the CRF's, each setting against none."""
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "| word_loss / class_weight_power | val. mean F1 | minus none (p) | val. entity F1 | minus none (p) "
        "| art / eve / nat F1 | val. accuracy no O | train s / head |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["summary"].items():
        gains = row["minus_reference"]
        versus = {
            key: f"{gains[key]['mean']:+.4f} (p={gains[key]['p_value']:.3f})" if gains else "reference"
            for key in ("mean_f1", "entity_f1")
        }
        rare = " / ".join(f"{value:.2f}" for value in row["rare_f1"].values())
        label = f"**{name}**" if name == data["chosen"] else name
        lines.append(
            f"| {label} | {row['mean_f1'][0]:.4f} ± {row['mean_f1'][1]:.4f} | {versus['mean_f1']} "
            f"| {row['entity_f1'][0]:.4f} ± {row['entity_f1'][1]:.4f} | {versus['entity_f1']} | {rare} "
            f"| {100 * row['accuracy_no_o'][0]:.2f}% | {row['train_seconds'][0]:.1f} |"
        )
    return "\n".join(lines) + (
        f"\n\n{validation_setup(data)}, paired by seed. Rule: {data['rule']}. Chosen: **{data['chosen']}**."
    )


def head_quality_table(path: Path) -> str:
    """bench/head_quality.json: the output layer, word-form inputs and head kind, each against today's MLP."""
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "| head (shape flags, early stopping) | changes | val. entity F1 | minus reference (p) | val. mean F1 "
        "| val. accuracy no O | chosen steps | train s / head |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["summary"].items():
        gain = row["gain_over_reference"]
        versus = f"{gain['mean']:+.4f} (p={gain['p_value']:.3f})" if gain else "reference"
        changes = ", ".join(f"{key}: {value}" for key, value in row["changes"].items()) or "bert_ner_es's"
        (f1, f1_std), (mean_f1, _), (no_o, _) = row["entity_f1"], row["mean_f1"], row["accuracy_no_o"]
        lines.append(
            f"| {name.replace('_', ' ')} | {changes} | {f1:.4f} ± {f1_std:.4f} | {versus} | {mean_f1:.4f} "
            f"| {100 * no_o:.2f}% | {row['best_step'][0]:.0f} | {row['train_seconds'][0]:.1f} |"
        )
    return "\n".join(lines) + (
        f"\n\n{validation_setup(data)}, paired by seed. Rule: {data['rule']}. "
        f"Chosen: **{data['chosen'].replace('_', ' ')}**."
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
    """bench/integrity.json: opening and verifying a cache, as one row of the speed table."""
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


def recommendation(path: Path) -> str:
    """The experiments report's Recommendation section, or a line saying how to make it."""
    return (
        section(path.read_text(encoding="utf-8"), "Recommendation")
        or "(the experiments report has no recommendation yet: `make experiments`)"
    )


PEER_NAMES = {
    "crf": "linear-chain CRF, hand features, no encoder (sklearn-crfsuite)",
    "spacy": "spaCy NER from a blank English pipeline",
}


def peers_table(path: Path) -> str:
    """bench/peers.json: the classic peers trained on the labelled split, scored on the test split as our heads are."""
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "| peer | accuracy | accuracy no O | mean F1 | entity F1 | train s |",
        "|---|---|---|---|---|---|",
    ]
    for peer, row in data["peers"].items():
        no_o = "n/a" if row["accuracy_no_o"] is None else f"{100 * row['accuracy_no_o']:.2f}%"
        lines.append(
            f"| {PEER_NAMES.get(peer, peer)} | {100 * row['accuracy']:.2f}% | {no_o} | {row['mean_f1']:.4f} "
            f"| {row['entity_f1']:.4f} | {row['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + (
        f"\n\nOne run each (seed {data['seed']}), on the pipeline's split ({data['labelled_sentences']:,} labelled and "
        f"{data['test_sentences']:,} test sentences), scored by `heads/metrics.py` as the table above; "
        f"`python -m bench.peers` (`make peers`)."
    )


def own_data_table(paths: list[Path]) -> str:
    """bench/own_data_*.json: on users' corpora, the head chosen on validation beside the classic peers."""
    lines = [
        "| corpus | labelled / test sentences | chosen head | ours: bert_ner_es | ours: self-training "
        "| CRF peer | spaCy peer |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        ours = [data["ours"][model]["entity_f1"] for model in ("bert_ner_es", "ner_self_training")]
        peers = [data["peers"][peer]["entity_f1"] if peer in data["peers"] else None for peer in ("crf", "spacy")]
        lines.append(
            f"| `{data['train']}` | {data['labelled_sentences']:,} / {data['test_sentences']:,} | {data['chosen_head']} | "
            + " | ".join(f"{mean:.4f} ± {std:.4f}" for mean, std in ours)
            + " | "
            + " | ".join("—" if f1 is None else f"{f1:.4f}" for f1 in peers)
            + " |"
        )
    return "\n".join(lines) + (
        "\n\nEntity F1 on the corpus's own test file; ours mean ± std over 5 seeds, the peers one run each; "
        "`bash bench/own_data.sh <name> <train> <test> <text>`."
    )


def render_blocks(results: Path, experiments_report: Path, runs: Path, bench: Path) -> dict[str, str]:
    """Every block whose source file exists, by name: ``results`` is the compare stage's Markdown,
    ``experiments_report`` the experiments report, ``runs`` its runs' JSON directory, ``bench`` the
    benchmarks' figures. A missing source is logged and its block left out (the page keeps what it holds)."""
    sources = {
        "results": (results, lambda p: p.read_text(encoding="utf-8")),
        "findings": (experiments_report, recommendation),
        "encoders": (bench / "encoders.json", encoders_table),
        "fresh_clone": (bench / "fresh_clone.json", fresh_clone_line),
        "mpnet_full": (bench / "extract_full_mpnet.json", full_extraction_line),
        "head_kinds": (bench / "head_kinds.json", head_kinds_table),
        "head_inputs": (bench / "head_inputs.json", head_inputs_table),
        "head_quality": (bench / "head_quality.json", head_quality_table),
        "rare_categories": (bench / "rare_categories.json", rare_categories_table),
        "probe": (bench / "probe_layers.json", probe_table),
        "ray": (bench / "ray_full_corpus.json", ray_full_corpus_line),
        "peers": (bench / "peers.json", peers_table),
    }
    bodies = {}
    for name, (path, render) in sources.items():
        if path.exists():
            bodies[name] = render(path)
        else:
            log.warning("%s not found: block '%s' left as it is", path, name)
    own_data = sorted(bench.glob("own_data_*.json"))
    if own_data:
        bodies["own_data"] = own_data_table(own_data)
    if list(runs.glob("*.json")):
        bodies["compute"] = compute_line(runs)
    bodies["bench"] = bench_table(bench / "extraction.json", bench / "heads.json", bench / "extract_full.json")
    if (bench / "integrity.json").exists():
        bodies["bench"] += "\n" + integrity_line(bench / "integrity.json")
    return bodies


def splice_pages(pages: dict[Path, str], bodies: dict[str, str]) -> dict[Path, str]:
    """``pages`` (path -> text) with every block of ``bodies`` spliced into each page holding its markers;
    a block that no page holds is an error (its figures would be lost)."""
    pages = dict(pages)
    for name, body in bodies.items():
        holders = [path for path, text in pages.items() if has_block(text, name)]
        if not holders:
            raise ValueError(f"no page of {', '.join(map(str, pages))} holds block '{name}'")
        for path in holders:
            pages[path] = splice(pages[path], name, body)
    return pages
