"""DVC tells the truth about code: every project module a stage imports is one of its deps.

The imports are read from the source (every ``import`` statement, also those
inside functions), followed transitively from the module the stage's command
runs. A module missing from a stage's deps would let ``dvc status`` call a
stale output up to date after that module changed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "data", "features", "cache", "heads", "experiments")
DVC_FILES = ("dvc.yaml", "experiments/dvc.yaml")


def module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package gives its __init__.py), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def holds_code(path: Path) -> bool:
    """False for a file of nothing but a docstring (a package's __init__.py): no change to it matters."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return not all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def imported_files(start: Path) -> set[Path]:
    """Project source files imported, directly or not, by ``start`` (itself included)."""
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from heads import losses` imports the module heads.losses.
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                parts = name.split(".")
                # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
                for depth in range(1, len(parts) + 1):
                    found = module_file(".".join(parts[:depth]))
                    if found is not None and holds_code(found):
                        todo.append(found)
    return seen


def stages() -> list[tuple[str, str, list[str]]]:
    """(dvc file, stage name, deps) of every stage, foreach and matrix stages once each."""
    found = []
    for dvc_file in DVC_FILES:
        spec = yaml.safe_load((ROOT / dvc_file).read_text(encoding="utf-8"))
        for name, stage in spec["stages"].items():
            stage = stage.get("do", stage)
            wdir = (ROOT / dvc_file).parent / stage.get("wdir", ".")
            deps = [str((wdir / dep).resolve().relative_to(ROOT)) for dep in stage.get("deps", []) if "${" not in dep]
            found.append((dvc_file, name, stage["cmd"], deps))
    return found


@pytest.mark.parametrize("dvc_file, name, cmd, deps", stages(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_imported_module_is_a_dep(dvc_file, name, cmd, deps):
    modules = re.findall(r"python -m ([\w.]+)", cmd)
    assert modules, f"{dvc_file}:{name}: no `python -m module` in its command"
    entry = module_file(modules[0]) or module_file(modules[0] + ".__main__")
    assert entry is not None
    if entry.name == "__init__.py" and (entry.parent / "__main__.py").exists():
        entry = entry.parent / "__main__.py"
    missing = sorted(
        str(path.relative_to(ROOT))
        for path in imported_files(entry)
        if not any(
            str(path.relative_to(ROOT)) == dep or str(path.relative_to(ROOT)).startswith(dep + "/") for dep in deps
        )
    )
    assert not missing, f"{dvc_file}:{name} imports modules that are not its deps: {missing}"


def test_no_stage_script_imports_another_stage_script():
    for path in sorted((ROOT / "pipeline").glob("*.py")):
        others = {str(p.relative_to(ROOT)) for p in imported_files(path) if p.parent.name == "pipeline"}
        assert others <= {str(path.relative_to(ROOT)), "pipeline/params.py", "pipeline/__init__.py"}, path


@pytest.mark.parametrize("package", ["heads", "features", "data", "cache"])
def test_libraries_never_import_the_pipeline(package):
    for path in sorted((ROOT / package).glob("*.py")):
        assert not any(p.parent.name == "pipeline" for p in imported_files(path)), path


def test_no_code_file_shares_its_name_with_an_output_folder():
    outs = set()
    for dvc_file in DVC_FILES:
        spec = yaml.safe_load((ROOT / dvc_file).read_text(encoding="utf-8"))
        for stage in spec["stages"].values():
            stage = stage.get("do", stage)
            wdir = (ROOT / dvc_file).parent / stage.get("wdir", ".")
            for out in stage.get("outs", []) + stage.get("metrics", []):
                out = next(iter(out)) if isinstance(out, dict) else out
                outs.add((wdir / out.split("${")[0]).resolve())
    clashes = [str(out) for out in outs if out.with_suffix(".py").exists()]
    assert not clashes


def test_no_heads_module_is_over_300_lines():
    long = {p.name: n for p in (ROOT / "heads").glob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long
