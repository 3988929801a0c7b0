"""The architecture as a test: which layer may import what, and what must never be.

Layers, bottom up (a layer imports only those listed for it):

    domain      pure values, the error tree, time, durations, events
    codecs      binary (Avro), JSON text, snappy
    endpoints   the registry, the handler's context, the built-ins
    store       the only place with SQL; one driver per database
    metrics     Prometheus counters
    upstream    calls to upstream services: HTTP endpoints from a file, a Kinetica upstream
    executor    runner, leases, rescue, retention pass
    core        the services the facades call (jobs, accounts, definitions)
    api         the facades; none imports another, none imports the executor or the store
    client      the Python client of the REST API
    cli         the edge, and cli/node.py, the composition root: may import anything

The checks are functions of a package folder, so each is also run on a small package made
to break it: a rule that cannot fail proves nothing.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jobstore"
MAX_MODULE_LINES = 600

BELOW: dict[str, set[str]] = {
    "domain": set(),
    "codecs": {"domain"},
    "endpoints": {"domain", "codecs"},
    "store": {"domain", "codecs"},
    "metrics": {"domain"},
    "upstream": {"domain", "codecs", "endpoints", "metrics"},
    "executor": {"domain", "codecs", "endpoints", "store", "metrics"},
    "core": {"domain", "codecs", "endpoints", "store", "metrics"},
    "api": {"domain", "codecs", "endpoints", "core", "metrics"},
    "client": {"__init__"},  # for __version__
    "__init__": {"domain", "endpoints"},  # re-exports endpoint, JobContext, JobFailed
    "__main__": {"cli"},
}
COMPOSITION_ROOT = "cli"  # the edge: it builds nodes from every layer

# third-party package -> the only modules (path prefixes) allowed to import it
OWNERS = {
    "sqlalchemy": ("store/",),
    "alembic": ("store/",),
    "asyncpg": ("store/",),
    "aiosqlite": ("store/",),
    "starlette": ("api/",),
    "jinja2": ("api/",),
    "swagger_ui_bundle": ("api/rest/docs_page.py",),
    "uvicorn": ("cli/serve.py",),
    "uvloop": ("cli/serve.py",),
    "prometheus_client": ("metrics.py",),
    "httpx": ("client/", "cli/jobs.py", "upstream/"),
    "rich": ("cli/jobs.py", "cli/schedules.py", "cli/limits.py", "cli/endpoints.py"),
    "croniter": ("domain/schedules.py",),
}
# Names that reveal a branch on the database kind; only the store may branch on it.
DIALECT_NAMES = {"dialect", "is_postgres", "is_sqlite"}
DIALECT_VALUES = {"postgresql", "postgres", "sqlite"}


@functools.cache
def parse(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once.

    CPython 3.11 before 3.11.8 can fail a parse that follows a RecursionError elsewhere in the
    process (python/cpython#106905: "AST constructor recursion depth mismatch"), and this
    suite provokes RecursionErrors on purpose; the parse succeeds when tried again.
    """
    source = path.read_text()
    try:
        return ast.parse(source, str(path))
    except SystemError:
        return ast.parse(source, str(path))


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(path: Path) -> set[str]:
    """Every absolute import of a module, anywhere in it (functions included)."""
    names: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_modules(path: Path, mods: dict[str, Path]) -> set[str]:
    """The package's modules this module imports. `from pkg import module` imports the
    module, not (for this purpose) the package that holds it."""
    found = {name for name in imported(path) if name in mods}
    return {name for name in found if not any(n.startswith(name + ".") for n in found)}


def layer_of(package: Path, path: Path) -> str:
    first = path.relative_to(package).parts[0]
    return first.removesuffix(".py")


def layer_violations(package: Path) -> Iterator[str]:
    root = package.name
    mods = modules(package)
    for name, path in mods.items():
        layer = layer_of(package, path)
        if layer == COMPOSITION_ROOT:
            continue
        allowed = BELOW.get(layer)
        if allowed is None:
            yield f"{name}: layer {layer!r} is not in the layer table"
            continue
        for target in imported(path):
            if target not in mods or target == root:
                continue
            target_layer = layer_of(package, mods[target])
            if target_layer != layer and target_layer not in allowed:
                yield f"{name} ({layer}) imports {target} ({target_layer})"


def owner_violations(package: Path) -> Iterator[str]:
    for path in sorted(package.rglob("*.py")):
        source = path.relative_to(package).as_posix()
        for name in imported(path):
            top = name.split(".")[0]
            owners = OWNERS.get(top)
            if owners is not None and not source.startswith(owners):
                yield f"{source} imports {top}; only {', '.join(owners)} may"


def facade_violations(package: Path) -> Iterator[str]:
    api = package / "api"
    facades = sorted(p.name for p in api.iterdir() if (p / "__init__.py").is_file())
    for facade in facades:
        for path in sorted((api / facade).rglob("*.py")):
            for name in imported(path):
                for other in facades:
                    if other != facade and name.startswith(f"{package.name}.api.{other}"):
                        yield f"{path.relative_to(package)} imports another facade: {name}"


def import_cycles(package: Path) -> list[list[str]]:
    """Circles in the module import graph (each reported once, as a path)."""
    mods = modules(package)
    graph = {
        name: sorted(t for t in imported_modules(path, mods) if t != name)
        for name, path in mods.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def oversized(package: Path) -> Iterator[str]:
    for path in sorted(package.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            yield f"{path.relative_to(package)} has {lines} lines (at most {MAX_MODULE_LINES})"


def dialect_branches(package: Path) -> Iterator[str]:
    """Comparisons on the database kind outside the store."""
    for path in sorted(package.rglob("*.py")):
        source = path.relative_to(package).as_posix()
        if source.startswith("store/"):
            continue
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Compare):
                parts = [node.left, *node.comparators]
                values = {p.value for p in parts if isinstance(p, ast.Constant)}
                attrs = {p.attr for p in parts if isinstance(p, ast.Attribute)}
                if values & DIALECT_VALUES or attrs & DIALECT_NAMES:
                    yield f"{source}:{node.lineno} compares the database kind"
            elif isinstance(node, ast.Attribute) and node.attr in {"is_postgres", "is_sqlite"}:
                yield f"{source}:{node.lineno} asks whether the database is {node.attr[3:]}"


def swallowing_waits(package: Path) -> Iterator[str]:
    """asyncio.wait_for, which on Python 3.11 can swallow a cancel (see domain/loops.py)."""
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(parse(path)):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "wait_for"
                and isinstance(node.value, ast.Name)
                and node.value.id == "asyncio"
            ):
                source = path.relative_to(package).as_posix()
                yield f"{source}:{node.lineno} uses asyncio.wait_for (use wait_set)"


CHECKS = {
    "layers": lambda p: list(layer_violations(p)),
    "owners": lambda p: list(owner_violations(p)),
    "facades": lambda p: list(facade_violations(p)),
    "cycles": import_cycles,
    "size": lambda p: list(oversized(p)),
    "dialect": lambda p: list(dialect_branches(p)),
    "wait_for": lambda p: list(swallowing_waits(p)),
}


for _path in sorted(PACKAGE.rglob("*.py")):
    parse(_path)  # at collection: before any test can leave a RecursionError behind


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_jobstore_keeps_its_architecture(check: str) -> None:
    assert CHECKS[check](PACKAGE) == []


# Each rule, broken on purpose in a package of a few lines.
BROKEN: dict[str, dict[str, str]] = {
    "layers": {"core/jobs.py": "import pkg.executor.runner\n", "executor/runner.py": ""},
    "owners": {"core/jobs.py": "import sqlalchemy\n"},
    "facades": {
        "api/rest/__init__.py": "",
        "api/rest/routes.py": "from pkg.api.ui import routes\n",
        "api/ui/__init__.py": "",
        "api/ui/routes.py": "",
    },
    "cycles": {
        "endpoints/registry.py": "from pkg.endpoints import builtins\n",
        "endpoints/builtins.py": "from pkg.endpoints.registry import endpoint\n",
    },
    "size": {"core/jobs.py": "x = 1\n" * (MAX_MODULE_LINES + 1)},
    "dialect": {"executor/runner.py": "if db.dialect == 'postgresql':\n    pass\n"},
    "wait_for": {"executor/runner.py": "import asyncio\nasyncio.wait_for(wake.wait(), 1)\n"},
}


@pytest.mark.parametrize("check", sorted(BROKEN))
def test_each_rule_catches_its_break(check: str, tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **BROKEN[check]}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(package).parents:
            (package / folder / "__init__.py").touch()
        if not path.exists() or text:
            path.write_text(text)
    assert CHECKS[check](package) != []


def test_no_test_file_imports_another(tmp_path: Path) -> None:
    """Tests share helpers through tests/support/ and fixtures through conftest.py, never by
    importing a test module or a conftest (which loads one file as two modules)."""

    def offenders(root: Path) -> list[str]:
        found = []
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(parse(path)):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    module = node.module or ""
                    names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
                else:
                    continue
                for name in names:
                    if any(p.startswith("test_") or p == "conftest" for p in name.split(".")):
                        found.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
        return found

    assert offenders(Path(__file__).resolve().parent) == []
    (tmp_path / "test_a.py").write_text("from tests.store.test_jobs import new_job\n")
    (tmp_path / "test_b.py").write_text("import conftest\nfrom . import test_a\n")
    (tmp_path / "test_c.py").write_text("from tests.support.factories import new_job\n")
    assert offenders(tmp_path) == [
        "test_a.py:1 imports tests.store.test_jobs",
        "test_a.py:1 imports tests.store.test_jobs.new_job",
        "test_b.py:1 imports conftest",
        "test_b.py:2 imports .test_a",
    ]
