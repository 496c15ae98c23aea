#!/usr/bin/env bash
# The README's `make repro` on a fresh clone, timed: clone HEAD into a temp directory, `make setup`, then
# `make repro`; writes bench/fresh_clone.json: seconds of each, the commit, the load average before and after,
# and each stage's seconds (from the time each line of dvc's output arrived), summed by kind of stage.
#     bash bench/fresh_clone.sh [workdir]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
rm -rf "$work/clone" && git clone -q "$repo" "$work/clone" && cd "$work/clone"
# The corpus the Makefile would copy from ../shared, from this checkout instead (the clone has no ../shared).
if [ -f "$repo/data/raw/ner_dataset.csv.zip" ]; then mkdir -p data/raw && cp "$repo/data/raw/ner_dataset.csv.zip" data/raw/; fi
load_before=$(cut -d' ' -f1 /proc/loadavg)
start=$(date +%s); make setup > "$work/setup.log" 2>&1; setup=$(( $(date +%s) - start ))
# Each line of make repro's output prefixed with the time it arrived (seconds since the epoch).
stamp='import sys, time
for line in sys.stdin:
    sys.stdout.write(f"{time.time():.1f} {line}")'
start=$(date +%s); make repro 2>&1 | python3 -u -c "$stamp" > "$work/repro.log"; repro=$(( $(date +%s) - start ))
load_after=$(cut -d' ' -f1 /proc/loadavg)
python3 - "$work/repro.log" "$repo/bench/fresh_clone.json" <<PY
import json, re, sys
lines = [line.split(" ", 1) for line in open(sys.argv[1], encoding="utf-8")]
starts = [(float(t), m.group(1)) for t, rest in lines if (m := re.match(r"Running stage '([^']+)'", rest))]
end = float(lines[-1][0])
stages = {name: round(later - t, 1) for (t, name), (later, _) in zip(starts, starts[1:] + [(end, None)])}
kinds = {}
for name, seconds in stages.items():
    kinds[name.split("@")[0]] = round(kinds.get(name.split("@")[0], 0.0) + seconds, 1)
report = {
    "commit": "$(git rev-parse --short HEAD)",
    "setup_seconds": $setup,
    "repro_seconds": $repro,
    "stages_run": len(stages),
    "machine": "$(nproc) cores",
    "load_average_before_after": [$load_before, $load_after],
    "seconds_by_kind": kinds,
    "stage_seconds": stages,
}
json.dump(report, open(sys.argv[2], "w"), indent=2)
PY
cat "$repo/bench/fresh_clone.json"
