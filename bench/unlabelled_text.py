"""Unlabelled-text benchmark: peak memory and time of the extract_text stage against the file's length.

Made-up text: each line is a sentence whose length follows the corpus's
sentence lengths and whose words are drawn at random from the corpus's words
(so nothing is a real sentence). For each line count, the stage runs in its own
process on the default extract parameters; its peak RSS and timings come from
the stats it writes. The first pass alone (scan_text: count words, keep no
text) also runs on the largest file, which shows what a first pass costs per
line. The stage's RSS is also sampled twice a second, and the peak of each tenth
of its run is reported, which shows whether memory grows with the lines read.
Writes everything to a JSON file.

    python -m bench.unlabelled_text --lines 20000 100000 --scan-lines 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from data.prepared_io import atomic_write_text

SCAN_SNIPPET = """
import json, resource, sys, time
from features.text import scan_text
start = time.perf_counter()
scan = scan_text(sys.argv[1])
print(json.dumps({"lines": scan.lines, "words": scan.num_words, "seconds": round(time.perf_counter() - start, 2),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def made_up_text(path: Path, prepared: Path, lines: int, seed: int) -> None:
    """``lines`` sentences of random corpus words with corpus-like lengths, one per line."""
    rng = np.random.default_rng(seed)
    words, lengths = [], []
    with open(prepared / "sentences.jsonl", encoding="utf-8") as handle:
        for line in handle:
            sentence = json.loads(line)["words"]
            words.extend(sentence)
            lengths.append(len(sentence))
    words = np.asarray(words, dtype=object)
    with open(path, "w", encoding="utf-8") as out:
        for start in range(0, lines, 10000):
            count = min(10000, lines - start)
            sizes = rng.choice(lengths, size=count)
            picked = words[rng.integers(0, len(words), size=int(sizes.sum()))]
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            out.write("".join(" ".join(picked[a:b]) + "\n" for a, b in zip(bounds[:-1], bounds[1:])))


def run_stage(text: Path, work: Path, params_path: str) -> dict:
    params = yaml.safe_load(Path(params_path).read_text(encoding="utf-8"))
    params["unlabelled_text"] = {"path": str(text), "mode": "add", "encoding": "utf-8"}
    (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    out, stats = work / "text.h5", work / "stats.json"
    start = time.perf_counter()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.extract_text",
            "--params",
            str(work / "params.yaml"),
            "--out",
            str(out),
            "--stats",
            str(stats),
        ]
    )
    samples = sample_rss(child)
    if child.returncode != 0:
        raise SystemExit(f"extract_text failed with status {child.returncode}")
    wall = time.perf_counter() - start
    result = json.loads(stats.read_text())
    out.unlink()
    # Peak RSS in each tenth of the run: flat tenths mean memory does not grow with the lines read.
    tenths = np.minimum((samples[:, 0] / max(samples[-1, 0], 1e-9) * 10).astype(int), 9)
    by_tenth = [round(float(samples[tenths == k, 1].max()), 1) if (tenths == k).any() else None for k in range(10)]
    return {key: result[key] for key in ("lines", "sentences", "words", "seconds", "peak_rss_mib", "cache_bytes")} | {
        "wall_seconds": round(wall, 1),
        "sentences_per_second": round(result["sentences"] / result["seconds"], 1),
        "peak_rss_mib_by_tenth_of_run": by_tenth,
    }


def sample_rss(child: subprocess.Popen, every: float = 0.5) -> np.ndarray:
    """(seconds since start, RSS MiB) of ``child`` every ``every`` seconds until it exits."""
    import psutil

    process, samples, start = psutil.Process(child.pid), [], time.perf_counter()
    while child.poll() is None:
        try:
            samples.append((time.perf_counter() - start, process.memory_info().rss / 2**20))
        except psutil.Error:
            break
        time.sleep(every)
    child.wait()
    return np.asarray(samples or [(0.0, 0.0)])


def summarise(report: dict) -> None:
    """Add figures derived from the runs: memory growth late in the largest run, and its 1M-line bound."""
    runs = sorted(report["runs"], key=lambda run: run["lines"])
    if not runs:
        return
    largest = runs[-1]
    tenths = largest["peak_rss_mib_by_tenth_of_run"]
    # The first half warms caches (new batch shapes); the second half shows any growth with lines read.
    late = (tenths[9] - tenths[4]) / (largest["lines"] / 2) * 1e5
    report["late_rss_growth_mib_per_100k_lines"] = round(late, 1)
    report["linear_bound_peak_rss_mib_for_1m_lines"] = round(
        largest["peak_rss_mib"] + max(late, 0) * (1e6 - largest["lines"]) / 1e5, 1
    )
    report["estimated_hours_for_1m_lines_at_this_speed"] = round(largest["seconds"] / largest["lines"] * 1e6 / 3600, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--scan-lines", type=int, default=1000000, help="lines of the first-pass-only run")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--workdir", default=None, help="where the made-up files go (default: a temp dir)")
    parser.add_argument("--out", default="bench/unlabelled_text.json")
    parser.add_argument("--summarise-only", action="store_true", help="recompute the derived figures of --out")
    args = parser.parse_args()
    if args.summarise_only:
        report = json.loads(Path(args.out).read_text(encoding="utf-8"))
        summarise(report)
        atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-text-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"cpu_threads": os.cpu_count(), "load_average_before": round(os.getloadavg()[0], 2), "runs": []}
    for lines in args.lines:
        text = work / f"text_{lines}.txt"
        made_up_text(text, Path(args.prepared), lines, seed=lines)
        report["runs"].append(run_stage(text, work, args.params) | {"file_bytes": text.stat().st_size})
        text.unlink()
        print(json.dumps(report["runs"][-1]), file=sys.stderr)
    if args.scan_lines:
        text = work / f"text_{args.scan_lines}.txt"
        made_up_text(text, Path(args.prepared), args.scan_lines, seed=args.scan_lines)
        scan = subprocess.run(
            [sys.executable, "-c", SCAN_SNIPPET, str(text)], check=True, capture_output=True, text=True
        )
        report["first_pass"] = json.loads(scan.stdout) | {"file_bytes": text.stat().st_size}
        text.unlink()
    summarise(report)
    report["peak_rss_mib_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
