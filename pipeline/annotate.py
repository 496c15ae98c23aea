"""annotate: the annotators' labels of an active-learning selection, back into the labelled file.

    python -m pipeline.annotate import EXPORT --manifest selection/manifest.jsonl \\
        --labelled data/labelled.conll --prepared data/prepared [--format auto|labelstudio|doccano|conll]

EXPORT is Label Studio's JSON export, doccano's JSONL export or the selection's CoNLL edited by hand
(``data.annotations`` says how each is read; ``--format auto`` tells them apart by their first character).
Each sentence must be one the manifest lists, with its text unchanged, and its spans must fall on word
boundaries, carry a category of the prepared corpus and not overlap; a sentence already labelled (in the
prepared labelled split or in the labelled file) is refused too, unless ``--skip-imported`` and the file holds
it with the same tags (a later export of a selection imported in part): then it is left out. Any problem is one line naming the file and
the task, and the labelled file is left as it was: the sentences are appended only once all of them pass.
Tasks nobody answered are skipped and counted.
"""

from __future__ import annotations

import argparse

from data.annotations import FORMATS, Annotated, Imported, append_labelled, read_annotations
from data.prepared_io import read_prepared
from pipeline.params import run_main


def import_annotations(
    export: str, manifest: str, labelled: str, prepared: str, fmt: str, skip_imported: bool = False
) -> tuple[Imported, list[Annotated]]:
    """Check every sentence of ``export``, then append them all to ``labelled``; returns what the export gave and
    the sentences left out as imported before (``skip_imported``)."""
    corpus = read_prepared(prepared)
    imported = read_annotations(export, manifest, corpus.categories, fmt)
    labelled_words = {tuple(corpus.words[index]) for index in corpus.split["labelled"]}
    return imported, append_labelled(labelled, imported.annotated, labelled_words, skip_imported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("import", help="append an annotation tool's export to the labelled file")
    command.add_argument("export", help="Label Studio JSON export, doccano JSONL export or edited CoNLL")
    command.add_argument("--manifest", default="selection/manifest.jsonl", help="the selection's manifest.jsonl")
    command.add_argument("--labelled", default="data/labelled.conll", help="the labelled CoNLL file to append to")
    command.add_argument("--prepared", default="data/prepared", help="the prepared corpus (categories, split)")
    command.add_argument("--format", default="auto", choices=FORMATS, help="the export's format")
    command.add_argument(
        "--skip-imported",
        action="store_true",
        help="leave out sentences the labelled file already holds with the same tags (a later export of a "
        "selection imported in part); with other tags they are still refused",
    )
    args = parser.parse_args()
    imported, left_out = import_annotations(
        args.export, args.manifest, args.labelled, args.prepared, args.format, args.skip_imported
    )
    again = f", {len(left_out)} imported before" if args.skip_imported else ""
    added = len(imported.annotated) - len(left_out)
    print(f"imported {added} into {args.labelled}, skipped {imported.skipped} unannotated{again}")


if __name__ == "__main__":
    run_main(main)
