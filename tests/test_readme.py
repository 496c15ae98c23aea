"""docgen/blocks.py and pipeline/readme.py: the generated blocks, the committed pages agreeing with the committed
figures, every block having a page, and a README short enough to read."""

import json
import re
from pathlib import Path

import pytest

from docgen import blocks

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Blocks whose source file is committed: the page must hold exactly what the renderer makes of it.
COMMITTED = {
    "encoders": ("bench/encoders.json", blocks.encoders_table),
    "head_kinds": ("bench/head_kinds.json", blocks.head_kinds_table),
    "head_inputs": ("bench/head_inputs.json", blocks.head_inputs_table),
    "mpnet_full": ("bench/extract_full_mpnet.json", blocks.full_extraction_line),
    "fresh_clone": ("bench/fresh_clone.json", blocks.fresh_clone_line),
    "ray": ("bench/ray_full_corpus.json", blocks.ray_full_corpus_line),
    "probe": ("bench/probe_layers.json", blocks.probe_table),
    "rare_categories": ("bench/rare_categories.json", blocks.rare_categories_table),
    "own_data": ("bench/own_data_chatbot.json", lambda path: blocks.own_data_table([path])),
}


def block(name: str) -> str:
    """The body of block ``name`` in the one page that holds it."""
    found = [
        m
        for page in PAGES
        for m in re.finditer(
            rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", page.read_text(encoding="utf-8"), re.S
        )
    ]
    assert len(found) == 1, f"{len(found)} pages hold block {name}"
    return found[0].group(1).rstrip("\n")


def test_splice_replaces_only_between_its_markers():
    text = "a\n<!-- x:start -->\nold\n<!-- x:end -->\nb <!-- y:start -->\nkeep\n<!-- y:end -->\n"
    spliced = blocks.splice(text, "x", "new\nlines\n")
    assert spliced == "a\n<!-- x:start -->\nnew\nlines\n<!-- x:end -->\nb <!-- y:start -->\nkeep\n<!-- y:end -->\n"
    with pytest.raises(ValueError, match="no <!-- z:start -->"):
        blocks.splice(text, "z", "body")


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_blocks_are_what_the_committed_figures_make(name):
    source, render = COMMITTED[name]
    path = ROOT / source
    if not path.exists():
        pytest.skip(f"{source} not written yet")
    assert block(name) == render(path).rstrip("\n")


def test_every_rendered_block_has_a_page_and_only_blocks_change(tmp_path):
    """render_blocks on every kind of source, spliced into the committed pages: no block without a page, and
    outside the markers the pages stay as they are."""
    (tmp_path / "results.md").write_text("## Results on the test split\n\nRESULTS\n")
    (tmp_path / "experiments.md").write_text("# E\n\n## Recommendation\n\nRECOMMENDATION\n\n## 1. Curve\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "learning_curve.json").write_text(json.dumps({"seconds": 600}))
    bodies = blocks.render_blocks(
        tmp_path / "results.md", tmp_path / "experiments.md", tmp_path / "runs", ROOT / "bench"
    )
    assert {"results", "findings", "compute", "bench"} | set(COMMITTED) <= set(bodies)
    assert bodies["findings"] == "RECOMMENDATION" and "learning_curve 10.0 min" in bodies["compute"]
    pages = {page: page.read_text(encoding="utf-8") for page in PAGES}
    spliced = blocks.splice_pages(pages, bodies)
    marker = re.compile(r"<!-- (\w+):start -->\n.*?<!-- \1:end -->", re.S)
    for page, text in pages.items():
        assert marker.sub("", spliced[page]) == marker.sub("", text), page
    assert "RESULTS" in spliced[ROOT / "docs" / "results.md"]
    with pytest.raises(ValueError, match="holds block 'orphan'"):
        blocks.splice_pages(pages, {"orphan": "text"})


def test_readme_is_short_and_says_the_two_commands_and_own_data_first():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, len(lines)
    text = "\n".join(lines)
    assert "make repro" in text and "make test" in text
    assert text.index("(docs/own-data.md)") < text.index("## Layout")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_to_files_and_headings(page):
    text = page.read_text(encoding="utf-8")
    for target, anchor in re.findall(r"\]\(([^)#\s]+)(?:#([^)]*))?\)", text):
        if re.match(r"\w+://", target):
            continue
        assert (page.parent / target).exists(), f"{page.name} links {target}, which does not exist"
        if anchor:
            assert anchor in anchors(page.parent / target), f"{page.name} links {target}#{anchor}: no such heading"


def test_fresh_clone_line_adds_setup_and_repro(tmp_path):
    path = tmp_path / "fresh.json"
    path.write_text(
        json.dumps(
            {"commit": "abc", "setup_seconds": 120, "repro_seconds": 600, "stages_run": 28, "machine": "2 cores"}
        )
    )
    line = blocks.fresh_clone_line(path)
    assert "`make setup` 2.0 min" in line and "`make repro` 10.0 min" in line and "12.0 min in all" in line
