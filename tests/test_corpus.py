"""Corpus readers: formats, every word surviving as written, and one-line errors."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from conftest import write_kaggle_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from data.corpus import CorpusError, read_conll, read_corpus, read_kaggle_csv
from data.split import random_split
from data.tags import category_vocabulary, validate_tags

TAGS = ["O", "B-geo", "I-geo", "B-per", "I-per"]
# Words as a corpus may hold them: no empty strings, no line breaks, Latin-1 only.
WORDS = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), min_size=1, max_size=8
).filter(lambda w: w.strip() == w and w != "")
SENTENCES = st.lists(st.lists(st.tuples(WORDS, st.sampled_from(TAGS)), min_size=1, max_size=6), min_size=1, max_size=5)
# Line endings a file may mix: Unix, Windows, a Windows file converted twice, old Mac.
ENDINGS = ["\n", "\r\n", "\r\r\n", "\r"]


@settings(max_examples=40, deadline=None)
@given(SENTENCES)
def test_kaggle_csv_roundtrip_keeps_every_word(tmp_path_factory, sentences):
    path = write_kaggle_csv(tmp_path_factory.mktemp("csv") / "c.csv", sentences)
    corpus = read_kaggle_csv(path)
    assert corpus.words == [[w for w, _ in s] for s in sentences]
    assert corpus.tags == [[t for _, t in s] for s in sentences]


@settings(max_examples=40, deadline=None)
@given(SENTENCES, st.sampled_from(["\t", " "]))
def test_conll_roundtrip(tmp_path_factory, sentences, separator):
    sentences = [[(w.replace(" ", "_").replace("\t", "_"), t) for w, t in s] for s in sentences]
    text = "\n\n".join("\n".join(f"{w}{separator}NN{separator}{t}" for w, t in s) for s in sentences)
    path = tmp_path_factory.mktemp("conll") / "c.conll"
    path.write_text(text + "\n", encoding="utf-8")
    corpus = read_conll(path)
    assert corpus.words == [[w for w, _ in s] for s in sentences]
    assert corpus.tags == [[t for _, t in s] for s in sentences]


def with_endings(lines: list[str], endings: list[str]) -> str:
    """``lines`` joined with their drawn endings; after a lone \\r a blank line also ends in \\r.

    ("\\r" then a blank line ending in "\\n" is "\\r\\n": one line break by the readers' rule, and by any
    reader's: the one mix no rule can read back.)
    """
    endings = list(endings)
    for i in range(1, len(lines)):
        if endings[i - 1] == "\r" and lines[i] == "":
            endings[i] = "\r"
    return "".join(line + ending for line, ending in zip(lines, endings))


@settings(max_examples=100, deadline=None)
@given(SENTENCES, st.sampled_from(["\t", " "]), st.data())
def test_conll_keeps_its_sentences_under_any_line_endings_and_comments(tmp_path_factory, sentences, separator, data):
    prefix = data.draw(st.sampled_from(["", "#"]), "prefix")  # '#': every word starts with '#', as in tweets
    sentences = [[(prefix + w.replace(" ", "_").replace("\t", "_"), t) for w, t in s] for s in sentences]
    lines, first_lines = [], []
    for number, sentence in enumerate(sentences, start=1):
        if data.draw(st.booleans(), "comments"):  # CoNLL-U style, before the sentence
            lines += [f"# sent_id = {number}", "# text = " + " ".join(w for w, _ in sentence)]
        first_lines.append(len(lines) + 1)
        lines += [f"{w}{separator}NN{separator}{t}" for w, t in sentence]
        lines += [""] * data.draw(st.integers(1, 2), "blank lines")
    endings = data.draw(st.lists(st.sampled_from(ENDINGS), min_size=len(lines), max_size=len(lines)), "endings")
    path = tmp_path_factory.mktemp("conll") / "c.conll"
    path.write_bytes(with_endings(lines, endings).encode("utf-8"))
    corpus = read_conll(path)
    assert corpus.words == [[w for w, _ in s] for s in sentences]
    assert corpus.tags == [[t for _, t in s] for s in sentences]
    assert corpus.first_lines == first_lines  # lines counted as an editor counts them


@settings(max_examples=60, deadline=None)
@given(SENTENCES, st.data())
def test_kaggle_csv_ids_on_first_rows_or_repeated_and_any_line_endings(tmp_path_factory, sentences, data):
    """A new ``Sentence #`` starts a sentence; an empty or repeated one (pandas' ffill export) continues it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="")
    rows = [["Sentence #", "Word", "POS", "Tag"]]
    first_lines = []
    for number, sentence in enumerate(sentences, start=1):
        first_lines.append(len(rows) + 1)
        for position, (word, tag) in enumerate(sentence):
            repeated = data.draw(st.booleans(), "repeat the id")
            rows.append([f"Sentence: {number}" if position == 0 or repeated else "", word, "NN", tag])
    lines = []
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        lines.append(buffer.getvalue())
    endings = data.draw(st.lists(st.sampled_from(ENDINGS), min_size=len(lines), max_size=len(lines)), "endings")
    path = tmp_path_factory.mktemp("csv") / "c.csv"
    path.write_bytes(with_endings(lines, endings).encode("utf-8"))
    corpus = read_corpus(path)  # encoding auto: valid UTF-8
    assert corpus.words == [[w for w, _ in s] for s in sentences]
    assert corpus.tags == [[t for _, t in s] for s in sentences]
    assert corpus.first_lines == first_lines


def test_kaggle_rows_of_a_sentence_must_be_contiguous(tmp_path):
    path = tmp_path / "sorted.csv"
    path.write_text("Sentence #,Word,POS,Tag\nS1,a,DT,O\nS2,b,NN,B-x\nS1,c,DT,O\n")
    with pytest.raises(CorpusError) as error:
        read_kaggle_csv(path)
    assert str(error.value) == (
        f"{path}:4: 'Sentence #' 'S1' already started the sentence at line 2: "
        "a sentence's rows must be contiguous (was the file sorted or shuffled?)"
    )


def read_error(path, **options) -> str:
    with pytest.raises(CorpusError) as error:
        read_corpus(path, **options)
    return str(error.value)


def test_conllu_comments_are_skipped_and_hash_words_kept(tmp_path):
    path = tmp_path / "c.conllu"
    path.write_text(
        "# newdoc id = d1\n# sent_id = 1\n# text = Ship to Porto\n"
        "1\tShip\t_\tO\n2\tto\t_\tO\n3\tPorto\t_\tB-city\n\n"
        "# sent_id = 2\n1\t#Lisbon\t_\tB-city\n"
    )
    corpus = read_corpus(path, word_column=1)
    assert corpus.words == [["Ship", "to", "Porto"], ["#Lisbon"]]
    assert corpus.first_lines == [4, 9]
    hashtags = tmp_path / "tweets.conll"
    hashtags.write_text("#Porto\tB-city\n#\tO\nrocks\tO\n\n#1 NN\n")  # the last: a comment (no tab)
    assert read_corpus(hashtags).words == [["#Porto", "#", "rocks"]]
    four_columns = tmp_path / "four.conll"  # metadata shaped like a 4-column word line is still a comment
    four_columns.write_text("# sent_id = 1\nShip NN _ O\nPorto NNP _ B-city\n\n# newdoc\n# newpar x\nhi UH _ O\n")
    assert read_corpus(four_columns).words == [["Ship", "Porto"], ["hi"]]
    hash_word = tmp_path / "hash.conll"  # the word '#', space-separated, first in its sentence
    hash_word.write_text("# SYM O\nPorto NNP B-city\n\n# newpar\n# SYM O\n")
    assert read_corpus(hash_word).words == [["#", "Porto"], ["#"]]
    only_hashes = tmp_path / "hashes.conll"  # every word starts with '#': the first non-metadata line is the layout
    only_hashes.write_text("# sent_id = 1\n# newpar\n#a NN O\n#b NN B-x\n\n# text = #c\n#c NN O\n")
    corpus = read_corpus(only_hashes)
    assert corpus.words == [["#a", "#b"], ["#c"]] and corpus.first_lines == [3, 7]


def test_comment_lines_in_the_wrong_place_or_alone(tmp_path):
    inside = tmp_path / "inside.conll"
    inside.write_text("a\tO\n# text = a b\nb\tB-x\n")
    assert read_error(inside) == (
        f"{inside}:2: a '#' line inside a sentence, not shaped like a word line: comments go before a "
        "sentence's first word (after a blank line)"
    )
    alone = tmp_path / "alone.conll"
    alone.write_text("# sent_id = 1\n\n-DOCSTART- -X- O\n# text = nothing\n")
    assert read_error(alone) == (
        f"{alone}: no sentences: every line is blank, -DOCSTART- or a '#' comment "
        "(a line starting with '#' before a sentence's first word)"
    )
    spaces = tmp_path / "spaces.conllu"
    spaces.write_text("# text = a b\n1 a O\n2 b\tB-x\n")
    assert read_error(spaces) == f"{spaces}:3: mixed tab and space separators (this line uses a tab)"


# Latin-1 words whose every non-ASCII character is a letter from U+00C0 up: their bytes are all lead
# bytes or ASCII, so no two of them form a UTF-8 sequence (the Kaggle file as shipped is such a file).
LATIN1_WORDS = st.text(alphabet=st.characters(min_codepoint=0xC0, max_codepoint=0xFF) | st.sampled_from("abcXYZ"))
LATIN1_WORDS = LATIN1_WORDS.filter(lambda w: w != "" and len(w) <= 8)


@settings(max_examples=40, deadline=None)
@given(st.lists(LATIN1_WORDS, min_size=1, max_size=8), st.sampled_from([b"\x85", b"\x92", b"\x96", b""]))
def test_auto_reads_a_file_without_utf8_as_latin1(tmp_path_factory, words, c1_byte):
    """Every byte a character, nothing garbled: also the Windows-1252 bytes the Kaggle file holds."""
    path = tmp_path_factory.mktemp("latin") / "c.conll"
    body = b"".join(w.encode("latin-1") + b"\tO\r\n" for w in words)
    path.write_bytes(body + c1_byte + b"x\tB-x\r\n")
    assert read_corpus(path).words == [words + [c1_byte.decode("latin-1") + "x"]]


@settings(max_examples=40, deadline=None)
@given(st.lists(WORDS.map(lambda w: w.replace(" ", "_")), min_size=2, max_size=8), st.data())
def test_auto_stops_at_a_bad_byte_in_a_file_with_utf8(tmp_path_factory, words, data):
    """One bad byte in an otherwise UTF-8 file: refused at that byte, never re-read as Latin-1."""
    words = ["Zürich"] + words  # the file holds UTF-8
    bad_line = data.draw(st.integers(2, len(words)), "line of the bad byte")
    lines = [w.encode("utf-8") + (b"\xff" if number == bad_line else b"") + b"\tO" for number, w in enumerate(words, 1)]
    raw = b"\r\r\n".join(lines) + b"\r\r\n"
    path = tmp_path_factory.mktemp("bad") / "c.conll"
    path.write_bytes(raw)
    offset = raw.index(b"\xff")
    assert read_error(path) == (
        f"{path}:{bad_line}: byte 0xff at byte offset {offset} is not valid UTF-8, but line 1 holds "
        "UTF-8 ('ü' at byte offset 1), so the file is not read as latin-1 either: fix that byte, or set "
        "prepare.encoding (utf-8, latin-1, cp1252, ...)"
    )
    assert read_corpus(path, encoding="latin-1").words[0][0] == "ZÃ¼rich"  # what auto must not do


def test_declared_encoding_errors_name_the_byte_offset(tmp_path):
    path = tmp_path / "c.conll"
    path.write_bytes("a\tO\r\rCitroën\tB-org\n".encode("latin-1"))
    assert read_error(path, encoding="utf-8") == (
        f"{path}:3: not valid utf-8 (byte 0xeb at byte offset 10); set the corpus encoding (auto, utf-8, latin-1, ...)"
    )


@pytest.mark.parametrize(
    "codec, options, message",
    [
        (
            "utf-32",
            {"encoding": "utf-8"},
            "UTF-32 text (byte-order mark) read as utf-8: set the encoding to utf-32 "
            "or auto, or convert it (iconv -f UTF-32 -t UTF-8)",
        ),
        (
            "utf-32",
            {"encoding": "utf-16"},
            "UTF-32 text (byte-order mark) read as utf-16: set the encoding to "
            "utf-32 or auto, or convert it (iconv -f UTF-32 -t UTF-8)",
        ),
        (
            "utf-32-le",
            {},
            "NUL bytes as in UTF-32-LE text without a byte-order mark: set the "
            "encoding to utf-32-le, or convert it (iconv -f UTF-32LE -t UTF-8)",
        ),
        (
            "utf-32-be",
            {},
            "NUL bytes as in UTF-32-BE text without a byte-order mark: set the "
            "encoding to utf-32-be, or convert it (iconv -f UTF-32BE -t UTF-8)",
        ),
        (
            "utf-16-le",
            {},
            "NUL bytes as in UTF-16-LE text without a byte-order mark: set the "
            "encoding to utf-16-le, or convert it (iconv -f UTF-16LE -t UTF-8)",
        ),
        (
            "utf-16-be",
            {"encoding": "latin-1"},
            "NUL bytes as in UTF-16-BE text without a byte-order mark: set the "
            "encoding to utf-16-be, or convert it (iconv -f UTF-16BE -t UTF-8)",
        ),
    ],
)
def test_wide_encodings_are_named(tmp_path, codec, options, message):
    path = tmp_path / "c.conll"
    path.write_bytes("Zürich\tB-geo\nis\tO\n".encode(codec))
    assert read_error(path, **options) == f"{path}:1: {message}"


def test_utf32_with_a_byte_order_mark_is_read_by_auto(tmp_path):
    path = tmp_path / "c.conll"
    for text, codec in (("Zürich\tB-geo\n", "utf-32"), ("\ufeffZürich\tB-geo\n", "utf-32-be")):  # LE, BE marks
        path.write_bytes(text.encode(codec))
        assert read_corpus(path).words == [["Zürich"]]
    path.write_bytes(b"a\tO\n\x00\x01\x02\x03\tO\n")
    assert read_error(path) == f"{path}:2: not a text file: binary data (NUL byte)"


def test_missing_value_words_and_latin1_survive(tmp_path):
    sentence = [
        ("NaN", "O"),
        ("null", "O"),
        ("NA", "O"),
        ("None", "O"),
        ("Citroën", "B-org"),
        ("°C", "O"),
        ("\x85", "O"),
        (",", "O"),
        ('"', "O"),
    ]
    path = write_kaggle_csv(tmp_path / "c.csv", [sentence])
    zipped = tmp_path / "c.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(path, "ner_dataset.csv")
    for source in (path, zipped):
        assert read_corpus(source).words == [[w for w, _ in sentence]]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("Sentence #,Word,POS\nSentence: 1,a,DT\n", "missing column(s) Tag"),
        ("Sentence #,Word,POS,Tag\n,a,DT,O\n", ":2: first row has no 'Sentence #'"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,,DT,O\n", ":2: empty word"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,a,DT,O\n,b,NN,\n", ":3: word 'b' has no tag"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,a,DT,O,extra\n", ":2: expected 4 fields"),
    ],
)
def test_kaggle_errors_name_file_line_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(CorpusError) as error:
        read_kaggle_csv(path)
    text = str(error.value)
    assert str(path) in text and message in text and "\n" not in text


def test_unreadable_zip_and_missing_file(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(CorpusError, match="broken.zip: unreadable zip"):
        read_corpus(bad)
    with pytest.raises(CorpusError, match="file not found"):
        read_corpus(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    "content, message",
    [
        ("a\tO\nb\n", ":2: missing tag"),
        ("a\tO\nb B-per\n", ":2: mixed tab and space separators"),
        ("a O\nb\tB-per\n", ":2: mixed tab and space separators"),
        ("\n\n", "empty file"),
    ],
)
def test_conll_errors(tmp_path, content, message):
    path = tmp_path / "bad.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        read_conll(path)


def test_conll_wrong_encoding_names_the_line(tmp_path):
    path = tmp_path / "latin.conll"
    path.write_bytes("a\tO\n\nCitroën\tB-org\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin.conll:3: not valid utf-8"):
        read_conll(path)
    assert read_conll(path, encoding="latin-1").words == [["a"], ["Citroën"]]


def test_tag_scheme_is_enforced(tmp_path):
    path = write_kaggle_csv(tmp_path / "c.csv", [[("a", "O"), ("b", "geo")]])
    corpus = read_kaggle_csv(path)
    assert validate_tags(corpus, "auto") == "plain"
    with pytest.raises(CorpusError, match=r"c.csv:3: tag 'geo' is not BIO"):
        validate_tags(corpus, "bio")
    with pytest.raises(CorpusError, match="category 'geo' is not among the declared"):
        validate_tags(corpus, "plain", ["O", "per"])


def test_category_vocabulary_puts_outside_first():
    assert category_vocabulary([["B-tim", "O", "I-geo"], ["B-art"]]) == ["O", "art", "geo", "tim"]
    assert category_vocabulary([["x", "y"]]) == ["x", "y"]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.floats(0, 0.5), st.floats(0, 0.5), st.integers(0, 10))
def test_split_is_a_deterministic_partition(num, test_fraction, labelled_fraction, seed):
    split = random_split(num, test_fraction, labelled_fraction, seed)
    joined = sorted(i for part in split.values() for i in part.tolist())
    assert joined == list(range(num))
    again = random_split(num, test_fraction, labelled_fraction, seed)
    assert all((split[k] == again[k]).all() for k in split)


@settings(max_examples=30, deadline=None)
@given(st.integers(5, 200), st.integers(0, 5), st.floats(0, 20))
def test_ranked_pool_is_a_nested_permutation(num, seed, strength):
    from data.split import ranked_pool

    outside = np.random.default_rng(seed).random(num)
    order = ranked_pool(np.arange(num), seed, outside, strength)
    assert sorted(order.tolist()) == list(range(num))
    assert (ranked_pool(np.arange(num), seed, outside, strength) == order).all()


def test_biased_pool_prefers_sentences_with_fewer_o_words():
    from data.split import ranked_pool

    outside = np.linspace(0.5, 1.0, 2000)
    random_first = ranked_pool(np.arange(2000), 0)[:200]
    biased_first = ranked_pool(np.arange(2000), 0, outside, strength=10)[:200]
    assert outside[biased_first].mean() < outside[random_first].mean() - 0.1
