"""Merge runs of one experiment made in separate processes into one JSON (``active_learning``: parts that ran
other strategies or seeds of one simulation).

A learning curve over seven sizes is hours on two cores; it can run a size group per process (an
experiments params file whose ``sizes`` holds the group) and be merged afterwards. The parts must
agree on everything but their sizes: the experiment, its params, the validated settings, the
protocol the curves record (bert_ner's epochs, early stopping's held-out share) and the features' fingerprint; no (model, sample, size, seed) may appear twice. The merged file records the
groups (``split_into_processes``) and the summed seconds, and the report says so.

``selection`` parts may differ in their grids (``selection_parts``, thresholds, lambdas, KL step
sizes) but must share the teachers (the same supervised validation scores) and the features; their
grid rows are united (a configuration in two parts must have the same scores), each model's choice is
made again over the united grid, and ``defaults`` (params.yaml when a part ran) are the last part's.

    python -m experiments.merge reports/experiments/learning_curve.json /tmp/lc512.json \
        --out reports/experiments/learning_curve.json
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from data.prepared_io import atomic_write_text

KEY = ("model", "sample", "size", "seed")
GRIDS = ("selection_parts", "thresholds", "lambdas", "kl_learning_rates")


def _config(row: dict) -> tuple:
    """A grid row's configuration: every key but its scores."""
    return tuple(sorted((k, v) for k, v in row.items() if not k.startswith(("validation_", "control_"))))


def _order(row: dict) -> tuple:
    """Sort key of a grid row: its configuration, None first, values compared only with their own type."""
    return tuple(
        (key, value is not None, type(value).__name__, 0 if value is None else value) for key, value in _config(row)
    )


def merge_selection(parts: list[dict], names: list[str]) -> dict:
    """One selection JSON from parts that ran different grids on the same teachers."""
    first = parts[0]
    for name, part in zip(names[1:], parts[1:]):
        for field in ("experiment", "features", "supervised"):
            if part.get(field) != first.get(field):
                raise ValueError(f"{name}: {field} differs from {names[0]}'s")
        mine = {k: v for k, v in part["params"].items() if k not in GRIDS}
        theirs = {k: v for k, v in first["params"].items() if k not in GRIDS}
        if mine != theirs:
            differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{name}: params differ from {names[0]}'s in {', '.join(differing)}")
    grids, chosen = {}, {}
    for name, part in zip(names, parts):
        for model, rows in part["grids"].items():
            united = grids.setdefault(model, {})
            for row in rows:
                earlier = united.setdefault(_config(row), row)
                if earlier != row:
                    raise ValueError(f"{name}: {model} {dict(_config(row))} scored {row}, another part {earlier}")
    for model, rows in grids.items():
        best = max(rows.values(), key=lambda row: row["validation_entity_f1"])
        controls = {p["chosen"][model].get("control_entity_f1") for p in parts if model in p["chosen"]}
        if "control_entity_f1" not in best and len(controls) == 1:  # one control for the whole grid
            best = {**best, "control_entity_f1": controls.pop()}
        chosen[model] = best
    grid_values = {
        key: sorted({value for part in parts for value in part["grid_values"].get(key, [])})
        for key in first["grid_values"]
    }
    return {
        **first,
        "seconds": round(sum(part["seconds"] for part in parts), 1),
        "params": {
            **first["params"],
            **{key: sorted({v for part in parts for v in part["params"].get(key, [])}) for key in GRIDS},
        },
        "grids": {model: sorted(rows.values(), key=_order) for model, rows in grids.items()},
        "chosen": chosen,
        "defaults": parts[-1]["defaults"],
        "grid_values": grid_values,
        "split_into_processes": [group for part in parts for group in _parts_of(part)],
    }


def _parts_of(part: dict) -> list[list[str]]:
    return part.get("split_into_processes") or [list(part["params"]["selection_parts"])]


def _groups(part: dict) -> list[list[int]]:
    return part.get("split_into_processes") or [sorted(part["params"]["sizes"])]


ACTIVE_SPLITS = ("seeds", "active_strategies", "active_full", "active_seeds", "active_full_seeds")


def merge_active(parts: list[dict], names: list[str], whole_curves: bool = False) -> dict:
    """One active_learning JSON from parts that ran other strategies or seeds with the same simulation settings:
    a (strategy, seed, labelled size) measured twice is refused; complete only if every part is.

    With ``whole_curves``, a (strategy, seed) curve with fewer rounds than the simulation's (a process stopped
    mid-curve) is left out and listed under ``cut`` (with those the parts had cut already, less those another
    part ran whole since), and the file is complete: a short curve would otherwise narrow the equal-words range
    of every seed it is compared with."""
    first = parts[0]
    for name, part in zip(names[1:], parts[1:]):
        for field in ("experiment", "settings", "rounds", "features"):
            if part.get(field) != first.get(field):
                raise ValueError(f"{name}: {field} differs from {names[0]}'s")
    seen = {}
    for name, part in zip(names, parts):
        for run in part["runs"]:
            key = (run["strategy"], run["seed"], run["sentences"])
            if key in seen:
                raise ValueError(f"{name}: {key[0]} seed {key[1]} at {key[2]} sentences is also in {seen[key]}")
            seen[key] = name
    runs = [run for part in parts for run in part["runs"]]
    cut = [curve for part in parts for curve in part.get("cut", [])]
    if whole_curves:
        counts = collections.Counter((run["strategy"], run["seed"]) for run in runs)
        short = {key: n for key, n in counts.items() if n < len(first["rounds"])}
        cut += [{"strategy": s, "seed": seed, "rounds": n} for (s, seed), n in sorted(short.items())]
        runs = [run for run in runs if (run["strategy"], run["seed"]) not in short]
    kept = {(run["strategy"], run["seed"]) for run in runs}
    latest = {(curve["strategy"], curve["seed"]): curve for curve in cut}  # a curve cut twice: its later attempt
    cut = [curve for key, curve in latest.items() if key not in kept]
    return {
        **{key: value for key, value in first.items() if key != "cut"},
        "seconds": round(sum(part["seconds"] for part in parts), 1),
        "params": {
            **first["params"],
            **{key: sorted({v for part in parts for v in part["params"].get(key, [])}) for key in ACTIVE_SPLITS},
        },
        "complete": whole_curves or all(part["complete"] for part in parts),
        "runs": runs,
        "split_into_processes": [
            group for part in parts for group in part.get("split_into_processes") or [_active_group(part)]
        ],
        **({"cut": cut} if cut else {}),
    }


def _active_group(part: dict) -> list[str]:
    """The (strategy, seed) runs of one process, as ``strategy:seed`` names."""
    return sorted({f"{run['strategy']}:{run['seed']}" for run in part["runs"]})


def merge(parts: list[dict], names: list[str], whole_curves: bool = False) -> dict:
    """One experiment JSON from ``parts`` (named ``names`` in errors); ``whole_curves``: see ``merge_active``."""
    first = parts[0]
    if first.get("experiment") == "selection":
        return merge_selection(parts, names)
    if first.get("experiment") == "active_learning":
        return merge_active(parts, names, whole_curves)
    for name, part in zip(names[1:], parts[1:]):
        for field in ("experiment", "settings", "features", "protocol"):
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
    parser.add_argument(
        "--whole-curves",
        action="store_true",
        help="active_learning: leave out (strategy, seed) curves a stopped process left short, listed under `cut`",
    )
    args = parser.parse_args()
    parts = [json.loads(path.read_text(encoding="utf-8")) for path in args.parts]
    try:
        merged = merge(parts, [str(path) for path in args.parts], args.whole_curves)
    except ValueError as error:
        raise SystemExit(f"experiments.merge: {error}") from None
    atomic_write_text(args.out, json.dumps(merged, indent=1))
    if "grids" in merged:
        what = f"chosen {json.dumps(merged['chosen'])}"
    elif merged["experiment"] == "active_learning":
        what = f"{len(merged['split_into_processes'])} processes, {len(merged['runs'])} rounds"
    else:
        what = f"sizes {merged['params']['sizes']}, {len(merged['runs'])} runs"
    print(f"{args.out}: {what}, {merged['seconds']:.0f} s")


if __name__ == "__main__":
    main()
