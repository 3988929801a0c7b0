"""The architecture's import rules, checked on the source (STYLE.md, "A layout that shows ...")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jobstore"

# third-party package -> the only places allowed to import it
OWNERS = {
    "sqlalchemy": ("store/",),
    "alembic": ("store/",),
    "asyncpg": ("store/",),
    "aiosqlite": ("store/",),
    "starlette": ("api/",),
    "uvicorn": ("cli.py",),
    "uvloop": ("cli.py",),
    "prometheus_client": ("metrics.py",),
    "jinja2": ("api/",),
    "httpx": ("client.py", "cli_jobs.py"),
    "rich": ("cli_jobs.py",),
}
# layer -> jobstore modules it must not import (dependencies point down only)
FORBIDDEN = {
    "models.py": ("jobstore.store", "jobstore.executor", "jobstore.api", "jobstore.core.jobs"),
    "errors.py": ("jobstore.store", "jobstore.executor", "jobstore.api", "jobstore.core.jobs"),
    "codecs/": ("jobstore.store", "jobstore.executor", "jobstore.api", "jobstore.core.jobs"),
    "store/": ("jobstore.executor", "jobstore.api", "jobstore.core.jobs", "jobstore.cli.main"),
    "executor/": ("jobstore.api", "jobstore.core.jobs", "jobstore.cli.main"),
    "service.py": ("jobstore.api", "jobstore.cli.main"),
    "metrics.py": ("jobstore.store", "jobstore.executor", "jobstore.api", "jobstore.core.jobs"),
    "cdm/": ("jobstore.api", "jobstore.cli.main", "jobstore.executor.runner"),
    "api/": ("jobstore.cli.main", "jobstore.store"),
    "client.py": ("jobstore.store", "jobstore.executor", "jobstore.api", "jobstore.core.jobs"),
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


SOURCES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("source", SOURCES)
def test_layer_rules(source: str) -> None:
    found = imports(PACKAGE / source)
    for package, owners in OWNERS.items():
        used = {n for n in found if n == package or n.startswith(package + ".")}
        if used:
            assert source.startswith(owners), f"{source} imports {sorted(used)}; only {owners} may"
    for layer, banned in FORBIDDEN.items():
        if source.startswith(layer):
            bad = {n for n in found if n.startswith(banned)}
            assert not bad, f"{source} ({layer}) must not import {sorted(bad)}"


def test_facades_do_not_import_each_other() -> None:
    facades = [
        p.name for p in (PACKAGE / "api").iterdir() if p.is_dir() and p.name != "__pycache__"
    ]
    for facade in facades:
        for path in (PACKAGE / "api" / facade).rglob("*.py"):
            others = {
                n
                for n in imports(path)
                for o in facades
                if o != facade and n.startswith(f"jobstore.api.{o}")
            }
            assert not others, f"{path} imports another facade: {sorted(others)}"
