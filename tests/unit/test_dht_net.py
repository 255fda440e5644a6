"""The DHT's asyncio layer on loopback: IPv4 and IPv6 sockets, announces and searches,
the saved table, the standalone node and uvloop."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import uvloop

from bitswarm import bencode
from bitswarm.dht import krpc
from bitswarm.dht.krpc import Query
from bitswarm.dht.node import load_state
from bitswarm.dht.node_id import is_valid_for
from bitswarm.errors import UsageError
from bitswarm.net.dht import DHTService, open_dht, parse_endpoint, run_dht_node

V4 = "127.0.0.1"
V6 = "::1"
WAIT_S = 10.0
INFO_HASH = b"n" * 20


def endpoint(service: DHTService, family: int) -> str:
    host, port = next(address for address in service.addresses if krpc.family_of(address[0]) == family)
    return f"[{host}]:{port}" if family == 6 else f"{host}:{port}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("router.example:6881", ("router.example", 6881)),
        ("10.0.0.1", ("10.0.0.1", 6881)),
        ("[::1]:7000", ("::1", 7000)),
        ("::1", ("::1", 6881)),
    ],
)
def test_endpoints_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "host:port", "host:70000", "[::1]x"])
def test_bad_endpoints_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_endpoint(text)


def test_three_nodes_on_both_families_announce_and_find_each_other() -> None:
    async def scenario() -> None:
        async with open_dht([f"{V4}:0", f"[{V6}]:0"]) as first:
            join = [endpoint(first, 4), endpoint(first, 6)]
            async with (
                open_dht([f"{V4}:0", f"[{V6}]:0"], join) as second,
                open_dht([f"{V4}:0", f"[{V6}]:0"], join) as third,
            ):
                assert {n.address for n in second.node.tables[6].nodes()} >= {first.addresses[1]}
                await second.announce(INFO_HASH, 5000, timeout_s=WAIT_S)
                peers = await third.get_peers(INFO_HASH, timeout_s=WAIT_S)
                assert set(peers) == {(V4, 5000), (V6, 5000)}
                for service in (first, second, third):
                    assert service.failure is None
                    assert service.node.stats.dropped["timeout"] == 0

    asyncio.run(scenario())


def test_the_table_is_saved_on_close_and_its_nodes_rejoin_on_restart(tmp_path: Path) -> None:
    state_path = tmp_path / "dht.state"

    async def scenario() -> None:
        async with open_dht([f"{V4}:0"]) as first:
            async with open_dht([f"{V4}:0"], [endpoint(first, 4)], state_path=state_path) as second:
                node_id = second.node.node_id
            state = load_state(state_path.read_bytes())
            assert state.node_id == node_id
            assert [n.address for n in state.nodes] == first.addresses
            # No bootstrap given: the saved nodes are enough to join again, with the same ID.
            async with open_dht([f"{V4}:0"], state_path=state_path) as again:
                assert again.node.node_id == node_id
                assert [n.address for n in again.node.tables[4].nodes()] == first.addresses
        assert not state_path.with_name(state_path.name + ".tmp").exists()

    asyncio.run(scenario())


def test_a_broken_state_file_is_ignored_not_fatal(tmp_path: Path) -> None:
    state_path = tmp_path / "dht.state"
    state_path.write_bytes(b"not bencode")

    async def scenario() -> None:
        async with open_dht([f"{V4}:0"], state_path=state_path) as service:
            assert len(service.node.node_id) == 20
        assert load_state(state_path.read_bytes()).node_id == service.node.node_id

    asyncio.run(scenario())


def test_the_standalone_node_serves_until_cancelled_and_saves_its_state(tmp_path: Path) -> None:
    state_path = tmp_path / "dht.state"

    async def scenario() -> None:
        ready: asyncio.Future[DHTService] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run_dht_node([f"{V4}:0"], [], state_path, on_ready=ready.set_result))
        service = await asyncio.wait_for(ready, WAIT_S)
        async with open_dht([f"{V4}:0"], [endpoint(service, 4)]) as client:
            assert [n.address for n in client.node.tables[4].nodes()] == service.addresses
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert load_state(state_path.read_bytes()).node_id == service.node.node_id

    asyncio.run(scenario())


def test_a_read_only_node_searches_but_stays_out_of_tables() -> None:
    async def scenario() -> None:
        async with open_dht([f"{V4}:0"]) as first, open_dht([f"{V4}:0"], [endpoint(first, 4)]) as second:
            await second.announce(INFO_HASH, 6000, timeout_s=WAIT_S)
            async with open_dht([f"{V4}:0"], [endpoint(first, 4)], read_only=True) as reader:
                assert await reader.get_peers(INFO_HASH, timeout_s=WAIT_S) == [(V4, 6000)]
                reader_address = reader.addresses[0]
            for service in (first, second):
                assert reader_address not in {n.address for n in service.node.tables[4].nodes()}

    asyncio.run(scenario())


def test_malformed_datagrams_over_the_socket_get_the_proper_answer() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with open_dht([f"{V4}:0"]) as service:
            replies: asyncio.Queue[bytes] = asyncio.Queue()

            class Client(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    replies.put_nowait(data)

            transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=service.addresses[0])
            transport_address = transport.get_extra_info("sockname")
            try:
                transport.sendto(b"garbage")
                transport.sendto(bencode.encode({b"t": b"xy", b"y": b"q", b"q": b"vote", b"a": {b"id": b"c" * 20}}))
                transport.sendto(krpc.encode(Query(b"pq", b"c" * 20, krpc.Ping())))
                # The 204, then our ping to the new node that queried us, then the answer.
                received = [krpc.decode(await asyncio.wait_for(replies.get(), WAIT_S)) for _ in range(3)]
            finally:
                transport.close()
            # Garbage got silence.
            assert received[0] == krpc.Error(b"xy", 204, "method b'vote' unknown")
            assert isinstance(received[1], Query)
            assert isinstance(received[1].arguments, krpc.Ping)
            assert received[2] == krpc.Response(b"pq", service.node.node_id, requester=transport_address)
            assert service.node.stats.dropped["krpc 203"] == 1
            assert service.failure is None

    asyncio.run(scenario())


def test_the_layer_runs_on_uvloop() -> None:
    async def scenario() -> list[tuple[str, int]]:
        async with open_dht([f"{V4}:0"]) as first, open_dht([f"{V4}:0"], [endpoint(first, 4)]) as second:
            await first.announce(INFO_HASH, 7000, timeout_s=WAIT_S)
            return await second.get_peers(INFO_HASH, timeout_s=WAIT_S)

    assert uvloop.run(scenario()) == [(V4, 7000)]


def test_an_external_address_gives_a_bep42_id_replacing_a_saved_one_that_does_not_suit(tmp_path: Path) -> None:
    state_path = tmp_path / "dht.state"

    async def scenario() -> None:
        async with open_dht([f"{V4}:0"], state_path=state_path) as plain:
            random_id = plain.node.node_id
        async with open_dht([f"{V4}:0"], state_path=state_path, external_ip="8.8.4.4") as tied:
            assert tied.node.node_id != random_id
            assert is_valid_for(tied.node.node_id, "8.8.4.4")
            tied_id = tied.node.node_id
        async with open_dht([f"{V4}:0"], state_path=state_path, external_ip="8.8.4.4") as again:
            assert again.node.node_id == tied_id

    asyncio.run(scenario())


def table_addresses(service: DHTService) -> set[tuple[str, int]]:
    return {entry.address for entry in service.node.tables[4].nodes()}


def test_saved_nodes_come_first_and_the_bootstrap_routers_are_asked_only_while_the_table_is_empty(
    tmp_path: Path,
) -> None:
    state_path = tmp_path / "dht.state"

    async def scenario() -> None:
        async with open_dht([f"{V4}:0"]) as saved, open_dht([f"{V4}:0"]) as router:
            async with open_dht([f"{V4}:0"], [endpoint(saved, 4)], state_path=state_path) as first:
                our_address = first.addresses[0]
            async with open_dht([f"{V4}:0"], [endpoint(router, 4)], state_path=state_path) as again:
                assert table_addresses(again) == {saved.addresses[0]}
                # The router never heard from us: a querier would be in its table.
                assert not any(address[1] == again.addresses[0][1] for address in table_addresses(router))
            assert our_address not in table_addresses(router)

    asyncio.run(scenario())


def test_when_the_saved_nodes_are_gone_the_bootstrap_routers_are_asked(tmp_path: Path) -> None:
    state_path = tmp_path / "dht.state"

    async def scenario() -> None:
        async with open_dht([f"{V4}:0"]) as gone, open_dht([f"{V4}:0"], [endpoint(gone, 4)], state_path=state_path):
            pass
        assert load_state(state_path.read_bytes()).nodes  # the departed node is what was saved
        async with (
            open_dht([f"{V4}:0"]) as router,
            open_dht([f"{V4}:0"], [endpoint(router, 4)], state_path=state_path) as again,
        ):
            assert table_addresses(again) == {router.addresses[0]}

    asyncio.run(scenario())


def test_bootstrap_names_are_resolved_at_each_join_not_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A router that moved is found at its new address: the name is looked up when the
    table is empty, not when the node starts. (The system resolver is replaced here: this
    machine's DNS is not the tests'; a real resolver answers in the namespace test.)"""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        if host == "router.test":
            if "router.test" not in answers:
                raise socket.gaierror(socket.EAI_NONAME, "unknown")
            return real(answers["router.test"], port, *args, **kwargs)  # type: ignore[arg-type]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)

    async def scenario() -> None:
        async with open_dht([f"{V4}:0"]) as router:
            port = router.addresses[0][1]
            async with open_dht([f"{V4}:0"], [f"router.test:{port}"], join=False) as node:
                assert await node.bootstrap() == []  # does not resolve yet: one fewer way in
                assert not node.has_nodes
                answers["router.test"] = V4
                await node.bootstrap()
                assert table_addresses(node) == {router.addresses[0]}

    asyncio.run(scenario())
