"""Tag new text with a trained head: one sentence per line in, one category per word out.

    python -m pipeline.predict --head models/bert_ner/seed0/head.msgpack "book a flight to Lisbon on Friday"
    python -m pipeline.predict --head models/bert_ner/seed0/head.msgpack --file messages.txt --json
    echo "is the Luma lamp available in Porto?" | python -m pipeline.predict --head ...

Lines are split into words by ``features.text.tokenize_line`` (the rule the
unlabelled text uses); blank lines hold no words and give no output. The
encoder, its layers, pooling, precision and window come from the head's saved
feature fingerprint; the loaded weights must hash to the fingerprint's
sha256, else the head is refused (its features would mean nothing to it).

Output (stdout): ``word<TAB>category`` per line with a blank line between
sentences (CoNLL), or with ``--json`` one JSON object per sentence: ``text``,
``words``, ``categories`` and ``entities``, where consecutive words of the
same category other than ``O`` form one entity (``start``/``end`` are word
indices, end exclusive; ``char_start``/``char_end`` index the line).

All or nothing: the whole input (arguments, file or stdin) is decoded before
the first line is written, so an undecodable line anywhere leaves no output;
with ``--out`` the output appears there only once complete.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from features.text import check_encoding
from heads.tagger import Tagger, input_lines, tag_lines
from pipeline.params import run_main

log = logging.getLogger("predict")


def checked_input(texts: list[str], file: str | None, encoding: str):
    """The input's lines, every one decoded first (ValueError naming the argument or file:line), and how many
    lines the file holds (None without a file): a bad byte at line 1,201 is refused before line 1 is tagged."""
    for number, text in enumerate(texts, start=1):
        bad = next((i for i, c in enumerate(text) if "\udc80" <= c <= "\udcff"), None)  # undecodable argv bytes
        if bad is not None:
            raise ValueError(
                f"argument {number}: byte 0x{ord(text[bad]) - 0xDC00:02x} at character {bad + 1} is not UTF-8"
            )
    if file == "-":  # stdin cannot be read twice: decoded into memory
        return list(input_lines(texts, file, encoding)), None
    if file is None:
        return input_lines(texts, None, encoding), None
    total = sum(1 for _ in input_lines([], file, encoding))  # a first pass decodes the whole file
    return input_lines(texts, file, encoding), total


@contextlib.contextmanager
def output(path: str | None):
    """stdout, or a file at ``path`` that appears (replacing any old one) only once completely written."""
    if path is None:
        yield sys.stdout
        return
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def main() -> None:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", required=True, help="a head.msgpack written by the train stage")
    parser.add_argument("text", nargs="*", help="sentences to tag (each argument one or more lines)")
    parser.add_argument("--file", default=None, help="a text file, one sentence per line ('-': stdin)")
    parser.add_argument("--encoding", default="utf-8", help="of --file and stdin")
    parser.add_argument("--json", action="store_true", help="JSON lines with entity spans")
    parser.add_argument("--out", default=None, help="write here (complete or not at all) instead of stdout")
    parser.add_argument(
        "--encoder", default=None, help="load the encoder from here instead (a local copy); its weights must match"
    )
    parser.add_argument("--batch-sentences", type=int, default=1024, help="sentences encoded together")
    parser.add_argument(
        "--int8", action="store_true", help="the encoder in int8: faster, tags a little off (docs/serve.md)"
    )
    args = parser.parse_args()
    encoding = check_encoding(args.encoding, "--encoding")
    if args.batch_sentences < 1:
        raise ValueError(f"--batch-sentences {args.batch_sentences}: give a positive number of sentences")
    if os.path.isdir(args.head):
        raise ValueError(f"{args.head}: is a directory; --head takes a head.msgpack written by the train stage")
    if not os.path.isfile(args.head):
        raise FileNotFoundError(f"{args.head}: no such head file")
    file = args.file if args.file is not None or args.text else "-"
    if file not in (None, "-") and os.path.isdir(file):
        raise ValueError(f"{file}: is a directory; --file takes a text file, one sentence per line")
    if file not in (None, "-") and not os.path.isfile(file):
        raise FileNotFoundError(f"{file}: no such file")
    lines, total = checked_input(args.text, file, encoding)
    tagger = Tagger.load(args.head, args.encoder, int8=args.int8)
    bar = None if total is None else tqdm(total=total, unit="line", desc="predict", file=sys.stderr)
    try:
        with output(args.out) as out:
            counts = tag_lines(tagger, lines, out, args.json, args.batch_sentences, bar)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        if bar is not None:
            bar.close()
    log.info("tagged %d sentences, %d words", counts["sentences"], counts["words"])


if __name__ == "__main__":
    run_main(main)
