#!/usr/bin/env bash
# Label Studio in a venv of its own, for tests/integration/test_label_studio.py (`make setup-label-studio`).
# Its pins (Django, boto3, numpy, ...) clash with requirements.txt, so it never goes into .venv.
# Usage: tests/integration/label_studio_env.sh [VENV]   (default .venv-label-studio; PYTHON=python3.11, LABEL_STUDIO_VERSION)
# About 2 minutes and 1 GB the first time: pip install (~100 s), then one database migration (~50 s) kept as a
# template that each test run copies instead of migrating its own. Nothing is fetched but PyPI packages.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
venv="${1:-.venv-label-studio}"
python="${PYTHON:-python3.11}"
version="${LABEL_STUDIO_VERSION:-1.23.2}"

installed() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))' 2>/dev/null || true
}

if [ "$(installed)" != "$version" ]; then
  command -v "$python" >/dev/null || { echo "error: $python not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # Git, and so ruff, skip the venv (python3.11's venv module does not write this file itself).
  echo '*' >"$venv/.gitignore"
  "$venv/bin/python" -m pip install --quiet "label-studio==$version"
fi

# A migrated, empty database (no user, no project): `label-studio version` migrates, then exits.
template="$venv/label-studio-template"
if [ ! -f "$template/label_studio.sqlite3" ] || [ "$template/label_studio.sqlite3" -ot "$venv/bin/label-studio" ]; then
  rm -rf "$template"
  mkdir -p "$template"
  LABEL_STUDIO_BASE_DATA_DIR="$(cd "$template" && pwd)" LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
    "$venv/bin/label-studio" version >"$template/migrate.log" 2>&1 \
    || { tail -20 "$template/migrate.log" >&2; exit 1; }
fi
echo "Label Studio $version: $venv/bin/label-studio"
