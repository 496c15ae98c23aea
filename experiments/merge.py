"""Merge runs of one experiment made in separate processes (over disjoint labelled sizes) into one JSON.

A learning curve over seven sizes is hours on two cores; it can run a size group per process (an
experiments params file whose ``sizes`` holds the group) and be merged afterwards. The parts must
agree on everything but their sizes: the experiment, its params, the validated settings and the
features' fingerprint; no (model, sample, size, seed) may appear twice. The merged file records the
groups (``split_into_processes``) and the summed seconds, and the report says so.

    python -m experiments.merge reports/experiments/learning_curve.json /tmp/lc512.json \
        --out reports/experiments/learning_curve.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data.prepared_io import atomic_write_text

KEY = ("model", "sample", "size", "seed")


def _groups(part: dict) -> list[list[int]]:
    return part.get("split_into_processes") or [sorted(part["params"]["sizes"])]


def merge(parts: list[dict], names: list[str]) -> dict:
    """One experiment JSON from ``parts`` (named ``names`` in errors)."""
    first = parts[0]
    for name, part in zip(names[1:], parts[1:]):
        for field in ("experiment", "settings", "features"):
            if part.get(field) != first.get(field):
                raise ValueError(f"{name}: {field} differs from {names[0]}'s")
        mine = {k: v for k, v in part["params"].items() if k != "sizes"}
        theirs = {k: v for k, v in first["params"].items() if k != "sizes"}
        if mine != theirs:
            differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{name}: params differ from {names[0]}'s in {', '.join(differing)}")
    seen = {}
    for name, part in zip(names, parts):
        for run in part["runs"]:
            key = tuple(run[k] for k in KEY)
            if key in seen:
                raise ValueError(f"{name}: run {dict(zip(KEY, key))} is also in {seen[key]}")
            seen[key] = name
    sizes = sorted({size for part in parts for size in part["params"]["sizes"]})
    return {
        **first,
        "seconds": round(sum(part["seconds"] for part in parts), 1),
        "params": {**first["params"], "sizes": sizes},
        "runs": [run for part in parts for run in part["runs"]],
        "split_into_processes": sorted((group for part in parts for group in _groups(part)), key=min),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    parts = [json.loads(path.read_text(encoding="utf-8")) for path in args.parts]
    try:
        merged = merge(parts, [str(path) for path in args.parts])
    except ValueError as error:
        raise SystemExit(f"experiments.merge: {error}") from None
    atomic_write_text(args.out, json.dumps(merged, indent=1))
    print(f"{args.out}: sizes {merged['params']['sizes']}, {len(merged['runs'])} runs, {merged['seconds']:.0f} s")


if __name__ == "__main__":
    main()
