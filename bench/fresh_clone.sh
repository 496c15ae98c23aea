#!/usr/bin/env bash
# The README's `make repro` on a fresh clone, timed: clone HEAD into a temp directory, `make setup`, then
# `make repro`; writes bench/fresh_clone.json (seconds of each, the commit, the pipeline's stage count).
#     bash bench/fresh_clone.sh [workdir]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
rm -rf "$work/clone" && git clone -q "$repo" "$work/clone" && cd "$work/clone"
# The corpus the Makefile would copy from ../shared, from this checkout instead (the clone has no ../shared).
if [ -f "$repo/data/raw/ner_dataset.csv.zip" ]; then mkdir -p data/raw && cp "$repo/data/raw/ner_dataset.csv.zip" data/raw/; fi
start=$(date +%s); make setup > "$work/setup.log" 2>&1; setup=$(( $(date +%s) - start ))
start=$(date +%s); make repro > "$work/repro.log" 2>&1; repro=$(( $(date +%s) - start ))
stages=$(grep -c "^Running stage" "$work/repro.log" || true)
cat > "$repo/bench/fresh_clone.json" <<JSON
{
  "commit": "$(git rev-parse --short HEAD)",
  "setup_seconds": $setup,
  "repro_seconds": $repro,
  "stages_run": $stages,
  "machine": "$(nproc) cores"
}
JSON
cat "$repo/bench/fresh_clone.json"
