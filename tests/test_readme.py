"""pipeline/readme.py: the README's generated blocks, and the committed README agreeing with the committed figures."""

import json
import re
from pathlib import Path

import pytest

from pipeline import readme

ROOT = Path(__file__).resolve().parents[1]

# Blocks whose source file is committed: the README must hold exactly what the renderer makes of it.
COMMITTED = {
    "encoders": ("bench/encoders.json", readme.encoders_table),
    "head_kinds": ("bench/head_kinds.json", readme.head_kinds_table),
    "head_inputs": ("bench/head_inputs.json", readme.head_inputs_table),
    "mpnet_full": ("bench/extract_full_mpnet.json", readme.full_extraction_line),
    "fresh_clone": ("bench/fresh_clone.json", readme.fresh_clone_line),
    "ray": ("bench/ray_full_corpus.json", readme.ray_full_corpus_line),
    "probe": ("bench/probe_layers.json", readme.probe_table),
}


def block(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"README.md lacks block {name}"
    return match.group(1).rstrip("\n")


def test_splice_replaces_only_between_its_markers():
    text = "a\n<!-- x:start -->\nold\n<!-- x:end -->\nb <!-- y:start -->\nkeep\n<!-- y:end -->\n"
    spliced = readme.splice(text, "x", "new\nlines\n")
    assert spliced == "a\n<!-- x:start -->\nnew\nlines\n<!-- x:end -->\nb <!-- y:start -->\nkeep\n<!-- y:end -->\n"
    with pytest.raises(ValueError, match="no <!-- z:start -->"):
        readme.splice(text, "z", "body")


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_readme_blocks_are_what_the_committed_figures_make(name):
    source, render = COMMITTED[name]
    path = ROOT / source
    if not path.exists():
        pytest.skip(f"{source} not written yet")
    assert block((ROOT / "README.md").read_text(encoding="utf-8"), name) == render(path).rstrip("\n")


def test_fresh_clone_line_adds_setup_and_repro(tmp_path):
    path = tmp_path / "fresh.json"
    path.write_text(
        json.dumps(
            {"commit": "abc", "setup_seconds": 120, "repro_seconds": 600, "stages_run": 28, "machine": "2 cores"}
        )
    )
    line = readme.fresh_clone_line(path)
    assert "`make setup` 2.0 min" in line and "`make repro` 10.0 min" in line and "12.0 min in all" in line
