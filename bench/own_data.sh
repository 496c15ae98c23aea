#!/usr/bin/env bash
# Issue 19's own-data target: on a corpus of the user's (docs/own-data.md), the head chosen on validation
# (heads.kind auto) against the classic peers trained on the same labelled split and scored on the same
# test file. Clones HEAD, points params.yaml at the corpus, runs `dvc repro` up to the evaluation of
# bert_ner_es and the self-training row (5 seeds each), then bench/peers.py; writes bench/own_data_<name>.json.
#     bash bench/own_data.sh chatbot examples/chatbot/train.conll examples/chatbot/test.conll \
#         examples/chatbot/unlabelled.txt [workdir]
set -euo pipefail
name=$1 train=$2 test=$3 text=$4
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${5:-$(mktemp -d)}
rm -rf "$work/clone" && git clone -q "$repo" "$work/clone" && cd "$work/clone"
ln -s "$repo/.venv" .venv
export PATH="$PWD/.venv/bin:$PATH"
python - "$train" "$test" "$text" <<'PY'
import sys

import yaml

train, test, text = sys.argv[1:]
with open("params.yaml", encoding="utf-8") as handle:
    params = yaml.safe_load(handle)
params["prepare"].update(corpus=train, test_corpus=test, labelled_size="all")
params["unlabelled_text"].update(path=text, mode="add")
with open("params.yaml", "w", encoding="utf-8") as handle:
    yaml.safe_dump(params, handle, sort_keys=False)
PY
start=$(date +%s)
dvc repro dvc.yaml:evaluate@bert_ner_es dvc.yaml:evaluate@ner_self_training > "$work/repro.log" 2>&1
repro=$(( $(date +%s) - start ))
python -m bench.peers --prepared data/prepared --out "$work/peers.json" > "$work/peers.log" 2>&1
python -m bench.own_data --peers "$work/peers.json" --repro-seconds "$repro" --train "$train" --test "$test" \
  --out "$repo/bench/own_data_$name.json"
