"""The shape of the code, held by a test (issue 17, docs/architecture.md).

Read from the source text, so every import counts: module level, inside functions and
under `if TYPE_CHECKING:`. The rules are the ones docs/architecture.md draws:

- no import cycle between wacdc modules;
- the change-event contract and a few leaves (errors, log, config, metrics) import
  nothing else of wacdc; `schema/` imports leaves only; `source/` leaves and `schema/`;
  `sink/` leaves and `schema/` (never `source/`): the hot path knows no control plane;
- the streaming loop imports no cutover code and the cutover no streaming loop (it drives
  one through a protocol); nothing but the command line starts the coordinator or the
  dev tools; dev-only dependencies stay in `devtools/`;
- no module keeps mutable state at module level or patches a third-party module when
  it is imported;
- no file over 400 lines, no function over 60 (complexity is ruff's C901/PLR09xx, in
  `make lint`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "wacdc"

LEAVES = ("wacdc", "wacdc.errors", "wacdc.log", "wacdc.config", "wacdc.events",
          "wacdc.gtidset", "wacdc.observe.metrics")
CONTROL_PLANE = ("wacdc.coordinator", "wacdc.stream", "wacdc.runtime", "wacdc.snapshot",
                 "wacdc.evolution", "wacdc.cutover", "wacdc.observe", "wacdc.check",
                 "wacdc.verify", "wacdc.cli", "wacdc.devtools")
DEV_ONLY = ("testcontainers", "docker", "hypothesis", "pytest", "_pytest", "mypy",
            "pyinstrument")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
MUTATORS = frozenset({"append", "add", "update", "setdefault", "pop", "popitem", "clear",
                      "extend", "insert", "remove", "discard"})


def within(module: str, *packages: str) -> bool:
    """`module` is one of `packages` or inside one of them (`wacdc` alone: itself only)."""
    return any(module == p or (p != "wacdc" and module.startswith(p + "."))
               for p in packages)


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)  # wacdc modules
    external: set[str] = field(default_factory=set)  # top-level names of other packages


def _name_of(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(importer: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.name.split(".")
    if importer.path.name != "__init__.py":
        base.pop()
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def load_modules(root: Path = PACKAGE) -> dict[str, Module]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        module = Module(_name_of(path, root.parent), path,
                        ast.parse(path.read_text(), str(path)))
        modules[module.name] = module
    for module in modules.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                targets = [(alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [(_resolve(module, node), [alias.name for alias in node.names])]
            else:
                continue
            for target, names in targets:
                if target != "wacdc" and not target.startswith("wacdc."):
                    module.external.add(target.split(".")[0])
                    continue
                submodules = {f"{target}.{n}" for n in names} & modules.keys()
                module.imports |= submodules or {target}
                if names and len(submodules) < len(names):
                    module.imports.add(target)
        module.imports.discard(module.name)
    return modules


MODULES = load_modules()


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for dep in sorted(modules[name].imports & modules.keys()):
            if dep not in index:
                visit(dep)
                low[name] = min(low[name], low[dep])
            elif dep in stack:
                low[name] = min(low[name], index[dep])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return found


def edges(modules: dict[str, Module]) -> Iterator[tuple[str, str]]:
    for module in modules.values():
        for dep in sorted(module.imports):
            yield module.name, dep


def allowed(importer: str, imported: str) -> str | None:
    """None when `importer` may import `imported`; else the rule it breaks."""
    if within(importer, "wacdc.devtools") and within(imported, "wacdc.devtools"):
        return None
    if within(imported, "wacdc.devtools") and importer != "wacdc.cli":
        return "only the command line (`wacdc demo`) imports the dev tools"
    if within(imported, "wacdc.cli"):
        return "nothing imports the command line"
    if within(imported, "wacdc.coordinator") and importer != "wacdc.cli":
        return "only the command line starts the coordinator"
    if importer in LEAVES and importer != "wacdc.observe.metrics" and not within(
            imported, *LEAVES):
        return "a leaf module imports only leaves"
    layers = {
        "wacdc.schema": ("wacdc.schema",),
        "wacdc.source": ("wacdc.schema", "wacdc.source"),
        "wacdc.sink": ("wacdc.schema", "wacdc.sink"),
    }
    for layer, reach in layers.items():
        if within(importer, layer) and not within(imported, *LEAVES, *reach):
            return f"{layer} imports only {', '.join((*reach, 'the leaves'))}"
    if within(importer, "wacdc.stream") and within(imported, "wacdc.cutover"):
        return "the streaming loop imports no cutover code"
    if within(importer, "wacdc.cutover") and within(imported, "wacdc.stream"):
        return "the cutover drives the stream through a protocol, not an import"
    if within(importer, "wacdc.observe") and within(
            imported, "wacdc.cutover", "wacdc.stream", "wacdc.snapshot"):
        return "observability reads the runtime state, never the phases' code"
    return None


def test_the_import_graph_sees_function_level_and_type_checking_imports(tmp_path: Path):
    pkg = tmp_path / "wacdc"
    (pkg / "inner").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "inner" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from wacdc.b import B\n")
    (pkg / "b.py").write_text("def f():\n    from wacdc import a\n    from . import c\n")
    (pkg / "c.py").write_text("import pytest\nfrom .inner import d\n")
    (pkg / "inner" / "d.py").write_text("from ..a import x\n")
    modules = load_modules(pkg)
    assert modules["wacdc.a"].imports == {"wacdc.b"}
    assert modules["wacdc.b"].imports == {"wacdc.a", "wacdc.c"}
    assert modules["wacdc.c"].imports == {"wacdc.inner.d"}
    assert modules["wacdc.c"].external == {"pytest"}
    assert modules["wacdc.inner.d"].imports == {"wacdc.a"}
    assert cycles(modules) == [["wacdc.a", "wacdc.b", "wacdc.c", "wacdc.inner.d"]]


def test_the_rules_catch_what_they_forbid():
    assert allowed("wacdc.sink.apply", "wacdc.source.binlog")
    assert allowed("wacdc.schema.ddl", "wacdc.source.connection")
    assert allowed("wacdc.source.binlog", "wacdc.sink.state")
    assert allowed("wacdc.source.decoder", "wacdc.coordinator")
    assert allowed("wacdc.stream", "wacdc.cutover.controller")
    assert allowed("wacdc.observe.http", "wacdc.cutover")
    assert allowed("wacdc.events", "wacdc.source.position")
    assert allowed("wacdc.verify", "wacdc.devtools.embedded")
    assert allowed("wacdc.source.decoder", "wacdc.observe.metrics") is None
    assert allowed("wacdc.source.decoder", "wacdc.schema.convert") is None
    assert allowed("wacdc.cli", "wacdc.devtools.demo") is None


def test_no_import_cycle():
    assert cycles(MODULES) == []


@pytest.mark.parametrize("importer", sorted(MODULES))
def test_dependencies_go_one_way(importer: str):
    broken = [f"{importer} -> {dep}: {why}" for dep in sorted(MODULES[importer].imports)
              if (why := allowed(importer, dep))]
    assert broken == []


def test_the_hot_path_imports_no_control_plane_module():
    hot = ("wacdc.events", "wacdc.gtidset", "wacdc.source", "wacdc.schema", "wacdc.sink")
    broken = [(a, b) for a, b in edges(MODULES)
              if within(a, *hot) and within(b, *CONTROL_PLANE) and b not in LEAVES]
    assert broken == []


def test_source_and_schema_depend_one_way_at_most():
    source_to_schema = any(within(a, "wacdc.source") and within(b, "wacdc.schema")
                           for a, b in edges(MODULES))
    schema_to_source = any(within(a, "wacdc.schema") and within(b, "wacdc.source")
                           for a, b in edges(MODULES))
    assert not (source_to_schema and schema_to_source)


def test_dev_only_dependencies_stay_in_devtools():
    broken = {name: sorted(m.external & set(DEV_ONLY)) for name, m in MODULES.items()
              if m.external & set(DEV_ONLY) and not within(name, "wacdc.devtools")}
    assert broken == {}


def _top_level_names(tree: ast.Module) -> dict[str, ast.expr]:
    bound = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.value is not None:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(
                node.target, ast.Name):
            bound[node.target.id] = node.value
    return bound


def _mutable(value: ast.expr) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp
                  | ast.SetComp):
        return True
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
        value.func.id in {"dict", "list", "set", "defaultdict", "OrderedDict", "deque"}


def mutated_module_state(module: Module) -> list[str]:
    """Module-level containers that code changes, and `global` rebinding."""
    containers = {n for n, v in _top_level_names(module.tree).items() if _mutable(v)}
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Global):
            found += [f"global {n}" for n in node.names]
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in MUTATORS:
            target = node.func.value
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [
                node.target]
            target = next((t.value for t in targets if isinstance(t, ast.Subscript)), None)
        if isinstance(target, ast.Name) and target.id in containers:
            found.append(f"{target.id} changed at line {node.lineno}")
    return sorted(found)


# Module-level objects of wacdc's own classes that may change, each with its reason.
STATEFUL_BY_DESIGN = {
    # A dead connection's server backend still holds its locks; when the target cannot
    # be reached to end it, whichever connection to that target opens next in this
    # process ends it. Cleanup, not a decision: nothing branches on what it holds.
    "wacdc.sink.connection._ORPHANS",
}


def _frozen_classes(tree: ast.Module) -> set[str]:
    """Classes of this module that cannot change: frozen dataclasses, NamedTuples, and
    classes that keep no attributes (markers)."""
    frozen = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = {ast.unparse(b) for b in node.bases}
        marks = [ast.unparse(d) for d in node.decorator_list]
        holds_state = any(isinstance(n, ast.AnnAssign | ast.Assign) for n in node.body) or any(
            isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            for n in ast.walk(node) if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign)
            for target in (n.targets if isinstance(n, ast.Assign) else [n.target]))
        if "NamedTuple" in bases or any("frozen=True" in m for m in marks) or not holds_state:
            frozen.add(node.name)
    return frozen


def stateful_module_objects(module: Module) -> list[str]:
    """Module-level instances of this module's own classes that can change."""
    mine = {n.name for n in module.tree.body if isinstance(n, ast.ClassDef)}
    frozen = _frozen_classes(module.tree)
    found = []
    for name, value in _top_level_names(module.tree).items():
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
                value.func.id in mine - frozen and f"{module.name}.{name}" not in \
                STATEFUL_BY_DESIGN:
            found.append(f"{name} = {value.func.id}(...)")
    return found


def import_time_patches(module: Module) -> list[str]:
    """Statements run at import that assign into another package's module or class,
    or call something named install/patch/apply."""
    foreign = set()
    for node in module.tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            source = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                origin = source or alias.name
                if not (origin or "").startswith("wacdc") and not (
                        isinstance(node, ast.ImportFrom) and node.level):
                    foreign.add((alias.asname or alias.name).split(".")[0])
    found = []
    for node in module.tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                root = target
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in foreign and root is not target:
                    found.append(f"line {node.lineno}: assigns {ast.unparse(target)}")
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            called = ast.unparse(node.value.func).rsplit(".", 1)[-1]
            if called.startswith(("install", "patch", "apply")):
                found.append(f"line {node.lineno}: calls {ast.unparse(node.value.func)}()")
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_level_mutable_state(name: str):
    assert mutated_module_state(MODULES[name]) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_level_object_that_changes(name: str):
    assert stateful_module_objects(MODULES[name]) == []


def test_the_stateful_object_check_catches_a_module_level_status():
    source = ("from dataclasses import dataclass\n"
              "class Status:\n    def set(self, v):\n        self.v = v\n"
              "@dataclass(frozen=True)\nclass Mark:\n    x: int = 0\n"
              "class _Zero:\n    pass\n"
              "STATUS = Status()\nMARK = Mark()\nZERO = _Zero()\n")
    module = Module("wacdc.fake", Path("fake.py"), ast.parse(source))
    assert stateful_module_objects(module) == ["STATUS = Status(...)"]
    assert all(name.rpartition(".")[0] in MODULES for name in STATEFUL_BY_DESIGN)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_time_patch_of_a_third_party_module(name: str):
    assert import_time_patches(MODULES[name]) == []


def test_the_state_and_patch_checks_catch_what_they_forbid():
    source = ("import lib\nfrom lib import Thing\nfrom wacdc import x\nROUTES = {}\n"
              "SEEN = set()\nCONST = {'a': 1}\nlib.flag = []\nThing.__init__ = None\n"
              "x.y = 1\ninstall()\n"
              "def reg(k):\n    ROUTES[k] = 1\n    SEEN.add(k)\n    global Z\n")
    module = Module("wacdc.fake", Path("fake.py"), ast.parse(source))
    assert mutated_module_state(module) == ["ROUTES changed at line 12",
                                            "SEEN changed at line 13", "global Z"]
    assert allowed("wacdc.source.decoder", "wacdc.errors") is None
    assert import_time_patches(module) == [
        "line 7: assigns lib.flag", "line 8: assigns Thing.__init__", "line 10: calls install()"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_are_small(name: str):
    module = MODULES[name]
    lines = len(module.path.read_text().splitlines())
    assert lines <= MAX_FILE_LINES, f"{module.path}: {lines} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(module.tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
