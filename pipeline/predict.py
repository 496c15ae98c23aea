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
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from features.text import check_encoding
from heads.tagger import Tagger, count_lines, input_lines, tag_lines
from pipeline.params import run_main

log = logging.getLogger("predict")


def main() -> None:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", required=True, help="a head.msgpack written by the train stage")
    parser.add_argument("text", nargs="*", help="sentences to tag (each argument one or more lines)")
    parser.add_argument("--file", default=None, help="a text file, one sentence per line ('-': stdin)")
    parser.add_argument("--encoding", default="utf-8", help="of --file and stdin")
    parser.add_argument("--json", action="store_true", help="JSON lines with entity spans")
    parser.add_argument(
        "--encoder", default=None, help="load the encoder from here instead (a local copy); its weights must match"
    )
    parser.add_argument("--batch-sentences", type=int, default=1024, help="sentences encoded together")
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
    tagger = Tagger.load(args.head, args.encoder)
    bar = None
    if file not in (None, "-"):
        bar = tqdm(total=count_lines(file), unit="line", desc="predict", file=sys.stderr)
    try:
        counts = tag_lines(
            tagger, input_lines(args.text, file, encoding), sys.stdout, args.json, args.batch_sentences, bar
        )
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        if bar is not None:
            bar.close()
    log.info("tagged %d sentences, %d words", counts["sentences"], counts["words"])


if __name__ == "__main__":
    run_main(main)
