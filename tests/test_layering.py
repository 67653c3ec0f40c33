"""featinv's layers import only downward: ground < nets < optim < runs < experiments < reports <
cli/api/options and serve, the explorer (../shared/DESIGN.md has the picture), and no module
imports itself back through others.
Imports inside functions count too: a lazy import is still a dependency."""

import ast

from conftest import ROOT

PACKAGE = ROOT / "src" / "featinv"
# each subpackage's rank; top-level modules are the ground (0) except the entry points
RANKS = {"nets": 1, "optim": 2, "runs": 3, "experiments": 4, "reports": 5, "serve": 6}
ENTRY_POINTS = {"featinv.cli", "featinv.api", "featinv.objectives", "featinv.options", "featinv.__main__", "featinv"}
TOP = 6


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(module):
    if module in ENTRY_POINTS:
        return TOP
    parts = module.split(".")
    return RANKS[parts[1]] if len(parts) > 2 or parts[-1] in RANKS else 0


def import_graph():
    """``{module: {module it imports}}`` over featinv's own modules (relative and absolute)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: set() for m in paths}
    for m, path in paths.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                stem = ".".join(filter(None, [base, node.module]))
                targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[m] |= {t for t in targets if t in paths and t != m and t != "featinv"}
    return graph


def test_every_module_has_a_layer():
    assert all(rank(m) in range(TOP + 1) for m in import_graph())
    assert rank("featinv.optim.inversion") == 2 and rank("featinv.config") == 0
    assert rank("featinv.nets") == 1 and rank("featinv.api") == TOP


def test_layers_import_only_downward():
    upward = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets if rank(t) > rank(m))
    assert upward == []


def test_modules_depend_one_way():
    """No import cycles among featinv's modules."""
    graph = import_graph()

    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()] - seen:
                seen.add(nxt)
                stack.append(nxt)
        return seen

    assert [m for m in sorted(graph) if m in reachable(m)] == []


def test_the_graph_sees_lazy_and_package_imports():
    """What the checks read: an import inside a function, ``from .. import files``, ``from . import x``."""
    graph = import_graph()
    assert "featinv.runs.runfolder" in graph["featinv.cli"]  # imported inside cmd_invert
    assert "featinv.files" in graph["featinv.runs.runfolder"]  # from .. import files
    assert "featinv.nets.layers" in graph["featinv.nets.extractor"]  # from . import layers as ...
