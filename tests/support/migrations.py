"""Expand/contract, checked on a real database: what each migration does to the schema and rows.

During a rollout the previous release runs beside the new one, and a rollback runs it on the
schema the new one migrated to. So a migration must be *expand-only*: the previous
release's code must keep working on the schema it leaves. These changes are forbidden
because that code still uses what they change:

- dropping or renaming a table or a column (a rename looks like a drop plus an add);
- changing a column's type, or making an existing column NOT NULL;
- adding a NOT NULL column without a server default to an existing table (the previous
  release's INSERTs do not name it);
- dropping a unique key (primary key, unique constraint or unique index: the previous release
  relies on it to detect duplicates, and ``ON CONFLICT`` needs it), or adding one made only
  of existing columns (the previous release's writes could start to fail).

Every row must also survive a migration, unchanged in the columns that existed before it.

**Contract steps.** Removing something is the second half of a change. First a release stops
using it (expand), then a later migration drops it (contract). Such a migration says so with
a module-level sentence naming the release that stopped using what it drops::

    # links.legacy_title: written and read by nothing since 0.4.0, which reads `title`.
    contract = "release 0.4.0 stopped reading and writing links.legacy_title"

A contract step is exempt from both checks: it may drop columns, tables and their data.
``contract`` must be a non-empty string, so ``True`` or ``""`` is refused and the reason is
always written down. A contract step also closes the rollout window (``window_problems``):
code older than its down revision is no longer expected to run beside head.

The check looks at what Alembic actually does, not at the migration's text. ``walk`` goes
through the history one revision at a time on a real database. Before each step it writes
synthetic rows into every table; after the step it compares the schema (SQLAlchemy's
inspector) and the rows with what was there before.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy import JSON, Column, Connection, MetaData, Table, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious import registry

Rows = Mapping[str, Sequence[Mapping[str, Any]]]
"""Rows by table name."""


def database_services() -> tuple[str, ...]:
    """The services that own a SQL database, and so ship migrations: from the registry."""
    return tuple(service.name for service in registry.SERVICES if service.database)


def package(service: str) -> str:
    """The package ``delinkcious.platform.migrations.upgrade`` takes for ``service``."""
    return f"delinkcious.{service}"


def script_location(service: str) -> str:
    """Where a service's migrations live (the location ``delinkcious migrate`` uses)."""
    return f"{package(service)}:migrations"


def _config(location: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", location)
    config.attributes["connection"] = connection
    return config


def history(location: str) -> list[Script]:
    """The migrations at ``location``, oldest first. A branched history fails here."""
    scripts = ScriptDirectory.from_config(_config(location))
    scripts.get_current_head()  # raises when there are several heads
    return list(reversed(list(scripts.walk_revisions())))


def previous_revision(location: str) -> str | None:
    """The revision before head: the newest schema the previous release may have run on."""
    down = history(location)[-1].down_revision
    assert down is None or isinstance(down, str), "merge revisions are not expected here"
    return down


async def migrate(engine: AsyncEngine, location: str, revision: str) -> None:
    """Upgrade to ``revision`` the way ``delinkcious migrate`` does (without its lock)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(location, sync), revision))


def contract_reason(script: Script) -> str | None:
    """Why a migration may contract the schema, or None for an (ordinary) expand step.

    Raises ValueError when the marker is there but says nothing (``True``, ``""``).
    """
    if not hasattr(script.module, "contract"):
        return None
    reason = script.module.contract
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(
            f"`contract = {reason!r}`: it must be a sentence saying which release stopped "
            "using what this migration drops"
        )
    return reason


def _is_contract(script: Script) -> bool:
    try:
        return contract_reason(script) is not None
    except ValueError:
        return False  # an unexplained contract step gets no exemption


# -- the schema, as the inspector sees it -----------------------------------------------------


@dataclass(frozen=True)
class ColumnShape:
    type: str  # compiled for the database's dialect, e.g. VARCHAR(32) COLLATE "C"
    nullable: bool
    server_default: bool


@dataclass(frozen=True)
class TableShape:
    columns: Mapping[str, ColumnShape]
    # Column sets that must be unique: the primary key, unique constraints, unique indexes.
    unique_keys: frozenset[tuple[str, ...]]


Schema = Mapping[str, TableShape]


def _ours(table: str) -> bool:
    """Alembic's version tables are bookkeeping, not schema the code uses."""
    return not table.endswith("alembic_version")


def read_schema(conn: Connection) -> Schema:
    inspector = inspect(conn)
    schema: dict[str, TableShape] = {}
    for name in filter(_ours, inspector.get_table_names()):
        columns = {
            column["name"]: ColumnShape(
                type=str(column["type"].compile(dialect=conn.dialect)),
                nullable=column["nullable"],
                server_default=column.get("default") is not None,
            )
            for column in inspector.get_columns(name)
        }
        keys: set[tuple[str, ...]] = set()
        if primary := inspector.get_pk_constraint(name)["constrained_columns"]:
            keys.add(tuple(sorted(primary)))
        for constraint in inspector.get_unique_constraints(name):
            keys.add(tuple(sorted(constraint["column_names"])))
        for index in inspector.get_indexes(name):
            if index["unique"]:
                keys.add(tuple(sorted(c for c in index["column_names"] if c is not None)))
        schema[name] = TableShape(columns, frozenset(keys))
    return schema


def breaking_changes(before: Schema, after: Schema) -> list[str]:
    """What in ``after`` the code written for ``before`` could trip over (empty: additive)."""
    changes: list[str] = []
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            changes.append(f"drops or renames table {name}")
            continue
        for column, was in old.columns.items():
            now = new.columns.get(column)
            if now is None:
                changes.append(f"drops or renames column {name}.{column}")
            elif now.type != was.type:
                changes.append(f"changes the type of {name}.{column} from {was.type} to {now.type}")
            elif was.nullable and not now.nullable:
                changes.append(f"makes {name}.{column} NOT NULL")
        for column in new.columns.keys() - old.columns.keys():
            added = new.columns[column]
            if not added.nullable and not added.server_default:
                changes.append(f"adds NOT NULL column {name}.{column} without a server default")
        for key in sorted(old.unique_keys - new.unique_keys):
            changes.append(f"drops the unique key {name}({', '.join(key)})")
        for key in sorted(new.unique_keys - old.unique_keys):
            if set(key) <= old.columns.keys():
                changes.append(f"adds a unique key on existing columns {name}({', '.join(key)})")
    return changes


# -- rows --------------------------------------------------------------------------------------


def _reflect(conn: Connection) -> list[Table]:
    """The tables as they are now, parents before children (foreign keys)."""
    metadata = MetaData()
    metadata.reflect(conn)
    return [table for table in metadata.sorted_tables if _ours(table.name)]


def _synthetic_value(column: Column[Any], n: int) -> Any:
    """A value for row ``n``, distinct per row, that fits the column's type."""
    kind = column.type
    if isinstance(kind, JSON):
        return {"row": n, "column": column.name}
    try:
        python = kind.python_type
    except NotImplementedError:
        python = object
    if python is bool:
        return n % 2 == 0
    if python is int:
        return 1_000_000 + n
    if python is float:
        return n + 0.5
    if python is decimal.Decimal:
        return decimal.Decimal(n) + decimal.Decimal("0.25")
    if python is str:
        length = getattr(kind, "length", None)
        return f"{n}-{column.name}"[:length]
    if python is dt.datetime:
        value = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n, microseconds=n)
        return value if getattr(kind, "timezone", False) else value.replace(tzinfo=None)
    if python is dt.date:
        return dt.date(2026, 1, 1) + dt.timedelta(days=n)
    raise TypeError(
        f"no synthetic value for {column.table.name}.{column.name} ({kind}): "
        "teach tests/support/migrations.py:_synthetic_value one"
    )


def write_synthetic_rows(conn: Connection, first: int, count: int = 2) -> None:
    """``count`` rows in every table; a foreign key takes the value of its parent's row."""
    written: dict[str, list[dict[str, Any]]] = {}
    for table in _reflect(conn):
        rows = []
        for j in range(count):
            row: dict[str, Any] = {}
            for column in table.columns:
                parent = next(iter(column.foreign_keys), None)
                if parent is not None and parent.column.table.name in written:
                    row[column.name] = written[parent.column.table.name][j][parent.column.name]
                else:
                    row[column.name] = _synthetic_value(column, first + j)
            rows.append(row)
        conn.execute(insert(table), rows)
        written[table.name] = rows


def write_rows(conn: Connection, rows: Rows) -> None:
    """``rows`` as a release on the current schema could have written them: only the tables
    and columns that exist now (newer ones are what that release did not know)."""
    tables = {table.name: table for table in _reflect(conn)}
    for table in tables.values():  # parents first
        if wanted := rows.get(table.name):
            present = [{k: v for k, v in row.items() if k in table.c} for row in wanted]
            conn.execute(insert(table), present)


Contents = Mapping[str, Sequence[Mapping[str, Any]]]


def read_contents(conn: Connection) -> Contents:
    return {
        table.name: [dict(row._mapping) for row in conn.execute(select(table))]
        for table in _reflect(conn)
    }


def lost_rows(before: Schema, after: Schema, old: Contents, new: Contents) -> list[str]:
    """Rows of ``old`` missing from ``new``, compared on the columns both schemas have."""
    problems = []
    for name, rows in old.items():
        if name not in after or not rows:
            continue  # a dropped table is a schema change, reported as such
        common = [c for c in before[name].columns if c in after[name].columns]

        def key(row: Mapping[str, Any], columns: list[str] = common) -> str:
            return repr(tuple(row[c] for c in columns))

        missing = Counter(map(key, rows)) - Counter(map(key, new.get(name, ())))
        if missing:
            problems.append(
                f"loses or changes {missing.total()} of {len(rows)} rows of {name} "
                f"(compared on {', '.join(common)})"
            )
    return problems


# -- the walk ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One migration applied to a database holding rows, and what it left."""

    script: Script
    before: Schema
    after: Schema
    lost: list[str]  # rows lost or changed
    failure: str | None = None  # the migration raised

    @property
    def name(self) -> str:
        return f"{self.script.revision} ({Path(self.script.path).name})"


async def walk(engine: AsyncEngine, location: str) -> list[Step]:
    """Apply every migration at ``location`` in turn to the (empty) database of ``engine``.

    Before each step every existing table gets new synthetic rows; the walk stops at a
    migration that fails (one that only works on an empty table fails here, as in production).
    """
    steps: list[Step] = []
    async with engine.connect() as conn:
        schema = await conn.run_sync(read_schema)
    for number, script in enumerate(history(location)):
        async with engine.begin() as conn:
            await conn.run_sync(write_synthetic_rows, 10 * number)
            contents = await conn.run_sync(read_contents)
        try:
            await migrate(engine, location, script.revision)
        except Exception as exc:
            steps.append(Step(script, schema, schema, [], failure=f"{type(exc).__name__}: {exc}"))
            break
        async with engine.connect() as conn:
            after = await conn.run_sync(read_schema)
            contents_after = await conn.run_sync(read_contents)
        steps.append(
            Step(script, schema, after, lost_rows(schema, after, contents, contents_after))
        )
        schema = after
    return steps


def step_problems(steps: Sequence[Step]) -> list[str]:
    """Each expand step must be additive and keep every row; contract steps must say why."""
    problems: list[str] = []
    for step in steps:
        if step.failure is not None:
            problems.append(f"{step.name} fails on a database that holds rows: {step.failure}")
            continue
        try:
            if contract_reason(step.script) is not None:
                continue
        except ValueError as exc:
            problems.append(f"{step.name}: {exc}")
        problems += [
            f"{step.name} {change}" for change in breaking_changes(step.before, step.after)
        ]
        problems += [f"{step.name} {loss}" for loss in step.lost]
    return problems


def window_problems(steps: Sequence[Step]) -> list[str]:
    """The head schema must keep everything every earlier revision's code may still use.

    Any revision since the last contract step may be the previous release's head, and that
    release runs beside head during a rollout and after a rollback. So the head schema must
    be additive over each of them, not only over the step just before it.
    """
    if not steps or steps[-1].failure is not None:
        return []
    head = steps[-1]
    problems: list[str] = []
    for step in reversed(steps):
        if _is_contract(step.script) or step.script.down_revision is None:
            break  # older code is retired (contract) or there is none (the first migration)
        problems += [
            f"head {head.script.revision} vs revision {step.script.down_revision}: {change}"
            for change in breaking_changes(step.before, head.after)
        ]
    return problems
