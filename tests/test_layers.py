"""The package's shape: imports run one way through the layers and never in a circle.

Every ``import`` in every module counts, the ones inside functions too (a lazy import is how
circles hid before the split by stage); only ``if TYPE_CHECKING:`` blocks are skipped. A module
may import its own subpackage and anything in a lower layer, nothing beside or above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "strings"

# Lowest first. A unit is a subpackage (strings.data, ...) or a top-level module (strings.config).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("strings._version", "strings._compat", "strings.alphabet", "strings.metrics"),
    ("strings.config",),
    ("strings.image", "strings.locate"),
    ("strings.data", "strings.models", "strings.decode"),
    ("strings.read",),
    ("strings.train",),
    ("strings.digits",),
    ("strings.serve",),
    ("strings.cli",),
    ("strings", "strings.__main__"),  # the public API (strings/__init__.py) on top of everything
)


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(path: Path, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from a import b`` counts ``a.b`` when
    that is one of ``modules``, else ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in modules else mod)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same tree it imports."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    top = root.name
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        found = imports_of(path, name, path.name == "__init__.py", set(files))
        graph[name] = {m for m in found if (m == top or m.startswith(top + ".")) and m in files and m != name}
    return graph


def unit_of(module: str, layers: tuple[tuple[str, ...], ...]) -> tuple[str, int]:
    """The layer unit a module belongs to (longest matching prefix) and its layer index. The
    package root names its ``__init__`` alone, so a new top-level module must be placed."""
    best: tuple[str, int] | None = None
    for level, units in enumerate(layers):
        for unit in units:
            inside = module.startswith(unit + ".") and "." in unit
            if (module == unit or inside) and (best is None or len(unit) > len(best[0])):
                best = (unit, level)
    if best is None:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS")
    return best


def layer_violations(graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        unit, level = unit_of(mod, layers)
        for dep in sorted(deps):
            dunit, dlevel = unit_of(dep, layers)
            if dunit == unit:
                continue
            if dlevel >= level:
                where = "beside" if dlevel == level else "above"
                bad.append(f"{mod} imports {dep}: {dunit} is {where} {unit} in the layer order")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_circle():
    found = cycles(import_graph(PACKAGE))
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_follow_the_layer_order():
    bad = layer_violations(import_graph(PACKAGE), LAYERS)
    assert not bad, "\n".join(bad)


def test_every_subpackage_says_its_job():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{init.relative_to(PACKAGE.parent)} has no docstring saying what the subpackage does"


# ----------------------------------------------------------------------------- the checks can fail


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


@pytest.fixture()
def fixture_package(tmp_path: Path) -> Path:
    """A small package with the same shape: base <- data <- read <- cli."""
    return _write(tmp_path / "pkg", {
        "__init__.py": '"""top"""\n',
        "base.py": "X = 1\n",
        "data/__init__.py": '"""data"""\nfrom pkg.data.a import A\n',
        "data/a.py": "from pkg.base import X\nA = X\n",
        "data/b.py": "from pkg.data.a import A\n",
        "read/__init__.py": '"""read"""\n',
        "read/r.py": "from pkg.data.a import A\nfrom pkg import base\n",
        "cli/__init__.py": '"""cli"""\n',
        "cli/main.py": "def main():\n    from pkg.read.r import A\n    return A\n",
    })


FIXTURE_LAYERS = (("pkg.base",), ("pkg.data",), ("pkg.read",), ("pkg.cli", "pkg"))


def test_a_module_outside_every_layer_is_named(fixture_package: Path):
    (fixture_package / "extra.py").write_text("X = 2\n")
    with pytest.raises(AssertionError, match="pkg.extra is in no layer"):
        layer_violations(import_graph(fixture_package), FIXTURE_LAYERS)


def test_the_fixture_package_is_clean(fixture_package: Path):
    graph = import_graph(fixture_package)
    assert graph["pkg.read.r"] == {"pkg.data.a", "pkg.base"}
    assert graph["pkg.cli.main"] == {"pkg.read.r"}  # an import inside a function counts
    assert cycles(graph) == [] and layer_violations(graph, FIXTURE_LAYERS) == []


def test_a_deliberate_circle_is_caught(fixture_package: Path):
    # data.a now imports data.b lazily, and data.b imports data.a: a circle inside one subpackage
    (fixture_package / "data" / "a.py").write_text("from pkg.base import X\nA = X\n\ndef f():\n    from pkg.data import b\n")
    found = cycles(import_graph(fixture_package))
    assert found == [["pkg.data.a", "pkg.data.b"]]


def test_an_import_against_the_order_is_caught(fixture_package: Path):
    (fixture_package / "data" / "b.py").write_text("from pkg.read.r import A\n")  # data reaching up into read
    bad = layer_violations(import_graph(fixture_package), FIXTURE_LAYERS)
    assert bad == ["pkg.data.b imports pkg.read.r: pkg.read is above pkg.data in the layer order"]


def test_a_type_checking_import_does_not_count(fixture_package: Path):
    (fixture_package / "data" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.read.r import A\n"
    )
    assert layer_violations(import_graph(fixture_package), FIXTURE_LAYERS) == []


# ----------------------------------------------------------------------------- old import paths


@pytest.mark.parametrize("old", [
    "strings.predictor", "strings.decoding", "strings.transforms", "strings.datasets", "strings.synth",
    "strings.engine", "strings.checkpoint", "strings.export", "strings.calibration", "strings.digit_task",
])
def test_an_old_module_path_still_imports_and_names_the_new_place(old: str):
    import importlib
    import sys
    import warnings

    import strings._compat as compat

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    new = compat.MOVED[old]
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # the module keeps its own identity
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_old_from_imports_users_wrote_still_work():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from strings.decoding import greedy_decode
        from strings.engine import evaluate, train
        from strings.predictor import AmountReading, Reading, Recognizer, load

    import strings

    assert load is strings.load and Recognizer is strings.Recognizer and Reading is strings.Reading
    assert AmountReading is strings.AmountReading
    assert callable(greedy_decode) and callable(evaluate) and callable(train)
    from strings.digits import DigitClassifier, load_digits, normalize_digit  # a module before, a package now

    assert DigitClassifier is strings.DigitClassifier and load_digits is strings.load_digits and callable(normalize_digit)
