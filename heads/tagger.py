"""Tag new text with a trained head: the encoder the head names, its features, its categories.

``Tagger.load`` reads a head file and loads the encoder, layers, pooling,
precision and window of the head's saved feature fingerprint; the loaded
weights must hash to the fingerprint's sha256, else the head is refused (its
features would mean nothing to it). ``tag_lines`` streams lines of text
through it and writes CoNLL or JSON lines.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator

import numpy as np

from features.extract import release_freed_memory
from features.inputs import head_inputs
from features.text import decode_lines, read_sentences
from heads.batches import sentence_starts
from heads.build import model_from_config
from heads.checkpoint import head_centroids, load_head
from heads.metrics import categories_to_bio
from heads.predict import predict_categories, predict_padded
from heads.settings import HeadParams


def check_weights(head_path: str, features: dict, encoder) -> None:
    """Refuse an encoder whose weights or vocabulary differ from those the head was trained on."""
    expected, found = features.get("weights_sha256"), encoder.weights_sha256
    if found != expected:
        raise ValueError(
            f"{head_path}: trained on {features.get('encoder')} with weights sha256 "
            f"{str(expected)[:12]}..., but {encoder.name} loads weights {found[:12]}...: "
            "its features would not match; use --encoder with the encoder the head was trained on"
        )
    if int(features.get("vocab_size", len(encoder.tokenizer))) != len(encoder.tokenizer):
        raise ValueError(
            f"{head_path}: trained with a vocabulary of {features['vocab_size']} pieces, "
            f"{encoder.name} has {len(encoder.tokenizer)}"
        )


class Tagger:
    """A trained head with the encoder settings it was trained on; ``tag`` sentences of words."""

    def __init__(self, head_path: str, params, config: dict, encoder, max_batch_tokens: int = 4096):
        from features.extract import check_layers
        from features.packing import packs

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
        self.heads = HeadParams(**config["heads"])
        self.centroids = head_centroids(config, head_path)  # heads.clusters: new words go to the same clusters
        self.model = model_from_config(config)
        self.packed = packs(encoder)  # windows packed into rows (features.packing): predict's and the server's path
        self.int8 = False  # the encoder's linear layers quantized to int8 (``load(..., int8=True)``)

    @classmethod
    def load(
        cls, head_path: str, encoder_name: str | None = None, max_batch_tokens: int = 4096, int8: bool = False
    ) -> Tagger:
        """Read a head file and load the encoder it names (or ``encoder_name``), refusing other weights.

        ``int8``: the encoder's linear layers quantized to int8 after the weights check
        (``features.packing.quantize_linear_int8``): faster on a CPU without bf16, features a little off.
        """
        from features.encoder import load_encoder
        from features.extract import truncate_encoder
        from features.packing import cast_linear_weights, packs, quantize_linear_int8

        params, config = load_head(head_path)
        features = config.get("features") if isinstance(config.get("features"), dict) else {}
        name = encoder_name or features.get("encoder")
        if not name:
            raise ValueError(f"{head_path}: its config names no encoder; retrain it with this project")
        encoder = load_encoder(str(name))
        tagger = cls(head_path, params, config, encoder, max_batch_tokens)
        if int8 and not tagger.uses_features:
            raise ValueError(f"{head_path}: reads piece ids, not the encoder's features: there is nothing to quantize")
        if tagger.uses_features:
            truncate_encoder(encoder, max(tagger.layers))  # after the hash check: layers above are never read
            if int8:
                encoder.model = quantize_linear_int8(encoder.model)
                tagger.bf16, tagger.int8 = False, True  # int8 weights take fp32 activations: no bf16 autocast
            elif tagger.bf16 and packs(encoder):
                cast_linear_weights(encoder.model)  # this encoder only ever runs under bf16 autocast
        return tagger

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """The predicted category of every word of ``sentences``."""
        return [categories for categories, _ in self.tag_scored(sentences)]

    def tag_scored(self, sentences: list[list[str]]) -> list[tuple[list[str], list[float]]]:
        """Per sentence, each word's predicted category and its probability (the head's score of that category)."""
        from features.align import tokenize
        from features.extract import encode_windows
        from features.packing import encode_packed

        if not sentences:
            return []
        windows = tokenize(self.encoder.tokenizer, sentences, self.max_length, self.stride)
        if self.uses_features:
            # Several windows to a row where the encoder allows it: far less padding (features.packing).
            encode = encode_packed if self.packed else encode_windows
            # float16, as the cache stores them: the head sees what it was trained on.
            inputs = encode(
                self.encoder, windows, self.layers, self.combine, self.pooling, self.bf16, self.max_batch_tokens
            ).astype(np.float16)  # (W, D)
        else:
            inputs = windows.first_piece_id  # (W,)
        inputs = np.asarray(
            head_inputs(inputs, sentences, self.heads, self.config.get("vocabulary"), self.centroids)[:]
        )
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
        predicted, scores = self._predict(inputs, sentence_starts(offsets, np.arange(len(sentences))))
        return [
            ([self.categories[i] for i in predicted[a:b]], scores[a:b].tolist())
            for a, b in zip(offsets[:-1], offsets[1:])
        ]

    def _predict(self, inputs: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each word's category id (W,) and its probability (W,) float32 (a CRF head's: its marginal)."""
        if self.model.reads_sentences:
            predicted, probabilities, _ = predict_categories(self.params, self.model, inputs, starts)
        else:
            rows = len(inputs)
            size = max(256, 1 << (rows - 1).bit_length())
            padded = np.zeros((size,) + inputs.shape[1:], inputs.dtype)
            padded[:rows] = inputs
            # Padded to a power of two: the jitted head compiles for a few shapes at most.
            probabilities, _, predicted = (
                np.asarray(out)[:rows] for out in predict_padded(self.params, self.model, padded)
            )
        return predicted, np.take_along_axis(probabilities, predicted[:, None], axis=1)[:, 0]


def entity_spans(categories: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, category) of each entity: a run of words of one category other than O."""
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
    entities = [
        {
            "category": category,
            "start": start,
            "end": end,
            "char_start": spans[start][0],
            "char_end": spans[end - 1][1],
            "text": line[spans[start][0] : spans[end - 1][1]],
        }
        for start, end, category in entity_spans(categories)
    ]
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


def tag_lines(
    tagger: Tagger, lines: Iterable[str], out, as_json: bool, batch_sentences: int = 1024, progress=None
) -> dict:
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
            text = "".join(
                json.dumps(json_record(line, spans, w, c), ensure_ascii=False) + "\n"
                for (line, spans), w, c in zip(chunk, words, predicted)
            )
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
        yield from re.split(r"\r\n|\r|\n", text)  # the line breaks a file may have, no others
    if file is None:
        return
    if file == "-":
        yield from (line for _, _, line in decode_lines(sys.stdin.buffer, "<stdin>", encoding))
        return
    with open(file, "rb") as handle:
        yield from (line for _, _, line in decode_lines(handle, file, encoding))
