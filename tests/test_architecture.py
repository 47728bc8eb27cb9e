"""The package's shape: no import cycles (function-level imports included) and modules of one idea each."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sagkit"
MAX_LINES = 300
# Longer modules, each saying why in its docstring.
LONG_MODULES = {"sagkit/evaluation/metrics.py"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set) -> set:
    """sagkit modules that importing ``name`` (any line, any depth) may import, with the packages they run."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                # the packages above the importer are already running: importing them adds no edge
                if candidate in known and candidate != name and not name.startswith(candidate + "."):
                    found.add(candidate)
    return found


def _cycles(graph: dict[str, set]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_including_function_level_imports():
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_modules_stay_small_or_say_why():
    for name, path in _modules().items():
        rel = str(path.relative_to(PACKAGE.parent))
        lines = len(path.read_text().splitlines())
        if rel in LONG_MODULES:
            assert "longer than" in (ast.get_docstring(ast.parse(path.read_text())) or ""), rel
        else:
            assert lines <= MAX_LINES, f"{rel} has {lines} lines"


# Which package may import which (docs/layout.md says the same): a package imports only packages of earlier
# layers, never one beside it or above it. Top-level modules (sagkit.choices, sagkit.atomic) count as packages.
LAYERS = (
    ("sagkit", "sagkit.choices", "sagkit.atomic"),
    ("sagkit.config",),
    ("sagkit.evaluation", "sagkit.models", "sagkit.losses"),
    ("sagkit.data",),
    ("sagkit.viz",),
    ("sagkit.engine",),
    ("sagkit.runs",),
    ("sagkit.diagnostics", "sagkit.report", "sagkit.images"),
    ("sagkit.workbook",),
    ("sagkit.cli",),
    ("sagkit.__main__",),
)
LAYER_OF = {package: depth for depth, layer in enumerate(LAYERS) for package in layer}
# sagkit imports inside a function, each with its reason; none may exist to dodge an import cycle.
LAZY_IMPORTS = {
    ("sagkit.images.embedding", "sagkit.runs.export"): "onnx and onnxruntime come with the optional [export] extra",
}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _upward_imports(graph: dict[str, set]) -> list[str]:
    """'a -> b' for each import whose target package is not in an earlier layer than the importer's."""
    bad = []
    for name, targets in graph.items():
        for target in targets:
            here, there = _package(name), _package(target)
            if here != there and LAYER_OF[there] >= LAYER_OF[here]:
                bad.append(f"{name} -> {target}")
    return sorted(bad)


def test_every_package_has_a_layer():
    assert {_package(name) for name in _modules()} <= set(LAYER_OF)


def test_packages_import_only_earlier_layers():
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert _upward_imports(graph) == []


def test_the_layer_check_finds_an_upward_import():
    assert _upward_imports({"sagkit.engine.trainer": {"sagkit.runs.folder", "sagkit.models.sagnet"},
                            "sagkit.report.tables": {"sagkit.images.gallery"}}) == [
        "sagkit.engine.trainer -> sagkit.runs.folder", "sagkit.report.tables -> sagkit.images.gallery"]


def _function_level_imports(path: Path) -> set[str]:
    """sagkit modules imported inside a function body of ``path``."""
    found = set()
    for func in ast.walk(ast.parse(path.read_text())):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("sagkit")}
            elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sagkit")):
                found.add(node.module or "")
    return found


def test_sagkit_imports_sit_at_module_level():
    lazy = {(name, target) for name, path in _modules().items() for target in _function_level_imports(path)}
    assert lazy <= set(LAZY_IMPORTS), sorted(lazy - set(LAZY_IMPORTS))


def test_the_layout_doc_names_every_package():
    text = (PACKAGE.parent / "docs" / "layout.md").read_text()
    missing = [p for layer in LAYERS for p in layer if p not in ("sagkit", "sagkit.__main__")
               and f"sagkit/{p.split('.', 1)[1]}" not in text]
    assert missing == []
