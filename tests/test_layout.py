"""The package's imports go one way: core <- data <- evaluation <- tuning <- one package per paper family."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Layer of each top-level part; a module may import its own layer or a lower one.
LAYERS = {
    "keras_pae.core": 0,
    "keras_pae.data": 1,
    "keras_pae.evaluation": 2,
    "tuning": 3,
    "keras_pae.perceptual": 4,
    "keras_pae.bottleneck": 4,
    "keras_pae.ssavae": 4,
    # The front door: lazy public names and the console script.
    "keras_pae": 5,
}
PAPERS = ("keras_pae.perceptual", "keras_pae.bottleneck", "keras_pae.ssavae")


def _modules():
    modules = {}
    for package in ("keras_pae", "tuning"):
        for directory, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    modules[module.removesuffix(".__init__")] = path
    return modules


def _imports(module, path, known):
    """Every project module `module` imports, at any depth (functions included)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _part(module):
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


GRAPH = {module: _imports(module, path, _modules()) for module, path in _modules().items()}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_level_imports():
    # perceptual.cli imports training inside `run` (fast flag errors): the graph must see it.
    assert "keras_pae.perceptual.training" in GRAPH["keras_pae.perceptual.cli"]
    assert len(GRAPH) > 40


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_one_way(module):
    part = _part(module)
    upward = sorted(m for m in GRAPH[module] if LAYERS[_part(m)] > LAYERS[part])
    assert not upward, f"{module} reaches up to {upward}"
    if part in PAPERS:
        other_papers = sorted(m for m in GRAPH[module] if _part(m) in PAPERS and _part(m) != part)
        assert not other_papers, f"{module} imports another paper's package: {other_papers}"


def _text_files():
    for top in ("README.md", "Makefile", "setup.cfg", "train.py", ".ci", "docs", "keras_pae", "tuning", "bench", "tests"):
        path = os.path.join(ROOT, top)
        if os.path.isfile(path):
            yield path
        for directory, _, files in os.walk(path):
            for name in files:
                if name.endswith((".py", ".md", ".cfg", ".json", ".toml")) or name in ("run", "Makefile"):
                    yield os.path.join(directory, name)


def test_the_readme_is_a_front_door_and_nothing_points_outside_the_repo():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert len(f.read().splitlines()) <= 200
    # Spelled in pieces so this file does not match itself.
    outside = ("../" + "shared", "SPEC" + " §", "SPEC" + ".md")
    for path in _text_files():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for needle in outside:
            assert needle not in text, f"{os.path.relpath(path, ROOT)} mentions {needle!r}"
