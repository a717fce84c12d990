"""What SQL a request costs: the statements an engine executes, and SQLite's plan for each, so a test
can say "no storage at all" or "only index lookups" without timing anything."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine


@contextlib.contextmanager
def recorded(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine executes inside the block, with its parameters (BEGIN/COMMIT left out)."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.strip().upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def full_scans(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    """SQLite's query plan of each statement: every step that reads a whole table ("SCAN <table>", work
    that grows with the table) rather than searching an index."""
    scans = []
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            scans += [f"{row[-1]}  <-  {statement.split()[0]} …" for row in plan if str(row[-1]).startswith("SCAN ")]
    return scans
