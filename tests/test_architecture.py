"""The package's layers: every import inside fmlib points down, and nothing imports in a circle.

Each fmlib module belongs to one layer (`LAYERS`, lowest first; the README's architecture section
states the same). A module may import modules of its own layer or of lower ones, never of a higher
one, and the import graph has no cycle. Imports are read with `ast`, function-local ones included,
so a cycle cannot hide inside a function.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fmlib"

#: Lowest first. A package (synthesis, models, corruptions, assay) is in the layer of its name.
LAYERS = [
    ("base", {"_checks", "metrics", "stats", "instances", "inference", "synthesis", "models", "corruptions", "attacks",
              "plotting", "display", "domain"}),
    ("store", {"paths", "cache"}),
    ("training", {"plateau", "objectives", "training", "checkpoints"}),
    ("analysis", {"evaluation", "resolution", "realdata", "realism", "sizing", "simtoreal", "findings",
                  "recommendations", "strength", "rankings", "threat_models", "competence", "glance", "natural",
                  "acquisition", "matching"}),
    ("configuration", {"parameters", "profiles"}),
    ("grid", {"grid", "executors", "runs"}),
    ("study", {"provenance", "runner"}),
    ("assay", {"assay", "advice"}),
    ("interface", {"cli", "__main__"}),
]
RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    """Dotted module name (without the ``fmlib.`` prefix) -> file, packages as their ``__init__``."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """The fmlib modules that module `name` imports: (module, line, at module level)."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("fmlib.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] + ([node.module] if node.module else [])
                base = ".".join(base)
            elif (node.module or "").startswith("fmlib"):
                base = node.module[len("fmlib."):] if node.module != "fmlib" else ""
            else:
                continue
            subs = [f"{base}.{a.name}" if base else a.name for a in node.names]
            targets = subs if all(t in modules for t in subs) else [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``from .x import y``: y is a name, x the module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, node.lineno, id(node) in top_level))
    return out


def _graph():
    modules = _modules()
    return modules, {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer():
    modules, _ = _graph()
    missing = sorted({name.split(".")[0] for name in modules} - set(RANK))
    assert not missing, f"fmlib modules without a layer in tests/test_architecture.py LAYERS: {missing}"


def test_imports_point_down():
    modules, graph = _graph()
    upward = [f"fmlib/{modules[m].relative_to(PACKAGE)}:{line} imports fmlib.{t} "
              f"({LAYERS[RANK[t.split('.')[0]]][0]} layer, above {LAYERS[RANK[m.split('.')[0]]][0]})"
              for m, edges in graph.items() for t, line, _ in edges
              if RANK.get(t.split(".")[0], -1) > RANK.get(m.split(".")[0], -1)]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_no_import_cycle():
    modules, graph = _graph()
    edges = {m: {t for t, _, _ in targets} for m, targets in graph.items()}

    def path_back(start):  # depth-first search for a path from `start` back to itself
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    return trail + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
        return None

    cycles = [" -> ".join(c) for c in (path_back(m) for m in sorted(edges)) if c]
    assert not cycles, "import cycles in fmlib:\n" + "\n".join(cycles)


def test_fmlib_imports_sit_at_the_top_of_each_module():
    # A function-local import of an fmlib module hides a dependency (and so a cycle) from a reader.
    modules, graph = _graph()
    local = [f"fmlib/{modules[m].relative_to(PACKAGE)}:{line} imports fmlib.{t} inside a function"
             for m, edges in graph.items() for t, line, top in edges
             if not top and not _type_checking(modules[m], line)]
    assert not local, "\n".join(local)


def _type_checking(path: Path, line: int) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test) and n.lineno < line <= n.end_lineno
               for n in tree.body)


@pytest.mark.parametrize("source, expected", [
    ("from .b import f\n", [("b", 1)]),
    ("def g():\n    from fmlib.b import f\n", [("b", 2)]),
    ("from . import b\n", [("b", 1)]),
])
def test_the_import_reader_sees_relative_absolute_and_local_imports(tmp_path, source, expected):
    (tmp_path / "a.py").write_text(source)
    found = _imports("a", tmp_path / "a.py", {"a": tmp_path / "a.py", "b": tmp_path / "b.py"})
    assert [(t, line) for t, line, _ in found] == expected


def test_the_layer_check_names_an_upward_import(monkeypatch):
    # A base module importing the runner must be reported with its file and line.
    modules, graph = _graph()
    graph["metrics"] = graph["metrics"] + [("runner", 99, True)]
    monkeypatch.setattr(__import__(__name__), "_graph", lambda: (modules, graph))
    with pytest.raises(AssertionError, match=r"fmlib/metrics.py:99 imports fmlib.runner"):
        test_imports_point_down()


def test_benchmarks_scripts_and_notebooks_import_modules_that_exist():
    # Nothing outside the package checks its imports at test time: a moved module would break them silently.
    import importlib.util
    import json

    root = PACKAGE.parent
    sources = {p: p.read_text() for p in [*root.glob("benchmarks/*.py"), *root.glob("scripts/*.py")]}
    for nb in root.glob("notebooks/*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        sources[nb] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    missing = []
    for path, text in sources.items():
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fmlib"):
                module = importlib.import_module(node.module)
                missing += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                            if not hasattr(module, a.name)
                            and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("fmlib") and importlib.util.find_spec(alias.name) is None:
                        missing.append(f"{path.name}: import {alias.name}")
    assert not missing, "\n".join(missing)


def test_python_examples_in_the_readme_and_book_pages_name_fmlib_functions_that_exist():
    import importlib.util
    import re
    import types

    root = PACKAGE.parent
    missing = []
    for page in [root / "README.md", *root.glob("book/*.md")]:
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
            tree = ast.parse(block)
            aliases = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fmlib"):
                    module = importlib.import_module(node.module)
                    for a in node.names:
                        target = getattr(module, a.name, None)
                        if target is None and importlib.util.find_spec(f"{node.module}.{a.name}") is not None:
                            target = importlib.import_module(f"{node.module}.{a.name}")  # a submodule
                        if target is None:
                            missing.append(f"{page.name}: from {node.module} import {a.name}")
                        aliases[a.asname or a.name] = target
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    owner = aliases.get(node.value.id)
                    if isinstance(owner, types.ModuleType) and not hasattr(owner, node.attr):
                        missing.append(f"{page.name}: {node.value.id}.{node.attr}")
    assert not missing, "\n".join(missing)
