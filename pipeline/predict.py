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
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator

import numpy as np

from features.extract import release_freed_memory
from features.text import check_encoding, decode_lines, read_sentences
from pipeline.params import run_main

log = logging.getLogger("predict")
OUTSIDE = "O"


def check_weights(head_path: str, features: dict, encoder) -> None:
    """Refuse an encoder whose weights or vocabulary differ from those the head was trained on."""
    expected, found = features.get("weights_sha256"), encoder.weights_sha256
    if found != expected:
        raise ValueError(f"{head_path}: trained on {features.get('encoder')} with weights sha256 "
                         f"{str(expected)[:12]}..., but {encoder.name} loads weights {found[:12]}...: "
                         "its features would not match; use --encoder with the encoder the head was trained on")
    if int(features.get("vocab_size", len(encoder.tokenizer))) != len(encoder.tokenizer):
        raise ValueError(f"{head_path}: trained with a vocabulary of {features['vocab_size']} pieces, "
                         f"{encoder.name} has {len(encoder.tokenizer)}")


class Tagger:
    """A trained head with the encoder settings it was trained on; ``tag`` sentences of words."""

    def __init__(self, head_path: str, params, config: dict, encoder, max_batch_tokens: int = 4096):
        import jax

        from features.extract import check_layers
        from pipeline.train import model_from_config

        features = config.get("features")
        if not isinstance(features, dict) or "weights_sha256" not in features:
            raise ValueError(f"{head_path}: its config has no feature fingerprint; retrain it with this project")
        check_weights(head_path, features, encoder)
        self.encoder, self.params, self.config = encoder, params, config
        self.categories = [str(c) for c in config["categories"]]
        self.uses_features = config["input"] != "piece_ids"
        self.layers = [int(layer) for layer in features["layers"]]
        self.combine, self.pooling = features["combine"], features["pooling"]
        check_layers(encoder, self.layers, self.combine, self.pooling)
        self.bf16 = features["precision"] == "bf16"
        self.max_length, self.stride = int(features["max_length"]), int(features["stride"])
        self.max_batch_tokens = max_batch_tokens
        model = model_from_config(config)
        # One jitted function; inputs are padded to a few sizes, so it compiles a few times at most.
        self._logits = jax.jit(lambda params, inputs: model.apply({"params": params}, inputs)[0])

    @classmethod
    def load(cls, head_path: str, encoder_name: str | None = None, max_batch_tokens: int = 4096) -> "Tagger":
        """Read a head file and load the encoder it names (or ``encoder_name``), refusing other weights."""
        from features.encoder import load_encoder
        from features.extract import truncate_encoder
        from heads.checkpoint import load_head

        params, config = load_head(head_path)
        features = config.get("features") if isinstance(config.get("features"), dict) else {}
        name = encoder_name or features.get("encoder")
        if not name:
            raise ValueError(f"{head_path}: its config names no encoder; retrain it with this project")
        encoder = load_encoder(str(name))
        tagger = cls(head_path, params, config, encoder, max_batch_tokens)
        if tagger.uses_features:
            truncate_encoder(encoder, max(tagger.layers))  # after the hash check: layers above are never read
        return tagger

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """The predicted category of every word of ``sentences``."""
        from features.align import tokenize
        from features.extract import encode_windows
        from pipeline.train import baseline_inputs

        if not sentences:
            return []
        windows = tokenize(self.encoder.tokenizer, sentences, self.max_length, self.stride)
        if self.uses_features:
            # float16, as the cache stores them: the head sees what it was trained on.
            inputs = encode_windows(self.encoder, windows, self.layers, self.combine, self.pooling,
                                    self.bf16, self.max_batch_tokens).astype(np.float16)  # (W, D)
        else:
            inputs = baseline_inputs(windows.first_piece_id, self.config["vocabulary"])  # (W,)
        predicted = self._predict(inputs)
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
        return [[self.categories[i] for i in predicted[a:b]] for a, b in zip(offsets[:-1], offsets[1:])]

    def _predict(self, inputs: np.ndarray) -> np.ndarray:
        rows = len(inputs)
        size = max(256, 1 << (rows - 1).bit_length())  # a power of two: few distinct shapes to compile
        padded = np.zeros((size,) + inputs.shape[1:], inputs.dtype)
        padded[:rows] = inputs
        return np.asarray(self._logits(self.params, padded))[:rows].argmax(-1)


def entity_spans(categories: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, category) of each entity: a run of words of one category other than O."""
    from heads.metrics import categories_to_bio

    spans: list[tuple[int, int, str]] = []
    for index, tag in enumerate(categories_to_bio(categories)):
        if tag.startswith("B-"):
            spans.append((index, index + 1, tag[2:]))
        elif tag.startswith("I-"):
            start, _, category = spans[-1]
            spans[-1] = (start, index + 1, category)
    return spans


def conll_block(words: list[str], categories: list[str]) -> str:
    """``word<TAB>category`` lines of one sentence."""
    return "".join(f"{word}\t{category}\n" for word, category in zip(words, categories))


def json_record(line: str, spans: list[tuple[int, int]], words: list[str], categories: list[str]) -> dict:
    """One sentence as JSON: its text, words, categories and entities (with word and character spans)."""
    entities = [{"category": category, "start": start, "end": end,
                 "char_start": spans[start][0], "char_end": spans[end - 1][1],
                 "text": line[spans[start][0]:spans[end - 1][1]]}
                for start, end, category in entity_spans(categories)]
    return {"text": line, "words": words, "categories": categories, "entities": entities}


def chunked(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tag_lines(tagger: Tagger, lines: Iterable[str], out, as_json: bool, batch_sentences: int = 1024,
              progress=None) -> dict:
    """Tag every line holding a word and write the result to ``out``; returns line, sentence and word counts.

    ``progress`` (a tqdm bar) advances by the lines read, blank ones included.
    """
    counts = {"sentences": 0, "words": 0, "lines": 0}
    for chunk in chunked(read_sentences(lines), batch_sentences):
        chunk_lines = chunk[-1][0] - counts["lines"]
        counts["lines"] = chunk[-1][0]
        chunk = [(line, spans) for _, line, spans in chunk]
        words = [[line[a:b] for a, b in spans] for line, spans in chunk]
        predicted = tagger.tag(words)
        if as_json:
            text = "".join(json.dumps(json_record(line, spans, w, c), ensure_ascii=False) + "\n"
                           for (line, spans), w, c in zip(chunk, words, predicted))
        else:
            text = "\n".join(conll_block(w, c) for w, c in zip(words, predicted))
            text = ("\n" if counts["sentences"] else "") + text  # a blank line between sentences
        out.write(text)
        release_freed_memory()  # a long file's RSS stays flat
        counts["sentences"] += len(chunk)
        counts["words"] += sum(map(len, words))
        if progress is not None:
            progress.update(chunk_lines)
    out.flush()
    return counts


def input_lines(texts: list[str], file: str | None, encoding: str) -> Iterator[str]:
    """The lines of the TEXT arguments, then of ``file`` (``-``: stdin), decoded line by line."""
    for text in texts:
        yield from text.split("\n")
    if file is None:
        return
    if file == "-":
        yield from (line for _, _, line in decode_lines(sys.stdin.buffer, "<stdin>", encoding))
        return
    with open(file, "rb") as handle:
        yield from (line for _, _, line in decode_lines(handle, file, encoding))


def count_lines(path: str) -> int:
    """Lines in a file, for the progress bar's total (blank ones included)."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def main() -> None:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", required=True, help="a head.msgpack written by the train stage")
    parser.add_argument("text", nargs="*", help="sentences to tag (each argument one or more lines)")
    parser.add_argument("--file", default=None, help="a text file, one sentence per line ('-': stdin)")
    parser.add_argument("--encoding", default="utf-8", help="of --file and stdin")
    parser.add_argument("--json", action="store_true", help="JSON lines with entity spans")
    parser.add_argument("--encoder", default=None,
                        help="load the encoder from here instead (a local copy); its weights must match")
    parser.add_argument("--batch-sentences", type=int, default=1024, help="sentences encoded together")
    args = parser.parse_args()
    encoding = check_encoding(args.encoding)
    file = args.file if args.file is not None or args.text else "-"
    if file not in (None, "-") and not os.path.isfile(file):
        raise FileNotFoundError(f"{file}: no such file")
    tagger = Tagger.load(args.head, args.encoder)
    bar = None
    if file not in (None, "-"):
        bar = tqdm(total=count_lines(file), unit="line", desc="predict", file=sys.stderr)
    try:
        counts = tag_lines(tagger, input_lines(args.text, file, encoding), sys.stdout, args.json,
                           args.batch_sentences, bar)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        if bar is not None:
            bar.close()
    log.info("tagged %d sentences, %d words", counts["sentences"], counts["words"])


if __name__ == "__main__":
    run_main(main)
