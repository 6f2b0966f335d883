"""Structure the code promises: one owner of the run directory's file names, imports that flow
one way (models ← pipeline ← flows) without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "pipeline", "flows")
RUN_FILE_NAMES = ("config.yaml", "data.json", "metrics.jsonl", "state.json", "model.pt", "manifest.json",
                  "diagnostics.json", "metrics.json", "report.md", "block-")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def test_no_module_but_rundir_spells_a_run_files_name():
    offenders = []
    for name, path in MODULES.items():
        if name == "pipeline.rundir":
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                offenders += [f"{name}:{node.lineno}: {word!r}" for word in RUN_FILE_NAMES if word in node.value]
    assert not offenders, "run-file names outside pipeline/rundir.py:\n" + "\n".join(offenders)


def _imports(path: Path, name: str, top_level_only: bool) -> set[str]:
    """Project modules imported by ``path`` (module scope only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:  # `if TYPE_CHECKING:` imports do not run
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    """Module -> project modules it imports. A package importing its own submodules (how the
    recipes register) is left out: Python runs the package's ``__init__`` first either way."""
    return {name: {t for t in _imports(path, name, top_level_only) if not t.startswith(name + ".")}
            for name, path in MODULES.items()}


def test_module_level_imports_have_no_cycles():
    graph = _graph(top_level_only=True)
    # a package's __init__ runs before its submodules: importing pkg.mod also imports pkg
    for name in list(graph):
        parent = name.rsplit(".", 1)[0]
        if parent != name and parent in graph:
            graph[name] = graph[name] | ({parent} - {name})
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("importer, forbidden", [
    ("models", ("pipeline", "flows")),         # pure PyTorch
    ("pipeline", ("flows",)),                  # stages do not know the orchestrator (the CLI may call it)
    ("pipeline.data", ("pipeline.recipes", "pipeline.engine", "pipeline.sampling", "pipeline.evaluation")),
    ("pipeline.recipes", ("pipeline.sampling", "pipeline.evaluation", "pipeline.engine", "pipeline.cli",
                          "pipeline.report")),
    ("flows", ("pipeline.cli",)),
])
def test_imports_point_one_way(importer, forbidden):
    graph = _graph(top_level_only=False)
    importers = [m for m in graph if (m == importer or m.startswith(importer + ".")) and m != "pipeline.cli"]
    bad = [f"{m} imports {t}" for m in importers for t in graph[m] if any(t == f or t.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)
