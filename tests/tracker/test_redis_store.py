"""What only the Redis store has: connecting, failing over a lost server, key prefixes, its keys."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from bitswarm.errors import StorageError, UsageError
from bitswarm.tracker.redis_store import RedisStore
from bitswarm.tracker.swarm import AnnounceRequest, Event, SwarmCounts
from tracker.conftest import RedisServer, free_port
from tracker.stores import HASH_A, PEER_TIMEOUT_S, START, open_sync_store, v4

REDIS_ONLY_DB = 2


def request(address: bytes, *, left: int = 1000) -> AnnounceRequest:
    return AnnounceRequest(HASH_A, b"-BS0001-000000000000", address, Event.NONE, left, 0, 0, 50)


def test_an_unreachable_server_is_a_usage_error_on_one_line() -> None:
    url = f"redis://user:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(UsageError, match=r"^store redis://127\.0\.0\.1:\d+/0: Redis does not answer") as caught:
        asyncio.run(RedisStore.open(url, peer_timeout_s=PEER_TIMEOUT_S))
    assert "\n" not in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_malformed_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"store redis://127\.0\.0\.1:6379/x: database .x. is not a number"):
        asyncio.run(RedisStore.open("redis://127.0.0.1:6379/x", peer_timeout_s=PEER_TIMEOUT_S))


def test_a_lost_server_surfaces_as_storage_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    try:

        async def scenario() -> None:
            store = await RedisStore.open(server.db_url(0), peer_timeout_s=PEER_TIMEOUT_S)
            assert (await store.announce(request(v4(1)), START)).counts == SwarmCounts(0, 1, 0)
            server.stop()
            with pytest.raises(StorageError, match=r"^redis: "):
                await store.announce(request(v4(2)), START)
            with pytest.raises(StorageError):
                await store.scrape([HASH_A])
            with pytest.raises(StorageError):
                await store.expire(START, max_swarms=10)
            await store.close()

        asyncio.run(scenario())
    finally:
        server.stop()


def test_stores_with_different_key_prefixes_do_not_meet(redis_server: RedisServer) -> None:
    url = redis_server.db_url(REDIS_ONLY_DB)

    async def scenario() -> None:
        first = await RedisStore.open(url, peer_timeout_s=PEER_TIMEOUT_S, key_prefix="one:")
        second = await RedisStore.open(url, peer_timeout_s=PEER_TIMEOUT_S, key_prefix="two:")
        await first.announce(request(v4(1), left=0), START)
        view = await second.announce(request(v4(2)), START)
        assert view.counts == SwarmCounts(0, 1, 0)
        assert view.peers == []
        assert await first.full_scrape() == {HASH_A: SwarmCounts(1, 0, 0)}
        await first.close()
        await second.close()

    asyncio.run(scenario())


def test_keys_hold_raw_addresses_and_vanish_with_the_swarm(redis_server: RedisServer) -> None:
    url = redis_server.db_url(REDIS_ONLY_DB)
    store = open_sync_store("redis", url)
    try:
        store.announce(v4(1), left=0, event=Event.COMPLETED, passkey="alice")
        with redis.Redis.from_url(url) as client:
            assert client.zrange(f"bitswarm:{HASH_A.hex()}:s4", 0, -1) == [v4(1)]
            assert client.smembers("bitswarm:swarms") == {HASH_A}
        store.announce(v4(1), left=0, event=Event.STOPPED, passkey="alice")
        prefix = f"bitswarm:{HASH_A.hex()}:"
        with redis.Redis.from_url(url) as client:
            # Emptied with a completion: its count waits out a timeout of silence.
            expected = [f"{prefix}{name}".encode() for name in ("done", "idle")]
            assert sorted(client.keys("*")) == sorted([*expected, b"bitswarm:swarms", b"bitswarm:users"])
        store.expire(START + PEER_TIMEOUT_S + 1)
        with redis.Redis.from_url(url) as client:
            assert sorted(client.keys("*")) == [b"bitswarm:users"]
    finally:
        store.close()
