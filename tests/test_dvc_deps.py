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


def direct_imports(path: Path) -> set[Path]:
    """Project source files ``path`` imports itself (also inside functions)."""
    found = set()
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
                module = module_file(".".join(parts[:depth]))
                if module is not None and holds_code(module) and module != path:
                    found.add(module)
    return found


def imported_files(start: Path) -> set[Path]:
    """Project source files imported, directly or not, by ``start`` (itself included)."""
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(direct_imports(path))
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
    shared = {"pipeline/params.py", "pipeline/models.py", "pipeline/__init__.py"}  # params.yaml's readers
    for path in sorted((ROOT / "pipeline").glob("*.py")):
        others = {str(p.relative_to(ROOT)) for p in imported_files(path) if p.parent.name == "pipeline"}
        assert others <= shared | {str(path.relative_to(ROOT))}, path


def import_cycle(graph: dict[Path, set[Path]]) -> list[Path] | None:
    """One cycle of ``graph`` (each file's direct imports) as a path of files, or None."""
    state: dict[Path, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child) :] + [child]
            if child not in state and (cycle := visit(child, path + [child])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_import_cycle_finds_a_circle_and_only_a_circle():
    a, b, c = Path("a.py"), Path("b.py"), Path("c.py")
    assert import_cycle({a: {b}, b: {c}, c: set()}) is None
    assert import_cycle({a: {b}, b: {c}, c: {a}}) == [a, b, c, a]


def test_no_project_module_imports_itself_through_others():
    files = [p for package in PACKAGES + ("bench",) for p in (ROOT / package).rglob("*.py") if holds_code(p)]
    cycle = import_cycle({path: direct_imports(path) for path in files})
    assert cycle is None, " -> ".join(str(p.relative_to(ROOT)) for p in cycle)


def test_stage_modules_stay_thin():
    long = {p.name: n for p in (ROOT / "pipeline").glob("*.py") if (n := len(p.read_text().splitlines())) > 150}
    assert not long, f"pipeline/ modules over 150 lines (move library code out): {long}"


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
