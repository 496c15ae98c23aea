"""A small mutation check (issue 20 item 7): do the tests fail when the code they cover is wrong?

Each mutant is one realistic, hand-written slip (a dropped factor, a swapped argument, a bound off by one,
a check left out) in the metrics, the losses, the CRF layer or the params schema. For each, this script
copies the repository at HEAD into a scratch clone, applies the one edit there (never in the working
tree others import), runs the test files that cover that code, and records whether they failed (the
mutant is killed) or passed (it survived). Writes bench/mutants.json.

    python bench/mutants.py [--only NAME ...] [--out bench/mutants.json]

``--only metrics: losses:`` runs those mutants and updates their rows of an existing report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS_TESTS = ["tests/test_metrics.py", "tests/test_report.py"]
LOSSES_TESTS = ["tests/test_losses.py"]
CRF_TESTS = ["tests/test_crf.py"]
SCHEMA_TESTS = ["tests/test_bad_input.py", "-k", "params or missing_keys"]

# (name, file, the exact text replaced (once), its replacement, the tests run)
MUTANTS = [
    (
        "metrics: accuracy no O over all words",
        "heads/metrics.py",
        "entity_words = true != categories.index(OUTSIDE)",
        "entity_words = np.ones(num_words, dtype=bool)",
        METRICS_TESTS,
    ),
    (
        "metrics: F1 without its factor 2",
        "heads/metrics.py",
        "f1 = _ratio(2 * precision * recall, precision + recall)",
        "f1 = _ratio(precision * recall, precision + recall)",
        METRICS_TESTS,
    ),
    (
        "metrics: precision over the true totals",
        "heads/metrics.py",
        "precision = _ratio(hits[c], pred_totals[c])",
        "precision = _ratio(hits[c], true_totals[c])",
        METRICS_TESTS,
    ),
    (
        "metrics: every predicted word its own entity",
        "heads/metrics.py",
        "        previous = category\n    return tags",
        "    return tags",
        METRICS_TESTS,
    ),
    (
        "losses: data-distribution KL reversed, KL(q || prior)",
        "heads/losses.py",
        "loss = jnp.sum(_xlogy_ratio(prior, jnp.log(q + eps)))",
        "loss = jnp.sum(_xlogy_ratio(q, jnp.log(prior + eps)))",
        LOSSES_TESTS,
    ),
    (
        "losses: confidence target not sharpened",
        "heads/losses.py",
        "sharpened = q_words**2 / (frequency + eps)",
        "sharpened = q_words / (frequency + eps)",
        LOSSES_TESTS,
    ),
    (
        "losses: cross entropy averaged over padding too",
        "heads/losses.py",
        "    weights = mask.astype(jnp.float32)\n    if class_weights",
        "    weights = jnp.ones(mask.shape, jnp.float32)\n    if class_weights",
        LOSSES_TESTS,
    ),
    (
        "losses: class weights not normalised to mean 1",
        "heads/losses.py",
        "weights[present] = counts.sum() / (present.sum() * counts[present])",
        "weights[present] = 1.0 / counts[present]",
        LOSSES_TESTS,
    ),
    (
        "losses: entropy with the wrong sign",
        "heads/losses.py",
        "per_word = -jnp.sum(jnp.exp(log_q) * log_q, axis=-1)",
        "per_word = jnp.sum(jnp.exp(log_q) * log_q, axis=-1)",
        LOSSES_TESTS,
    ),
    (
        "crf: forward pass with max for logsumexp",
        "heads/crf.py",
        "continued = jax.nn.logsumexp(alpha[:, None] + scores.transitions, axis=0)",
        "continued = jnp.max(alpha[:, None] + scores.transitions, axis=0)",
        CRF_TESTS,
    ),
    (
        "crf: I-x allowed after any entity",
        "heads/crf.py",
        "allowed = ~inside[None, :] | (entity[:, None] == entity[None, :])",
        "allowed = ~inside[None, :] | (entity[:, None] >= 0)",
        CRF_TESTS,
    ),
    (
        "crf: Viterbi back-pointers by argmin",
        "heads/crf.py",
        "jnp.argmax(candidates, axis=0)",
        "jnp.argmin(candidates, axis=0)",
        CRF_TESTS,
    ),
    (
        "crf: a sentence may start with I-x",
        "heads/crf.py",
        "jnp.where(allowed_start, start, NEG).astype(jnp.float32)",
        "jnp.asarray(start, jnp.float32)",
        CRF_TESTS,
    ),
    (
        "schema: counts may be -1",
        "features/settings.py",
        "Count = Annotated[int, Field(ge=0)]",
        "Count = Annotated[int, Field(ge=-1)]",
        SCHEMA_TESTS,
    ),
    (
        "schema: lax types (pydantic's coercion)",
        "features/settings.py",
        "strict=True, allow_inf_nan=False",
        "strict=False, allow_inf_nan=False",
        SCHEMA_TESTS,
    ),
    (
        "schema: Inf and NaN allowed",
        "features/settings.py",
        "strict=True, allow_inf_nan=False",
        "strict=True, allow_inf_nan=True",
        SCHEMA_TESTS,
    ),
    (
        "schema: a fraction may exceed 1",
        "features/settings.py",
        'Count | Annotated[float, Field(ge=0, le=1)] | Literal["all"]',
        'Count | Annotated[float, Field(ge=0)] | Literal["all"]',
        SCHEMA_TESTS,
    ),
    (
        "schema: any codec taken for a text encoding",
        "features/settings.py",
        'newline = "\\n".encode(codecs.lookup(encoding).name)',
        'newline = codecs.lookup(encoding) and b"\\n"',
        SCHEMA_TESTS,
    ),
    (
        "schema: a key given twice keeps the last (PyYAML's default)",
        "features/settings.py",
        "            if key in keys[:i]:",
        "            if False:",
        SCHEMA_TESTS,
    ),
    (
        "schema: max_length up to the encoder's limit refused (off by one)",
        "features/settings.py",
        'if self.max_length > limits.get("max_length", self.max_length):',
        'if self.max_length >= limits.get("max_length", self.max_length + 1):',
        SCHEMA_TESTS,
    ),
    (
        "schema: extract.backend not checked",
        "features/settings.py",
        '        one_of("extract", "backend", self.backend, ("local", "ray"))\n',
        "",
        SCHEMA_TESTS,
    ),
    (
        "schema: repeated seeds accepted",
        "pipeline/params.py",
        "if not valid or len(set(seeds)) < len(seeds):",
        "if not valid:",
        SCHEMA_TESTS,
    ),
    (
        "schema: head_settings merged without their keys checked",
        "heads/settings.py",
        '        if unknown:\n            raise SettingError("supervised"',
        '        if False:\n            raise SettingError("supervised"',
        SCHEMA_TESTS,
    ),
]


def run_mutant(clone: Path, file: str, old: str, new: str, tests: list[str]) -> dict:
    path = clone / file
    original = path.read_text(encoding="utf-8")
    if original.count(old) != 1:
        return {"status": "not applied", "reason": f"{old!r} occurs {original.count(old)} times in {file}"}
    path.write_text(original.replace(old, new), encoding="utf-8")
    start = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=clone,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            timeout=600,
        )
    finally:
        path.write_text(original, encoding="utf-8")
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    failed = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    return {
        "status": "killed" if result.returncode != 0 else "survived",
        "by": failed[0].split(" - ")[0] if failed else None,
        "pytest": summary,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=None, help="run only the mutants whose name holds one of these")
    parser.add_argument("--out", default=str(ROOT / "bench" / "mutants.json"))
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        clone = Path(scratch) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        for name, file, old, new, tests in MUTANTS:
            if args.only and not any(word in name for word in args.only):
                continue
            row = {"mutant": name, "file": file, **run_mutant(clone, file, old, new, tests)}
            print(f"{row['status']:>11}  {name}  ({row.get('pytest', row.get('reason'))})", flush=True)
            rows.append(row)
    if args.only and Path(args.out).exists():  # a partial run updates its rows of the last full report
        ran = {row["mutant"] for row in rows}
        earlier = json.loads(Path(args.out).read_text(encoding="utf-8"))["mutants"]
        names = [name for name, *_ in MUTANTS]
        rows = [row for row in earlier if row["mutant"] in names and row["mutant"] not in ran] + rows
        rows.sort(key=lambda row: names.index(row["mutant"]))
    killed = sum(row["status"] == "killed" for row in rows)
    applied = sum(row["status"] != "not applied" for row in rows)
    report = {
        "commit": commit,
        "score": f"{killed}/{applied}",
        "survived": [row["mutant"] for row in rows if row["status"] == "survived"],
        "mutants": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"killed {killed} of {applied}")


if __name__ == "__main__":
    main()
