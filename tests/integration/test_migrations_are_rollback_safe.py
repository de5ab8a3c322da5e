"""Rollback-safe data changes: every migration is expand-only unless marked as a contract step.

A rollout runs release X and X+1 at once, and a rollback runs X on the schema X+1 migrated
to. So X's code must keep working on X+1's schema, and the rows X wrote must still be there
for X+1. Every test here runs on SQLite and on PostgreSQL, each on a fresh database that is
dropped afterwards. The services come from the registry (``Service.database``), not from a
list kept here.

1. ``test_each_migration_keeps_what_the_previous_release_uses`` applies each service's
   migrations one at a time to a database holding rows (``tests/support/migrations.py``).
   Each step must be additive (no table or column dropped or renamed, no type changed, no
   NOT NULL added without a server default, no unique key dropped or added on existing
   columns) and keep every row. A step is exempt only when its module declares
   ``contract = "<which release stopped using what it drops>"``. The head schema must also
   be additive over every earlier revision since the last contract step, since any of them
   may be the previous release's head.
2. The previous release's store code is not in the tree: only the current store is. The
   check on its schema is equivalent to running that code, for three reasons.
   ``test_tables_match_the_head_schema`` proves that a release's ``tables.py`` (everything
   its store names) is exactly its migration head. That held at the previous release too, so
   the previous store used exactly the previous head's schema. Check 1 proves the new head
   keeps every table, column, type, nullability and unique key of that schema and adds
   nothing the old INSERTs would have to fill. So every statement the previous store issues
   finds what it names, with the same types and the same constraints.
   ``test_rows_written_at_the_previous_revision_are_served_after_the_upgrade`` covers the
   data: rows written at the previous revision (only the columns that existed then) survive
   the upgrade to head, and the current store reads, changes and deletes them.
   ``test_this_releases_store_works_on_a_fresh_head`` runs the same probe on a fresh head.
3. The ``test_the_check_*`` tests run the same check on throwaway migrations in a temporary
   directory. They show that each forbidden change, a data-rewriting migration and a
   migration that only works on empty tables are caught, that the allowed changes are not,
   and that the contract marker must give a reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.links.sql_store import SqlLinkStore, url_hash
from delinkcious.links.tables import metadata as links_metadata
from delinkcious.links.tables import outbox
from delinkcious.model.errors import AlreadyExists, LimitExceeded
from delinkcious.model.events import Event, EventType
from delinkcious.model.links import Link, LinkStatus
from delinkcious.model.users import User
from delinkcious.news.sql_store import SqlNewsStore
from delinkcious.news.store import FeedItem, cursor_of
from delinkcious.news.tables import metadata as news_metadata
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from delinkcious.platform.sql_outbox import SqlOutbox
from delinkcious.social_graph.sql_store import SqlFollowStore
from delinkcious.social_graph.tables import metadata as social_graph_metadata
from delinkcious.users.sql_store import SqlUserStore
from delinkcious.users.store import Credentials, Session
from delinkcious.users.tables import metadata as users_metadata
from tests.support.migrations import (
    Rows,
    database_services,
    migrate,
    package,
    previous_revision,
    script_location,
    step_problems,
    walk,
    window_problems,
    write_rows,
)

OLD = "oldtimer"  # wrote their rows with the previous release
NEW = "newcomer"  # arrives with this one
T0 = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=1)
FOREVER = T0 + dt.timedelta(days=3650)


@pytest.fixture
async def engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a brand-new empty database of the backend under test."""
    engine = create_engine(fresh_database_url)
    yield engine
    await engine.dispose()


# -- the probes: what the previous release wrote, and this release's store on it --------------


@dataclass(frozen=True)
class Probe:
    """Rows as the previous release wrote them (head column names: columns a revision lacks
    are left out), and the current store reading, changing and deleting them, then doing
    the same with rows of its own."""

    rows: Callable[[], Rows]
    exercise: Callable[[AsyncEngine], Awaitable[None]]
    metadata: MetaData  # the service's tables.py


OLD_LINK = Link(
    url="https://old.example/kept",
    title="saved by the previous release",
    description="still here",
    tags=frozenset({"old", "kept"}),
    status=LinkStatus.VALID,
    created_at=T0,
    updated_at=T0,
)


def _links_rows() -> Rows:
    link_id = 900_001  # far from the ids the sequence hands the store
    return {
        "links": [
            {
                "id": link_id,
                "username": OLD,
                "url": OLD_LINK.url,
                "url_hash": url_hash(OLD_LINK.url),
                "title": OLD_LINK.title,
                "description": OLD_LINK.description,
                "tags": sorted(OLD_LINK.tags),
                "status": OLD_LINK.status.value,
                "created_at": T0,
                "updated_at": T0,
            }
        ],
        "link_tags": [
            {"link_id": link_id, "tag": tag, "username": OLD} for tag in sorted(OLD_LINK.tags)
        ],
        "link_owners": [{"username": OLD, "link_count": 1}],
    }


def _event(kind: EventType, author: str, url: str) -> Event:
    return Event(type=kind, author=author, url=url)


async def _exercise_links(engine: AsyncEngine) -> None:
    store = SqlLinkStore(engine)
    url = OLD_LINK.url
    try:
        assert await store.get(OLD, url) == OLD_LINK
        assert [s.link for s in await store.page(OLD, "kept", None, 10)] == [OLD_LINK]
        changed = dataclasses.replace(
            OLD_LINK, title="changed by this release", tags=frozenset({"new"}), updated_at=T1
        )
        assert await store.replace(OLD, T0, changed, _event(EventType.LINK_UPDATED, OLD, url))
        assert await store.set_status(OLD, url, LinkStatus.INVALID, "probe", "event-1")
        checked = dataclasses.replace(changed, status=LinkStatus.INVALID)
        assert [s.link for s in await store.page(OLD, "new", None, 10)] == [checked]
        assert await store.page(OLD, "kept", None, 10) == []
        # The previous release's counter still counts: one link, a cap of one.
        mine = dataclasses.replace(OLD_LINK, url="https://old.example/another")
        with pytest.raises(LimitExceeded):
            await store.insert(OLD, mine, 1, _event(EventType.LINK_ADDED, OLD, mine.url))
        assert await store.delete(OLD, url, _event(EventType.LINK_DELETED, OLD, url))
        assert await store.get(OLD, url) is None

        fresh = dataclasses.replace(OLD_LINK, url="https://new.example/", created_at=T1)
        await store.insert(NEW, fresh, 1, _event(EventType.LINK_ADDED, NEW, fresh.url))
        with pytest.raises(AlreadyExists):
            await store.insert(NEW, fresh, 2, _event(EventType.LINK_ADDED, NEW, fresh.url))
        assert [s.link for s in await store.page(NEW, None, None, 10)] == [fresh]
        assert await store.delete(NEW, fresh.url, _event(EventType.LINK_DELETED, NEW, fresh.url))
        assert await SqlOutbox(engine, outbox).size() == 4  # update, delete, add, delete
    finally:
        store.close()


def _users_rows() -> Rows:
    return {
        "users": [
            {
                "username": OLD,
                "email": "old@example.com",
                "password_hash": "$argon2id$old",
                "created_at": T0,
            }
        ],
        "sessions": [
            {"token_hash": "a" * 64, "username": OLD, "created_at": T0, "expires_at": FOREVER}
        ],
    }


async def _exercise_users(engine: AsyncEngine) -> None:
    store = SqlUserStore(engine)
    old_user = User(OLD, "old@example.com", T0)
    assert await store.get_credentials(OLD) == Credentials(old_user, "$argon2id$old")
    assert await store.get_session("a" * 64) == Session(OLD, FOREVER)
    await store.set_password_hash(OLD, "$argon2id$rehashed")
    assert await store.get_credentials(OLD) == Credentials(old_user, "$argon2id$rehashed")
    await store.add_session("b" * 64, Session(OLD, FOREVER), now=T1)
    assert await store.delete_session("a" * 64)
    assert await store.get_session("a" * 64) is None
    assert await store.get_session("b" * 64) == Session(OLD, FOREVER)

    await store.add_user(User(NEW, "new@example.com", T1), "$argon2id$new")
    with pytest.raises(AlreadyExists):
        await store.add_user(User(OLD, "again@example.com", T1), "$argon2id$again")
    credentials = await store.get_credentials(NEW)
    assert credentials is not None and credentials.user.email == "new@example.com"


def _social_graph_rows() -> Rows:
    return {"follows": [{"followed": OLD, "follower": "oldfan", "created_at": T0}]}


async def _exercise_social_graph(engine: AsyncEngine) -> None:
    store = SqlFollowStore(engine)
    assert await store.followers(OLD) == ["oldfan"]
    assert await store.following("oldfan") == [OLD]
    assert not await store.add(OLD, "oldfan")  # the old row still makes it unique
    assert await store.add(OLD, NEW)
    assert await store.followers(OLD) == [NEW, "oldfan"]
    assert await store.remove(OLD, "oldfan")
    assert not await store.remove(OLD, "oldfan")
    assert await store.followers(OLD) == [NEW]


OLD_EVENT = Event(
    type=EventType.LINK_ADDED,
    author=OLD,
    url=OLD_LINK.url,
    title=OLD_LINK.title,
    tags=("old",),
    id="0" * 32,
    time=T0,
)


def _news_rows() -> Rows:
    return {
        "news_items": [
            {
                "username": NEW,
                "event_id": OLD_EVENT.id,
                "type": OLD_EVENT.type.value,
                "author": OLD_EVENT.author,
                "url": OLD_EVENT.url,
                "title": OLD_EVENT.title,
                "tags": list(OLD_EVENT.tags),
                "time": T0,
                "payload": OLD_EVENT.to_json().decode(),
            }
        ],
        "news_feeds": [{"username": NEW, "size": 1}],
    }


async def _exercise_news(engine: AsyncEngine) -> None:
    store = SqlNewsStore(engine)
    assert await store.page(NEW, None, 10) == [FeedItem(cursor_of(OLD_EVENT), OLD_EVENT)]
    later = dataclasses.replace(OLD_EVENT, id="1" * 32, title="news of this release", time=T1)
    await store.append([NEW], later, cap=1)  # the old feed's size counts: the old event goes
    await store.append([NEW], later, cap=1)  # a redelivery changes nothing
    assert await store.page(NEW, None, 10) == [FeedItem(cursor_of(later), later)]


PROBES: dict[str, Probe] = {
    "links": Probe(_links_rows, _exercise_links, links_metadata),
    "users": Probe(_users_rows, _exercise_users, users_metadata),
    "social_graph": Probe(_social_graph_rows, _exercise_social_graph, social_graph_metadata),
    "news": Probe(_news_rows, _exercise_news, news_metadata),
}

SERVICES = database_services()
UPGRADABLE = [s for s in SERVICES if previous_revision(script_location(s)) is not None]


def test_every_service_with_a_database_has_a_probe() -> None:
    """A new service with a database must say what its old rows look like."""
    assert set(PROBES) == set(SERVICES)
    assert UPGRADABLE, "no service has a second migration: the upgrade path would not run"


# -- the real migrations --------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_each_migration_keeps_what_the_previous_release_uses(
    service: str, engine: AsyncEngine
) -> None:
    steps = await walk(engine, script_location(service))
    assert step_problems(steps) == [], (
        "a migration is not expand-only; mark it `contract = '<reason>'` only if the release "
        "before it already stopped using what it drops (tests/support/migrations.py)"
    )
    assert window_problems(steps) == []


@pytest.mark.parametrize("service", SERVICES)
async def test_tables_match_the_head_schema(service: str, engine: AsyncEngine) -> None:
    """What the store's code names is exactly what the migrations build: the link between
    "the previous head's schema is kept" and "the previous release's code still works"."""
    await upgrade(engine, package(service))

    def differences(conn: Connection) -> list[object]:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "version_table": f"{service}_alembic_version",
            },
        )
        return list(compare_metadata(context, PROBES[service].metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


@pytest.mark.parametrize("service", SERVICES)
async def test_this_releases_store_works_on_a_fresh_head(service: str, engine: AsyncEngine) -> None:
    await upgrade(engine, package(service))
    async with engine.begin() as conn:
        await conn.run_sync(write_rows, PROBES[service].rows())
    await PROBES[service].exercise(engine)


@pytest.mark.parametrize("service", UPGRADABLE)
async def test_rows_written_at_the_previous_revision_are_served_after_the_upgrade(
    service: str, engine: AsyncEngine
) -> None:
    previous = previous_revision(script_location(service))
    assert previous is not None
    await migrate(engine, script_location(service), previous)
    async with engine.begin() as conn:
        await conn.run_sync(write_rows, PROBES[service].rows())
    await upgrade(engine, package(service))  # as the new release's start-up does it
    await PROBES[service].exercise(engine)


# -- the check itself, on throwaway migrations -----------------------------------------------

_ENV = """\
from alembic import context
from sqlalchemy import MetaData

from delinkcious.platform.migrations import run_env

run_env(context, MetaData(), version_table="scratch_alembic_version")
"""

# Revision 0001 of every throwaway history: two tables, a unique key, an index.
_BASE = """\
op.create_table(
    "things",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.UniqueConstraint("name", name="uq_things_name"),
)
op.create_index("ix_things_size", "things", ["size"])
op.create_table("extras", sa.Column("id", sa.Integer, primary_key=True))
"""


def _history(directory: Path, *changes: str, marker: str | None = None) -> str:
    """A script location holding ``_BASE`` then one migration per change (the last one
    carrying ``marker``, e.g. ``contract = "..."``, when given)."""
    versions = directory / "versions"
    versions.mkdir(parents=True)
    (directory / "env.py").write_text(_ENV)
    for number, body in enumerate((_BASE, *changes), start=1):
        down = f'"{number - 1:04d}"' if number > 1 else "None"
        extra = f"{marker}\n" if marker is not None and number == len(changes) + 1 else ""
        (versions / f"{number:04d}_step.py").write_text(
            "import sqlalchemy as sa\nfrom alembic import op\n\n"
            f'revision = "{number:04d}"\ndown_revision = {down}\n{extra}\n\n'
            "def upgrade() -> None:\n" + textwrap.indent(body, "    ")
        )
    return str(directory)


def _batch(*lines: str) -> str:
    """Changes to ``things`` in a batch: how SQLite alters a table (PostgreSQL runs them as
    plain ALTERs)."""
    return 'with op.batch_alter_table("things") as batch:\n' + textwrap.indent(
        "\n".join(lines), "    "
    )


FORBIDDEN = {
    "drop a table": ('op.drop_table("extras")', "drops or renames table extras"),
    "rename a table": ('op.rename_table("extras", "more")', "drops or renames table extras"),
    "drop a column": (_batch('batch.drop_column("note")'), "drops or renames column things.note"),
    "rename a column": (
        _batch('batch.alter_column("note", new_column_name="remark")'),
        "drops or renames column things.note",
    ),
    "change a column's type": (
        _batch('batch.alter_column("name", type_=sa.String(16))'),
        "changes the type of things.name from VARCHAR(32) to VARCHAR(16)",
    ),
    "make a column NOT NULL": (
        _batch('batch.alter_column("note", existing_type=sa.Text, nullable=False)'),
        "makes things.note NOT NULL",
    ),
    # The usual way to get one past a table with rows: backfill with a default, then drop it.
    "add a NOT NULL column without a server default": (
        'op.add_column("things", sa.Column("colour", sa.String(8), nullable=False, '
        'server_default="red"))\n' + _batch('batch.alter_column("colour", server_default=None)'),
        "adds NOT NULL column things.colour without a server default",
    ),
    "drop a unique key": (
        _batch('batch.drop_constraint("uq_things_name", type_="unique")'),
        "drops the unique key things(name)",
    ),
    "add a unique key on existing columns": (
        _batch('batch.create_unique_constraint("uq_things_size", ["size"])'),
        "adds a unique key on existing columns things(size)",
    ),
}

# Forbidden changes the schema cannot show: caught by the rows written before each step.
DATA_LOSS = {
    "rewrite a column": ("op.execute(\"UPDATE things SET note = 'rewritten'\")", "things"),
    "delete rows": ('op.execute("DELETE FROM extras")', "extras"),
    # Same schema after as before, every value gone: a schema diff alone would pass it.
    "drop and re-add a column": (
        _batch('batch.drop_column("note")')
        + '\nop.add_column("things", sa.Column("note", sa.Text, nullable=True))',
        "things",
    ),
}

ALLOWED = {
    "add a nullable column": 'op.add_column("things", sa.Column("colour", sa.String(8)))',
    "add a NOT NULL column with a server default": (
        'op.add_column("things", sa.Column("colour", sa.String(8), nullable=False, '
        'server_default="red"))'
    ),
    "add a table": 'op.create_table("more", sa.Column("id", sa.Integer, primary_key=True))',
    "add and drop a plain index": (
        'op.create_index("ix_things_note", "things", ["name", "size"])\n'
        'op.drop_index("ix_things_size", table_name="things")'
    ),
    "make a column nullable": _batch(
        'batch.alter_column("size", existing_type=sa.Integer, nullable=True)'
    ),
    "add a unique key that includes a new column": (
        'op.add_column("things", sa.Column("slug", sa.String(32)))\n'
        + _batch('batch.create_unique_constraint("uq_things_slug", ["name", "slug"])')
    ),
    "backfill a new column": (
        'op.add_column("things", sa.Column("colour", sa.String(8)))\n'
        "op.execute(\"UPDATE things SET colour = 'red'\")"
    ),
}


@pytest.mark.parametrize(("change", "expected"), FORBIDDEN.values(), ids=list(FORBIDDEN))
async def test_the_check_refuses_each_forbidden_change(
    change: str, expected: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    steps = await walk(engine, _history(tmp_path, change))
    assert step_problems(steps) == [f"0002 (0002_step.py) {expected}"]
    # The head schema is no longer additive over the previous revision's either.
    assert window_problems(steps) == [f"head 0002 vs revision 0001: {expected}"]


@pytest.mark.parametrize(("change", "table"), DATA_LOSS.values(), ids=list(DATA_LOSS))
async def test_the_check_refuses_a_migration_that_loses_or_rewrites_rows(
    change: str, table: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    problems = step_problems(await walk(engine, _history(tmp_path, change)))
    assert len(problems) == 1 and f"loses or changes 2 of 2 rows of {table} " in problems[0]


async def test_the_check_refuses_a_migration_that_works_only_on_empty_tables(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    change = 'op.add_column("things", sa.Column("colour", sa.String(8), nullable=False))'
    problems = step_problems(await walk(engine, _history(tmp_path, change)))
    assert len(problems) == 1 and "fails on a database that holds rows" in problems[0]


async def test_the_check_catches_a_sqlite_batch_that_cascades_to_child_rows(
    backend: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A trap for the next change to ``links``, found by this check.

    On SQLite, batch mode copies a table, drops the original and renames the copy. The
    engine turns SQLite's foreign keys on, so dropping the original deletes every row
    that references it with ON DELETE CASCADE. Even an allowed change to ``links`` made in
    batch would empty ``link_tags`` of every embedded install. PostgreSQL alters in place
    and loses nothing.
    """
    child = (
        'op.create_table("parts", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("thing_id", sa.Integer, sa.ForeignKey("things.id", ondelete="CASCADE"), '
        "nullable=False))"
    )
    relax = _batch('batch.alter_column("size", existing_type=sa.Integer, nullable=True)')
    problems = step_problems(await walk(engine, _history(tmp_path, child, relax)))
    lost = "0003 (0003_step.py) loses or changes 2 of 2 rows of parts (compared on id, thing_id)"
    assert problems == ([lost] if backend == "sqlite" else [])


@pytest.mark.parametrize("change", ALLOWED.values(), ids=list(ALLOWED))
async def test_the_check_allows_expand_changes(
    change: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    steps = await walk(engine, _history(tmp_path, change))
    assert step_problems(steps) == []
    assert window_problems(steps) == []


CONTRACT = 'contract = "release 0.2.0 stopped reading and writing things.note and extras"'


async def test_a_contract_step_may_drop_what_an_earlier_release_stopped_using(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    drop = _batch('batch.drop_column("note")') + '\nop.drop_table("extras")'
    later = 'op.add_column("things", sa.Column("colour", sa.String(8)))'
    location = _history(tmp_path, drop, later)
    # The marker goes on the dropping step (0002), not on the last one.
    step = Path(location) / "versions" / "0002_step.py"
    step.write_text(step.read_text().replace("\n\ndef upgrade", f"\n{CONTRACT}\n\ndef upgrade"))
    steps = await walk(engine, location)
    assert step_problems(steps) == []
    assert window_problems(steps) == []  # 0003 is additive over 0002; before that is retired


@pytest.mark.parametrize("marker", ["contract = True", 'contract = ""', "contract = None"])
async def test_a_contract_marker_must_say_why(
    marker: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    steps = await walk(engine, _history(tmp_path, 'op.drop_table("extras")', marker=marker))
    problems = step_problems(steps)
    assert any("must be a sentence saying which release" in p for p in problems), problems
    assert any("drops or renames table extras" in p for p in problems)  # and no exemption
