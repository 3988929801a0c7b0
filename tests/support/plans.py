"""EXPLAIN helpers: the statements the store sends, captured on their way to the cursor, and
their plans (PostgreSQL's JSON plans; SQLite's EXPLAIN QUERY PLAN rows)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from jobstore.store import Database


class Sent:
    """The statements JobStore sends, as the driver receives them."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine.sync_engine
        self.statements: list[tuple[str, Any]] = []

    def _record(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        self.statements.append((statement, params))

    def __enter__(self) -> Sent:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def only(self) -> tuple[str, Any]:
        assert len(self.statements) == 1, [s for s, _ in self.statements]
        return self.statements[0]


async def explain(
    db: Database, call: Callable[[Any], Awaitable[object]], *, generic: bool = False
) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: the statement `call` sends and its plan; nothing it writes is kept.
    `generic`: the plan of the prepared statement forced to its generic plan."""

    async def plan_of(conn: Any, statement: str, params: Any) -> Any:
        if not generic:
            result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params)
            return result.scalar_one()
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql(f"PREPARE jobstore_explained AS {statement}")
        args = ", ".join(literal(p) for p in params)
        sql = f"EXPLAIN (FORMAT JSON) EXECUTE jobstore_explained({args})"
        raw = (await conn.exec_driver_sql(sql)).scalar_one()
        await conn.exec_driver_sql("DEALLOCATE jobstore_explained")
        return raw

    statement, raw = await _explained(db, call, plan_of)
    plan = json.loads(raw) if isinstance(raw, str) else raw
    return statement, plan[0]["Plan"]


async def explain_sqlite(
    db: Database, call: Callable[[Any], Awaitable[object]]
) -> tuple[str, list[str]]:
    """SQLite: the statement `call` sends and the details of its EXPLAIN QUERY PLAN rows
    ("SEARCH jobs USING INTEGER PRIMARY KEY (rowid=?)", ...); nothing it writes is kept."""

    async def plan_of(conn: Any, statement: str, params: Any) -> list[str]:
        rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
        return [str(row[3]) for row in rows]

    return await _explained(db, call, plan_of)


async def _explained(
    db: Database,
    call: Callable[[Any], Awaitable[object]],
    plan_of: Callable[[Any, str, Any], Awaitable[Any]],
) -> tuple[str, Any]:
    async with db.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            with Sent(db) as sent:
                await call(conn)
            statement, params = sent.only()
            return statement, await plan_of(conn, statement, params)
        finally:
            await transaction.rollback()


def literal(value: Any) -> str:
    """A parameter as SQL text, for EXECUTE (which takes no bound parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a PostgreSQL JSON plan, the root first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def assert_uses(plan: dict[str, Any], index: str, statement: str) -> None:
    nodes = list(plan_nodes(plan))
    shown = json.dumps(plan, indent=1)
    on_jobs = [n for n in nodes if n.get("Relation Name") == "jobs"]
    assert on_jobs, f"no scan of jobs in the plan of\n{statement}\n{shown}"
    assert any(n.get("Index Name") == index for n in on_jobs), (
        f"{index} is not used by\n{statement}\n{shown}"
    )
    assert not [n for n in on_jobs if n["Node Type"] == "Seq Scan"], (
        f"sequential scan of jobs in\n{statement}\n{shown}"
    )
    assert not [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")], (
        f"sort in\n{statement}\n{shown}"
    )
