"""``RedisNewsStore``: the news port on Redis, the distributed shape's feed store.

Per user, a sorted set (member = event id, score = event time in µs) orders the feed and
a hash keeps each event's JSON. Redis orders equal scores by member, bytewise, which is
exactly the ``(time, event id)`` order of ``NewsCursor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from redis.asyncio import Redis

from delinkcious.model.events import Event
from delinkcious.news.store import FeedItem, NewsCursor, cursor_of, from_micros, to_micros

# Per follower: add the event unless present (ZADD NX is the idempotency), and only then
# store its payload and pop the oldest events past the cap together with their payloads.
# One script, so a reader never sees an id without its payload or a feed over its cap.
_APPEND = """
local score, id, payload, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
for i = 1, #KEYS, 2 do
  if redis.call('ZADD', KEYS[i], 'NX', score, id) == 1 then
    redis.call('HSET', KEYS[i + 1], id, payload)
    local excess = redis.call('ZCARD', KEYS[i]) - cap
    if excess > 0 then
      local dropped = redis.call('ZPOPMIN', KEYS[i], excess)
      for j = 1, #dropped, 2 do
        redis.call('HDEL', KEYS[i + 1], dropped[j])
      end
    end
  end
end
return 0
"""

# (member, score) pairs, as ZRANGE ... WITHSCORES answers: redis-py's return type does not
# follow ``withscores``.
_Scored = list[tuple[bytes | str, float]]

# Followers per script call: bounds how long one fan-out holds the (single-threaded) server.
_FANOUT_BATCH = 500


def _text(value: bytes | str) -> str:
    # Works whether or not the client was made with decode_responses=True.
    return value.decode() if isinstance(value, bytes) else value


class RedisNewsStore:
    def __init__(self, redis: Redis, key_prefix: str = "delinkcious:news:") -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._append = redis.register_script(_APPEND)

    def _keys(self, username: str) -> tuple[str, str]:
        # Usernames never contain ':', so no user's keys can collide with another's.
        return f"{self._prefix}{username}:feed", f"{self._prefix}{username}:events"

    async def append(self, usernames: Sequence[str], event: Event, cap: int) -> None:
        args = (to_micros(cursor_of(event).time), event.id, event.to_json(), cap)
        followers = sorted(set(usernames))
        for start in range(0, len(followers), _FANOUT_BATCH):
            keys = [
                key
                for username in followers[start : start + _FANOUT_BATCH]
                for key in self._keys(username)
            ]
            await self._append(keys=keys, args=args)

    async def page(self, username: str, after: NewsCursor | None, limit: int) -> list[FeedItem]:
        feed, events = self._keys(username)
        if after is None:
            newest = cast(
                _Scored, await self._redis.zrange(feed, 0, limit - 1, desc=True, withscores=True)
            )
        else:
            score = to_micros(after.time)
            async with self._redis.pipeline(transaction=False) as pipe:
                # Equal scores cannot be range-queried by member, so the few events of the
                # cursor's own microsecond are fetched whole and filtered here.
                pipe.zrange(feed, score, score, desc=True, byscore=True, withscores=True)
                pipe.zrange(
                    feed,
                    f"({score}",
                    "-inf",
                    desc=True,
                    byscore=True,
                    withscores=True,
                    offset=0,
                    num=limit,
                )
                ties, older = await pipe.execute()
            newest = [(member, s) for member, s in ties if _text(member) < after.event_id]
            newest = (newest + older)[:limit]
        if not newest:
            return []
        payloads = await self._redis.hmget(events, [member for member, _ in newest])
        # A payload read as None was trimmed by an append since the ids were read: it and
        # everything after it have left the feed, so the page simply ends there.
        return [
            FeedItem(NewsCursor(from_micros(int(score)), _text(member)), Event.from_json(payload))
            for (member, score), payload in zip(newest, payloads, strict=True)
            if payload is not None
        ]
