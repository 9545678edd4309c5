"""Import rules between ``graphxfer``, ``tabular`` and ``privacy``, read from the source.

The import graph is built with the standard library's :mod:`ast` only (nothing is imported):
module-level and function-level imports, relative imports resolved against the importing
module, and ``from package import name`` resolved to the submodule ``package.name`` when there
is one. Imports under ``if TYPE_CHECKING:`` count for the direction rules but not for cycles,
since they never run.

Rules: ``graphxfer`` may import ``tabular`` and ``privacy``; those two never import
``graphxfer`` or each other; the packages form no cycle; inside a package no two modules
import each other at module level, directly or through others; and no module reaches into a
private (underscore) module or name of another of the three packages or of Opacus.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphxfer", "tabular", "privacy")
STANDALONE = ("tabular", "privacy")  # packages that import none of the other two


# ------------------------------------------------------------------------ the import graph
@dataclass(frozen=True)
class Import:
    """One imported module (an ``import`` statement may give several).

    Attributes
    ----------
    importer : str
        Dotted name of the importing module (a package is named by its ``__init__``'s name).
    target : str
        Dotted name of the imported module: a module of the scanned packages when the name
        resolves to one, otherwise the name as written (an external module).
    names : tuple of str
        Names taken from ``target`` by ``from target import ...`` (submodules excluded).
    line : int
    module_level : bool
        Runs when ``importer`` is imported: outside every function and every
        ``if TYPE_CHECKING:`` block.
    type_checking : bool
        Inside an ``if TYPE_CHECKING:`` block.
    """

    importer: str
    target: str
    names: tuple[str, ...]
    line: int
    module_level: bool
    type_checking: bool

    def where(self) -> str:
        return f"{self.importer}:{self.line}"


def discover(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of ``packages`` under ``root``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: Mapping[str, Path]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.functions = 0
        self.type_checking = 0
        self.imports: list[Import] = []

    def _add(self, target: str, names: tuple[str, ...], line: int) -> None:
        self.imports.append(
            Import(
                importer=self.module,
                target=target,
                names=names,
                line=line,
                module_level=self.functions == 0 and self.type_checking == 0,
                type_checking=self.type_checking > 0,
            )
        )

    def _in_function(self, node: ast.AST) -> None:
        self.functions += 1
        self.generic_visit(node)
        self.functions -= 1

    visit_FunctionDef = _in_function
    visit_AsyncFunctionDef = _in_function
    visit_Lambda = _in_function

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.type_checking += 1
        for child in node.body:
            self.visit(child)
        self.type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, (), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".") if self.package else []
            if node.level - 1 > len(base):
                raise ValueError(f"{self.module}:{node.lineno}: relative import above the root")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        names = []
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in self.known:
                self._add(submodule, (), node.lineno)
            else:
                names.append(alias.name)
        if names or not node.names:
            self._add(source, tuple(names), node.lineno)


def collect_imports(modules: Mapping[str, Path]) -> list[Import]:
    """Every import of every module in ``modules``."""
    found: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(name, path.name == "__init__.py", modules)
        collector.visit(tree)
        found.extend(collector.imports)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def is_private(dotted: str) -> bool:
    """Whether some component of ``dotted`` starts with an underscore (``__init__`` aside)."""
    return any(part.startswith("_") and part != "__init__" for part in dotted.split("."))


def graph(
    imports: Iterable[Import], *, nodes: Iterable[str], module_level_only: bool
) -> dict[str, set[str]]:
    """Adjacency sets over ``nodes``: importer -> imported modules among ``nodes``."""
    adjacency: dict[str, set[str]] = {n: set() for n in nodes}
    for imp in imports:
        if module_level_only and not imp.module_level:
            continue
        if imp.importer in adjacency and imp.target in adjacency:
            adjacency[imp.importer].add(imp.target)
    return adjacency


def strongly_connected(adjacency: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted; singletons only with a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(adjacency):
        if start in index:
            continue
        work = [(start, iter(sorted(adjacency[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in adjacency[node]:
                    components.append(sorted(component))
    return sorted(components)


def shortest_cycle(adjacency: Mapping[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of ``component``, as a path back to it."""
    start = component[0]
    members = set(component)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(adjacency[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{component} is not a cycle")  # pragma: no cover


def module_cycles(imports: Iterable[Import], modules: Iterable[str], package: str) -> list[str]:
    """Module-level import cycles inside ``package``, each written ``a -> b -> a``."""
    members = [m for m in modules if top(m) == package]
    adjacency = graph(imports, nodes=members, module_level_only=True)
    return [
        " -> ".join(shortest_cycle(adjacency, component))
        for component in strongly_connected(adjacency)
    ]


# ----------------------------------------------------------------------------- the tree
MODULES = discover(ROOT, PACKAGES)
IMPORTS = collect_imports(MODULES)


def _listing(imports: Iterable[Import]) -> str:
    return "; ".join(f"{imp.where()} imports {imp.target}" for imp in imports)


def test_the_graph_covers_the_three_packages() -> None:
    for package in PACKAGES:
        assert package in MODULES and sum(top(m) == package for m in MODULES) > 5
    assert any(i.importer == "graphxfer.transfer" and top(i.target) == "privacy" for i in IMPORTS)


def test_every_import_of_the_three_packages_names_an_existing_module() -> None:
    missing = [i for i in IMPORTS if top(i.target) in PACKAGES and i.target not in MODULES]
    assert not missing, _listing(missing)


@pytest.mark.parametrize("package", STANDALONE)
def test_tabular_and_privacy_never_import_graphxfer(package: str) -> None:
    wrong = [i for i in IMPORTS if top(i.importer) == package and top(i.target) == "graphxfer"]
    assert not wrong, _listing(wrong)


def test_tabular_and_privacy_never_import_each_other() -> None:
    wrong = [
        i
        for i in IMPORTS
        if top(i.importer) in STANDALONE
        and top(i.target) in STANDALONE
        and top(i.target) != top(i.importer)
    ]
    assert not wrong, _listing(wrong)


def test_the_packages_form_no_cycle() -> None:
    adjacency: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for imp in IMPORTS:
        if top(imp.target) in PACKAGES and top(imp.target) != top(imp.importer):
            adjacency[top(imp.importer)].add(top(imp.target))
    assert strongly_connected(adjacency) == []


@pytest.mark.parametrize("package", STANDALONE)
def test_no_module_level_import_cycle_inside_tabular_and_privacy(package: str) -> None:
    cycles = module_cycles(IMPORTS, MODULES, package)
    assert cycles == [], f"module-level import cycles in {package}: {cycles}"


def test_no_module_level_import_cycle_inside_graphxfer() -> None:
    cycles = module_cycles(IMPORTS, MODULES, "graphxfer")
    assert cycles == [], f"module-level import cycles in graphxfer: {cycles}"


def test_no_private_module_or_name_of_another_package_or_of_opacus_is_imported() -> None:
    wrong = []
    for imp in IMPORTS:
        owner = top(imp.target)
        foreign = owner == "opacus" or (owner in PACKAGES and owner != top(imp.importer))
        if foreign and (is_private(imp.target) or any(n.startswith("_") for n in imp.names)):
            wrong.append(imp)
    assert not wrong, _listing(wrong)


# --------------------------------------------------------------- the graph builder itself
def _tree(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return discover(tmp_path, ["pkg"])


def test_builder_resolves_relative_submodule_and_function_level_imports(tmp_path: Path) -> None:
    modules = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import thing\n",
            "pkg/a.py": "from . import b\nfrom .sub import deep as d\nthing = 1\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg import a\n"
                "def f():\n    from ..pkg.sub.deep import _hidden\n"
            ),
            "pkg/sub/__init__.py": "",
            "pkg/sub/deep.py": "import opacus._private\nfrom opacus.x import _y\n",
        },
    )
    assert set(modules) == {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.deep"}
    found = {(i.importer, i.target, i.names, i.module_level, i.type_checking) for i in
             collect_imports(modules)}  # fmt: skip
    assert found == {
        ("pkg", "pkg.a", ("thing",), True, False),
        ("pkg.a", "pkg.b", (), True, False),
        ("pkg.a", "pkg.sub.deep", (), True, False),
        ("pkg.b", "typing", ("TYPE_CHECKING",), True, False),
        ("pkg.b", "pkg.a", (), False, True),
        ("pkg.b", "pkg.sub.deep", ("_hidden",), False, False),
        ("pkg.sub.deep", "opacus._private", (), True, False),
        ("pkg.sub.deep", "opacus.x", ("_y",), True, False),
    }
    assert is_private("opacus._private") and not is_private("pkg.sub.deep")


def test_builder_finds_module_level_cycles_only(tmp_path: Path) -> None:
    modules = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "from pkg import c\n",
            "pkg/c.py": "from pkg.a import x\nimport pkg.c\n",
            "pkg/d.py": "import pkg.e\n",
            "pkg/e.py": "def f():\n    import pkg.d\n",
            "pkg/f.py": "import pkg.f\n",
        },
    )
    cycles = module_cycles(collect_imports(modules), modules, "pkg")
    assert cycles == ["pkg.a -> pkg.b -> pkg.c -> pkg.a", "pkg.f -> pkg.f"]
    adjacency = graph(collect_imports(modules), nodes=modules, module_level_only=False)
    assert strongly_connected(adjacency) == [
        ["pkg.a", "pkg.b", "pkg.c"],
        ["pkg.d", "pkg.e"],
        ["pkg.f"],
    ]
