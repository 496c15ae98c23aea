"""prepare.labelled_file as CoNLL (what pipeline.annotate appends to): its sentences join the labelled split with
their own tags, in the place of the same corpus sentence or appended, and the test split stays the one drawn
without them; the older form, sentence numbers, still reads as before."""

import json

import numpy as np
import pytest

from data.prepared_io import read_prepared
from data.split import has_sentences, is_id_file
from pipeline.params import PrepareParams
from pipeline.prepare import prepare

SENTENCES = [  # (words, tags): 12 sentences, every category in each part whatever the draw
    (["Ship", "to", "Porto"], ["O", "O", "B-city"]),
    (["Call", "Ana", "now"], ["O", "B-per", "O"]),
    (["Porto", "and", "Ana"], ["B-city", "O", "B-per"]),
    (["Lisbon", "Ana"], ["B-city", "B-per"]),
    (["Ana", "in", "Faro"], ["B-per", "O", "B-city"]),
    (["Rui", "to", "Braga"], ["B-per", "O", "B-city"]),
    (["Braga", "for", "Rui"], ["B-city", "O", "B-per"]),
    (["Eva", "at", "Lagos"], ["B-per", "O", "B-city"]),
    (["Lagos", "with", "Eva"], ["B-city", "O", "B-per"]),
    (["Tom", "near", "Viseu"], ["B-per", "O", "B-city"]),
    (["Viseu", "by", "Tom"], ["B-city", "O", "B-per"]),
    (["Ivo", "from", "Evora"], ["B-per", "O", "B-city"]),
]


def conll(sentences, comment="") -> str:
    blocks = ["".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) for words, tags in sentences]
    return comment + "\n".join(blocks)


def run(tmp_path, labelled_file=None, name="prepared"):
    corpus = tmp_path / "corpus.conll"
    corpus.write_text(conll(SENTENCES), encoding="utf-8")
    params = PrepareParams(
        corpus=str(corpus), test_size=4, labelled_size=4, labelled_file=labelled_file and str(labelled_file)
    )
    prepare(params, tmp_path / name)
    return read_prepared(tmp_path / name)


def test_labelled_sentences_take_their_place_or_are_appended_and_the_test_split_stays(tmp_path):
    plain = run(tmp_path, name="plain")
    unlabelled = int(plain.split["unlabelled"][0])
    relabelled = (plain.words[unlabelled], ["O"] * len(plain.words[unlabelled]))  # a correction: no entity
    new = (["Zé", "to", "Évora", "!"], ["B-per", "O", "B-city", "O"])
    labelled_file = tmp_path / "labelled.conll"
    labelled_file.write_text(conll([relabelled, new], "# sent_id = text:1\n"), encoding="utf-8")
    found = run(tmp_path, labelled_file)
    np.testing.assert_array_equal(found.split["test"], plain.split["test"])
    assert found.words[: len(plain.words)] == plain.words and found.words[-1] == new[0]
    assert found.tags[unlabelled] == relabelled[1] and found.tags[-1] == new[1]
    new_id = len(plain.words)
    assert sorted(found.split["labelled"].tolist()) == sorted([*plain.split["labelled"].tolist(), unlabelled, new_id])
    assert unlabelled not in found.split["unlabelled"] and new_id not in found.split["unlabelled"]


def test_a_labelled_test_sentence_is_refused_with_its_line(tmp_path):
    plain = run(tmp_path, name="plain")
    test = int(plain.split["test"][0])
    labelled_file = tmp_path / "labelled.conll"
    labelled_file.write_text(conll([SENTENCES[0] if test else SENTENCES[1], SENTENCES[test]]), encoding="utf-8")
    line = len(SENTENCES[0 if test else 1][0]) + 2
    with pytest.raises(ValueError, match=f"labelled.conll:{line}: this sentence is in the test split"):
        run(tmp_path, labelled_file)


def test_a_labelled_file_without_sentences_changes_nothing(tmp_path):
    labelled_file = tmp_path / "labelled.conll"
    labelled_file.write_text("# sentences labelled by hand\n\n", encoding="utf-8")
    plain, found = run(tmp_path, name="plain"), run(tmp_path, labelled_file)
    assert found.words == plain.words and found.tags == plain.tags
    assert json.dumps({k: v.tolist() for k, v in found.split.items()}) == json.dumps(
        {k: v.tolist() for k, v in plain.split.items()}
    )


def test_sentence_numbers_still_fix_the_labelled_split(tmp_path):
    plain = run(tmp_path, name="plain")
    chosen = sorted(int(i) for i in plain.split["unlabelled"][:2])
    numbers = tmp_path / "labelled.txt"
    numbers.write_text("# by number\n" + "".join(f"{i + 1}\n" for i in chosen), encoding="utf-8")
    found = run(tmp_path, numbers)
    assert found.split["labelled"].tolist() == chosen and found.words == plain.words


@pytest.mark.parametrize(
    ("text", "ids", "sentences"),
    [
        ("# comment\n12\n3\n", True, True),
        ("", False, False),
        ("# only comments\n\n", False, False),
        ("Porto\tB-city\n", False, True),
        ("12\nPorto\tB-city\n", False, True),
    ],
)
def test_the_two_forms_are_told_apart(tmp_path, text, ids, sentences):
    path = tmp_path / "file"
    path.write_text(text, encoding="utf-8")
    assert is_id_file(str(path)) is ids and has_sentences(str(path)) is sentences
