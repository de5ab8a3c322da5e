"""In-memory fakes of the storage ports, for unit tests (pure Python, no I/O).

They follow the SQL stores' semantics, not just their signatures:

* ``FakeLinkStore`` (``delinkcious.links.store.LinkStore``): links get increasing ids;
  ``page`` lists newest first by ``(created_at, id)``, strictly after the keyset cursor,
  with an exact tag match; ``insert`` counts against the cap *before* it checks the url
  (as ``SqlLinkStore._take_slot`` does), raising ``LimitExceeded`` / ``AlreadyExists``
  and storing nothing on failure; ``replace`` is an optimistic write keyed on
  ``updated_at`` that keeps ``created_at`` and the id; ``delete`` frees a slot.
* The links port is growing an outbox (``event`` on every change, ``set_status`` for
  check results applied once per event id); the fake takes ``event`` as optional and keeps
  the events of committed changes, in order, in ``outbox``.
* ``FakeUserStore`` (``delinkcious.users.store.UserStore``): usernames are unique as
  given (the manager canonicalises them); ``add_session`` first drops the user's
  sessions that expired at or before ``now``; sessions of unknown users are refused
  like the SQL foreign key would.
* ``FakeSocialGraph`` (``delinkcious.model.social.SocialGraphManager``): a plain map of
  followers without the users service behind it (any name may follow any other); ``error``
  makes every read fail like an outage; ``add_follower`` sets a follow up synchronously,
  for fixtures.

Each fake counts its calls in ``calls`` so a test can tell how the manager used it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

from delinkcious.links.store import Cursor, StoredLink
from delinkcious.model.errors import AlreadyExists, InvalidArgument, LimitExceeded, NotFound
from delinkcious.model.links import Link, LinkStatus
from delinkcious.model.users import User
from delinkcious.users.store import Credentials, Session


@dataclass(slots=True)
class _Row:
    id: int
    username: str
    link: Link

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.link.created_at, self.id)


class FakeLinkStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], _Row] = {}
        self._next_id = 1
        self.calls: Counter[str] = Counter()
        self.outbox: list[object] = []
        self.processed: set[tuple[str, str]] = set()

    def _enqueue(self, event: object | None) -> None:
        if event is not None:
            self.outbox.append(event)

    # -- helpers for tests -------------------------------------------------------------
    def count(self, username: str) -> int:
        return sum(1 for row in self._rows.values() if row.username == username)

    def all_links(self, username: str) -> list[Link]:
        """Every link of the user, in the order ``page`` lists them."""
        return [stored.link for stored in self._ordered(username)]

    def _ordered(self, username: str) -> list[StoredLink]:
        rows = [row for row in self._rows.values() if row.username == username]
        rows.sort(key=lambda row: row.cursor, reverse=True)
        return [StoredLink(cursor=row.cursor, link=row.link) for row in rows]

    # -- LinkStore ---------------------------------------------------------------------
    async def insert(
        self, username: str, link: Link, max_links: int, event: object | None = None
    ) -> None:
        self.calls["insert"] += 1
        if self.count(username) >= max_links:
            raise LimitExceeded(
                f"a user can keep at most {max_links} links", code="link_limit_reached"
            )
        if (username, link.url) in self._rows:
            raise AlreadyExists(
                f"a link with url {link.url!r} is already saved", code="link_exists"
            )
        self._rows[(username, link.url)] = _Row(id=self._next_id, username=username, link=link)
        self._next_id += 1
        self._enqueue(event)

    async def get(self, username: str, url: str) -> Link | None:
        self.calls["get"] += 1
        row = self._rows.get((username, url))
        return row.link if row is not None else None

    async def replace(
        self,
        username: str,
        expected_updated_at: dt.datetime,
        link: Link,
        event: object | None = None,
    ) -> bool:
        self.calls["replace"] += 1
        row = self._rows.get((username, link.url))
        if row is None or row.link.updated_at != expected_updated_at:
            return False
        # Like the SQL UPDATE: the id and created_at stay, everything else is overwritten.
        row.link = dataclasses.replace(link, created_at=row.link.created_at)
        self._enqueue(event)
        return True

    async def delete(self, username: str, url: str, event: object | None = None) -> bool:
        self.calls["delete"] += 1
        if self._rows.pop((username, url), None) is None:
            return False
        self._enqueue(event)
        return True

    async def set_status(
        self, username: str, url: str, status: LinkStatus, consumer: str, event_id: str
    ) -> bool:
        """Apply a check result once per (consumer, event id); False if seen or the link is gone."""
        self.calls["set_status"] += 1
        if (consumer, event_id) in self.processed:
            return False
        self.processed.add((consumer, event_id))
        row = self._rows.get((username, url))
        if row is None:
            return False
        row.link = dataclasses.replace(row.link, status=status)
        return True

    async def page(
        self, username: str, tag: str | None, after: Cursor | None, limit: int
    ) -> list[StoredLink]:
        self.calls["page"] += 1
        result: list[StoredLink] = []
        for stored in self._ordered(username):
            if tag is not None and tag not in stored.link.tags:
                continue
            if after is not None and not stored.cursor < after:
                continue
            result.append(stored)
            if len(result) == limit:
                break
        return result


class FakeUserStore:
    def __init__(self) -> None:
        self.users: dict[str, Credentials] = {}
        self.sessions: dict[str, tuple[Session, dt.datetime]] = {}
        self.calls: Counter[str] = Counter()

    async def add_user(self, user: User, password_hash: str) -> None:
        self.calls["add_user"] += 1
        if user.username in self.users:
            raise AlreadyExists(f"the username {user.username!r} is taken", code="username_taken")
        self.users[user.username] = Credentials(user=user, password_hash=password_hash)

    async def get_credentials(self, username: str) -> Credentials | None:
        self.calls["get_credentials"] += 1
        return self.users.get(username)

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        self.calls["set_password_hash"] += 1
        credentials = self.users.get(username)
        if credentials is not None:
            self.users[username] = Credentials(user=credentials.user, password_hash=password_hash)

    async def add_session(self, token_hash: str, session: Session, now: dt.datetime) -> None:
        self.calls["add_session"] += 1
        # One transaction in SQL: a refused insert rolls the clean-up back too.
        expired = [
            key
            for key, (stored, _created) in self.sessions.items()
            if stored.username == session.username and stored.expires_at <= now
        ]
        if session.username not in self.users:
            raise ValueError(f"no user {session.username!r} (foreign key)")
        if token_hash in self.sessions and token_hash not in expired:
            raise ValueError("duplicate session token hash (primary key)")
        for key in expired:
            del self.sessions[key]
        self.sessions[token_hash] = (session, now)

    async def get_session(self, token_hash: str) -> Session | None:
        self.calls["get_session"] += 1
        entry = self.sessions.get(token_hash)
        return entry[0] if entry is not None else None

    async def delete_session(self, token_hash: str) -> bool:
        self.calls["delete_session"] += 1
        return self.sessions.pop(token_hash, None) is not None


class FakeSocialGraph:
    def __init__(self) -> None:
        self.followers: dict[str, list[str]] = defaultdict(list)
        self.error: Exception | None = None
        self.calls: Counter[str] = Counter()

    # -- helpers for tests -------------------------------------------------------------
    def add_follower(self, followed: str, follower: str) -> None:
        self.followers[followed].append(follower)

    def _check_outage(self) -> None:
        if self.error is not None:
            raise self.error

    # -- SocialGraphManager ------------------------------------------------------------
    async def follow(self, followed: str, follower: str) -> None:
        self.calls["follow"] += 1
        if followed == follower:
            raise InvalidArgument("you cannot follow yourself", code="cannot_follow_self")
        if follower in self.followers[followed]:
            raise AlreadyExists(f"you already follow {followed!r}", code="already_following")
        self.add_follower(followed, follower)

    async def unfollow(self, followed: str, follower: str) -> None:
        self.calls["unfollow"] += 1
        if follower not in self.followers[followed]:
            raise NotFound(f"you do not follow {followed!r}", code="not_following")
        self.followers[followed].remove(follower)

    async def get_following(self, username: str) -> list[str]:
        self.calls["get_following"] += 1
        self._check_outage()
        return [followed for followed, users in self.followers.items() if username in users]

    async def get_followers(self, username: str) -> list[str]:
        self.calls["get_followers"] += 1
        self._check_outage()
        return list(self.followers[username])
