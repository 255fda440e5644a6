"""The Redis tracker store: swarms several tracker processes share, answering as ``MemoryStore`` does.

Each swarm is a handful of keys under ``bitswarm:<info-hash in hex>:``. Seeders and leechers
are sorted sets from compact address (raw bytes) to the time of the last announce, one
pair per address family (``s4 l4 s6 l6``), so an asker's peers come from its own family's
sets without filtering and expiry is a range delete by score. ``done`` counts completions
and ``rep`` keeps, in private mode, the totals each peer last reported. The set
``bitswarm:swarms`` names every swarm (raw info-hashes) for full scrapes and expiry, and
``bitswarm:users`` holds each passkey's (uploaded, downloaded) sums.

An announce is one Lua script, so it is one round trip and atomic however many trackers
share the server. It follows ``MemoryStore.announce_now`` step by step, with one
difference in how, not what: peers are drawn with ZRANDMEMBER while the asker is out of
the sets (it is added back after), so the draw is a fair sample that cannot hold the
asker. Scores are the announce's second rounded up, as the memory store keeps them, and
silent peers leave only in ``expire``, so both stores expire the same peers at the same
second. A swarm emptied with completions keeps ``done`` and notes in ``idle`` the second
it became empty, and goes once that is older than the timeout, as in the memory store.

Byte totals are arbitrary-precision decimal strings added in Lua, because Redis' Lua
numbers are doubles and a client may report up to 19 digits.

Every Redis failure (connection lost, timeout, out of memory) leaves as ``StorageError``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from bitswarm.errors import StorageError, UsageError
from bitswarm.tracker.swarm import COMPACT_V6_BYTES, AnnounceRequest, Event, SwarmCounts, SwarmView

DEFAULT_KEY_PREFIX = "bitswarm:"
# A request that waits longer than this on Redis is answered with a failure instead.
SOCKET_TIMEOUT_S = 5.0
# Redis restarting drops pooled connections: retry a command twice, briefly, before failing.
_RETRIES = 2
# Swarms counted per script call in a full scrape: bounded work per call on the server.
FULL_SCRAPE_BATCH = 500

# Shared by the scripts: arbitrary-precision decimal arithmetic in 7-digit limbs (exact in
# doubles), and what expiry and an emptying announce share.
_PRELUDE = """
local BASE = 10000000
local function limbs(s)
  local t, i = {}, #s
  while i > 0 do
    local j = i - 6
    if j < 1 then j = 1 end
    t[#t + 1] = tonumber(string.sub(s, j, i))
    i = j - 1
  end
  return t
end
local function text(t)
  local n = #t
  while n > 1 and t[n] == 0 do n = n - 1 end
  if n == 0 then return '0' end
  local parts = {string.format('%d', t[n])}
  for k = n - 1, 1, -1 do parts[#parts + 1] = string.format('%07d', t[k]) end
  return table.concat(parts)
end
local function less(a, b)
  if #a ~= #b then return #a < #b end
  local x, y = limbs(a), limbs(b)
  for k = #x, 1, -1 do
    if x[k] ~= y[k] then return x[k] < y[k] end
  end
  return false
end
local function add(a, b)
  local x, y, r, carry = limbs(a), limbs(b), {}, 0
  for k = 1, math.max(#x, #y) do
    local v = (x[k] or 0) + (y[k] or 0) + carry
    if v >= BASE then r[k] = v - BASE; carry = 1 else r[k] = v; carry = 0 end
  end
  if carry > 0 then r[#r + 1] = carry end
  return text(r)
end
local function sub(a, b)
  local x, y, r, borrow = limbs(a), limbs(b), {}, 0
  for k = 1, #x do
    local v = x[k] - (y[k] or 0) - borrow
    if v < 0 then r[k] = v + BASE; borrow = 1 else r[k] = v; borrow = 0 end
  end
  return text(r)
end
local function pair(value)
  if not value then return '0', '0' end
  local space = string.find(value, ' ', 1, true)
  return string.sub(value, 1, space - 1), string.sub(value, space + 1)
end
-- Drop members last seen before the deadline from the four peer sets; forget their totals.
local function prune(deadline, rep)
  local dropped = 0
  for k = 1, 4 do
    local stale = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', '(' .. deadline)
    if #stale > 0 then
      for i = 1, #stale, 1000 do
        redis.call('HDEL', rep, unpack(stale, i, math.min(i + 999, #stale)))
      end
      redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', '(' .. deadline)
      dropped = dropped + #stale
    end
  end
  return dropped
end
-- After an announce or expiry left the swarm empty at ``second``: forget a swarm that
-- counted no completions; otherwise keep ``done`` and note when it became empty.
local function emptied(info_hash, second)
  if redis.call('EXISTS', KEYS[5]) == 1 then
    redis.call('SET', KEYS[7], second)
  else
    redis.call('DEL', KEYS[7])
    redis.call('SREM', KEYS[8], info_hash)
  end
end
local function peer_count()
  local seeders = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
  local leechers = redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
  return seeders, leechers
end
"""

# KEYS: s4 s6 l4 l6 done rep idle swarms users.
# ARGV: info_hash address family(4|6) is_seed(0|1) event second numwant
#       has_passkey(0|1) passkey uploaded downloaded.
# Returns {seeders, leechers, completed, peer...}.
_ANNOUNCE = (
    _PRELUDE
    + """
local info_hash, address, event = ARGV[1], ARGV[2], ARGV[5]
local seeders_key, leechers_key = KEYS[1], KEYS[3]
if ARGV[3] == '6' then seeders_key, leechers_key = KEYS[2], KEYS[4] end
local is_seed = ARGV[4] == '1'
if redis.call('SISMEMBER', KEYS[8], info_hash) == 0 then
  if event == 'stopped' then return {0, 0, 0} end
  redis.call('SADD', KEYS[8], info_hash)
end
if ARGV[8] == '1' then
  local up, down = ARGV[10], ARGV[11]
  local before_up, before_down = '0', '0'
  if event ~= 'started' then before_up, before_down = pair(redis.call('HGET', KEYS[6], address)) end
  -- Totals that went down mean the client restarted counting: all of it is new.
  local grown_up, grown_down = up, down
  if not less(up, before_up) then grown_up = sub(up, before_up) end
  if not less(down, before_down) then grown_down = sub(down, before_down) end
  local user_up, user_down = pair(redis.call('HGET', KEYS[9], ARGV[9]))
  redis.call('HSET', KEYS[9], ARGV[9], add(user_up, grown_up) .. ' ' .. add(user_down, grown_down))
  if event == 'stopped' then
    redis.call('HDEL', KEYS[6], address)
  else
    redis.call('HSET', KEYS[6], address, up .. ' ' .. down)
  end
end
local was_seed = redis.call('ZREM', seeders_key, address) == 1
redis.call('ZREM', leechers_key, address)
local result = {0, 0, 0}
if event ~= 'stopped' then
  -- Drawn while the asker is in neither set, so it cannot draw itself and every draw is fair.
  -- Seeders first for a leecher; a seeder only wants leechers.
  local wanted = tonumber(ARGV[7])
  local groups = {seeders_key, leechers_key}
  if is_seed then groups = {leechers_key} end
  for _, group in ipairs(groups) do
    local room = wanted - (#result - 3)
    if room <= 0 then break end
    for _, member in ipairs(redis.call('ZRANDMEMBER', group, room)) do
      result[#result + 1] = member
    end
  end
  if is_seed then
    redis.call('ZADD', seeders_key, ARGV[6], address)
    -- A peer that says "completed" twice, or was already seeding, finished once.
    if event == 'completed' and not was_seed then redis.call('INCR', KEYS[5]) end
  else
    redis.call('ZADD', leechers_key, ARGV[6], address)
  end
  redis.call('DEL', KEYS[7])
end
local seeders, leechers = peer_count()
result[1], result[2] = seeders, leechers
result[3] = tonumber(redis.call('GET', KEYS[5]) or '0')
if seeders + leechers == 0 then emptied(info_hash, ARGV[6]) end
return result
"""
)

# KEYS: s4 s6 l4 l6 done rep idle swarms. ARGV: info_hash deadline second. Returns peers dropped.
_EXPIRE = (
    _PRELUDE
    + """
local idle = redis.call('GET', KEYS[7])
if idle then
  -- Empty, kept for its completed count: gone once empty and silent for the timeout.
  if tonumber(idle) < tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[5], KEYS[7])
    redis.call('SREM', KEYS[8], ARGV[1])
  end
  return 0
end
local dropped = prune(ARGV[2], KEYS[6])
local seeders, leechers = peer_count()
if seeders + leechers == 0 then emptied(ARGV[1], ARGV[3]) end
return dropped
"""
)

# KEYS: s4 s6 l4 l6 done, per swarm. Returns seeders, leechers, completed per swarm.
_COUNTS = """
local result = {}
for k = 1, #KEYS, 5 do
  result[#result + 1] = redis.call('ZCARD', KEYS[k]) + redis.call('ZCARD', KEYS[k + 1])
  result[#result + 1] = redis.call('ZCARD', KEYS[k + 2]) + redis.call('ZCARD', KEYS[k + 3])
  result[#result + 1] = tonumber(redis.call('GET', KEYS[k + 4]) or '0')
end
return result
"""

_EVENT_NAMES = {Event.NONE: "none", Event.COMPLETED: "completed", Event.STARTED: "started", Event.STOPPED: "stopped"}


@asynccontextmanager
async def _storage_errors() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as error:
        raise StorageError(f"redis: {error}") from error


def _as_bytes(value: bytes | str) -> bytes:
    """Replies are bytes (the client never decodes); the types allow str too."""
    return value if isinstance(value, bytes) else value.encode()


def _public_url(url: str) -> str:
    """The URL without credentials, for messages."""
    scheme, separator, rest = url.partition("://")
    return scheme + separator + rest.rpartition("@")[2]


class RedisStore:
    """Swarm state in a Redis server (7.0 or later) that several trackers share."""

    def __init__(self, client: aioredis.Redis, *, peer_timeout_s: float, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self.peer_timeout_s = peer_timeout_s
        self._redis = client
        self._prefix = key_prefix
        self._swarms_key = f"{key_prefix}swarms"
        self._users_key = f"{key_prefix}users"
        self._announce = client.register_script(_ANNOUNCE)
        self._expire = client.register_script(_EXPIRE)
        self._counts = client.register_script(_COUNTS)
        # Expiry walks the swarm set with SSCAN; a page bigger than one call's share waits here.
        self._expiry_cursor = 0
        self._expiry_pending: list[bytes] = []

    @classmethod
    async def open(cls, url: str, *, peer_timeout_s: float, key_prefix: str = DEFAULT_KEY_PREFIX) -> RedisStore:
        """Connect to ``url`` and check the server answers; raises UsageError if it does not."""
        try:
            parts = urlsplit(url)
        except ValueError as error:
            raise UsageError(f"store {_public_url(url)}: {error}") from None
        database = parts.path.strip("/")
        # redis-py ignores a path that is not a number, which would silently mean database 0.
        if parts.scheme in ("redis", "rediss") and database and not database.isdigit():
            raise UsageError(f"store {_public_url(url)}: database {database!r} is not a number")
        try:
            client = aioredis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_S,
                socket_connect_timeout=SOCKET_TIMEOUT_S,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), _RETRIES),
            )
        except ValueError as error:
            raise UsageError(f"store {_public_url(url)}: {error}") from None
        try:
            await client.ping()
        except RedisError as error:
            await client.aclose()
            raise UsageError(f"store {_public_url(url)}: Redis does not answer: {error}") from None
        return cls(client, peer_timeout_s=peer_timeout_s, key_prefix=key_prefix)

    def _swarm_keys(self, info_hash: bytes) -> list[str]:
        """s4 s6 l4 l6 done rep idle: the first five are what counting needs."""
        base = f"{self._prefix}{info_hash.hex()}:"
        return [base + name for name in ("s4", "s6", "l4", "l6", "done", "rep", "idle")]

    async def announce(self, request: AnnounceRequest, now: float) -> SwarmView:
        keys = [*self._swarm_keys(request.info_hash), self._swarms_key, self._users_key]
        args: list[bytes | str | int] = [
            request.info_hash,
            request.address,
            "6" if len(request.address) == COMPACT_V6_BYTES else "4",
            int(request.is_seed),
            _EVENT_NAMES[request.event],
            # Whole seconds rounded up, as MemoryStore keeps them: both expire a peer alike.
            math.ceil(now),
            request.numwant,
            int(request.passkey is not None),
            request.passkey or "",
            str(request.uploaded),
            str(request.downloaded),
        ]
        async with _storage_errors():
            reply: list[Any] = await self._announce(keys=keys, args=args)
        seeders, leechers, completed, *peers = reply
        return SwarmView(SwarmCounts(int(seeders), int(leechers), int(completed)), [bytes(peer) for peer in peers])

    async def scrape(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]:
        """Counts for each asked swarm; an unknown swarm counts zero."""
        hashes = list(dict.fromkeys(info_hashes))
        async with _storage_errors():
            return await self._counts_of(hashes)

    async def full_scrape(self) -> dict[bytes, SwarmCounts]:
        async with _storage_errors():
            members = await self._redis.smembers(self._swarms_key)
            hashes = sorted(_as_bytes(member) for member in members)
            result: dict[bytes, SwarmCounts] = {}
            for start in range(0, len(hashes), FULL_SCRAPE_BATCH):
                counts = await self._counts_of(hashes[start : start + FULL_SCRAPE_BATCH])
                # A swarm gone between the two reads counts zero everywhere: leave it out, as the
                # memory store would. An empty swarm kept for its completed count stays.
                result |= {info_hash: count for info_hash, count in counts.items() if count != SwarmCounts()}
        return result

    async def _counts_of(self, hashes: Sequence[bytes]) -> dict[bytes, SwarmCounts]:
        if not hashes:
            return {}
        keys = [key for info_hash in hashes for key in self._swarm_keys(info_hash)[:5]]
        flat: list[int] = await self._counts(keys=keys)
        return {
            info_hash: SwarmCounts(int(flat[3 * at]), int(flat[3 * at + 1]), int(flat[3 * at + 2]))
            for at, info_hash in enumerate(hashes)
        }

    async def expire(self, now: float, *, max_swarms: int) -> int:
        """Drop peers silent for longer than the timeout in up to ``max_swarms`` swarms.

        Call it repeatedly: it resumes where it stopped (an SSCAN cursor) and starts over
        after the last swarm. Returns the number of peers dropped.
        """
        deadline = repr(float(now) - self.peer_timeout_s)
        second = math.ceil(now)
        async with _storage_errors():
            if not self._expiry_pending:
                cursor, page = await self._redis.sscan(self._swarms_key, self._expiry_cursor, count=max_swarms)
                self._expiry_cursor = int(cursor)
                self._expiry_pending = list(dict.fromkeys(_as_bytes(member) for member in page))
            batch = self._expiry_pending[-max_swarms:]
            del self._expiry_pending[-max_swarms:]
            if not batch:
                return 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for info_hash in batch:
                    keys = [*self._swarm_keys(info_hash), self._swarms_key]
                    await self._expire(keys=keys, args=[info_hash, deadline, second], client=pipe)
                dropped: list[int] = await pipe.execute()
        return sum(int(count) for count in dropped)

    async def user_totals(self) -> dict[str, tuple[int, int]]:
        """(uploaded, downloaded) bytes per passkey, summed over every announce."""
        async with _storage_errors():
            totals = await self._redis.hgetall(self._users_key)
        result = {}
        for passkey, value in totals.items():
            uploaded, _, downloaded = _as_bytes(value).partition(b" ")
            result[_as_bytes(passkey).decode()] = (int(uploaded), int(downloaded))
        return result

    async def close(self) -> None:
        async with _storage_errors():
            await self._redis.aclose()
