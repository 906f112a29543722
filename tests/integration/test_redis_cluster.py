"""The local Redis Cluster the cluster tests run on: slots, redirection, failover, restart and resharding."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from tests.integration.cluster_topology import SLOTS
from tests.integration.playground_process import eventually
from tests.integration.redis_cluster import LocalCluster

pytestmark = pytest.mark.integration


@asynccontextmanager
async def cluster_client(port: int) -> AsyncIterator[RedisCluster]:
    """redis-py's asyncio cluster client, started from the node on `port`."""
    client = RedisCluster.from_url(f"redis://127.0.0.1:{port}", decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def master_of(cluster: LocalCluster, slot: int) -> int:
    """The port of the master serving `slot`."""
    return next(node.port for node in cluster.masters() if any(a <= slot <= b for a, b in node.slots))


def test_a_started_cluster_has_three_masters_that_serve_every_slot_once(redis_cluster: LocalCluster) -> None:
    """Three running masters split the 16384 slots between them, and each node reports the cluster ok."""
    masters = redis_cluster.masters()
    assert len(masters) == 3
    assert sum(node.slot_count for node in masters) == SLOTS
    for port in redis_cluster.ports:
        info = redis_cluster.cluster_info(port)
        assert (info["cluster_state"], int(info["cluster_slots_ok"])) == ("ok", SLOTS)


async def test_a_key_written_through_one_node_is_read_through_another(redis_cluster: LocalCluster) -> None:
    """Keys set by a cluster client started from one master land on every master and read back through another."""
    first, second = (node.port for node in redis_cluster.masters()[:2])
    async with cluster_client(first) as writer, cluster_client(second) as reader:
        keys = [f"key:{n}" for n in range(30)]
        for key in keys:
            await writer.set(key, key.upper())
        assert [await reader.get(key) for key in keys] == [key.upper() for key in keys]
        holders = {master_of(redis_cluster, writer.keyslot(key)) for key in keys}
    assert holders == {node.port for node in redis_cluster.masters()}


async def test_flush_empties_every_master_of_keys_and_scripts(redis_cluster: LocalCluster) -> None:
    """flush (run before every redis_cluster test) leaves no key and no cached Lua script on any master."""
    async with cluster_client(redis_cluster.masters()[0].port) as client:
        await client.mset_nonatomic({f"key:{n}": n for n in range(30)})
        sha = await client.script_load("return 1")  # sent to every master
    redis_cluster.flush()
    for master in redis_cluster.masters():
        with redis_cluster.client(master.port) as node:
            assert (node.dbsize(), node.script_exists(sha)) == (0, [False])


def test_a_killed_master_restarts_with_its_data(redis_cluster: LocalCluster) -> None:
    """A SIGKILLed master without a replica takes the cluster down; restarted, it serves its keys again."""
    victim = redis_cluster.masters()[0]
    key = next(f"key:{n}" for n in range(100) if master_of(redis_cluster, key_slot(f"key:{n}".encode())) == victim.port)
    with redis_cluster.client(victim.port) as node:
        node.set(key, "kept")
    redis_cluster.kill(victim.port)
    survivor = redis_cluster.masters()[0].port
    eventually(lambda: redis_cluster.cluster_info(survivor)["cluster_state"] == "fail", 10, "the cluster down")
    redis_cluster.restart(victim.port)
    with redis_cluster.client(victim.port) as node:
        assert node.get(key) == "kept"
    assert redis_cluster.node_id(victim.port) == victim.node_id


async def test_failover_promotes_the_replica_which_keeps_the_data(redis_cluster_with_replicas: LocalCluster) -> None:
    """CLUSTER FAILOVER on a replica makes it the master of its slots with the data; the old master follows it."""
    cluster = redis_cluster_with_replicas
    replica = next(node for node in cluster.nodes() if node.role == "replica")
    old_master = next(node for node in cluster.nodes() if node.node_id == replica.master_id)
    async with cluster_client(cluster.masters()[0].port) as client:
        keys = [f"key:{n}" for n in range(30)]
        await client.mset_nonatomic({key: key for key in keys})
        await asyncio.to_thread(cluster.failover, replica.port)
        roles = {node.port: (node.role, node.slots) for node in cluster.nodes()}
        assert roles[replica.port] == ("master", old_master.slots)
        assert roles[old_master.port] == ("replica", ())
        assert [await client.get(key) for key in keys] == keys


async def test_a_killed_master_is_replaced_by_its_replica_and_stop_cleans_up(
    redis_cluster_with_replicas: LocalCluster,
) -> None:
    """After a SIGKILL the master's replica takes over by itself; the master returns as a replica; stop ends all."""
    cluster = redis_cluster_with_replicas
    victim = cluster.masters()[0]
    replica = next(node for node in cluster.nodes() if node.master_id == victim.node_id)
    cluster.kill(victim.port)
    await asyncio.to_thread(cluster.wait_ok)
    masters = {node.port for node in cluster.masters()}
    assert replica.port in masters and victim.port not in masters and len(masters) == 3
    await asyncio.to_thread(cluster.restart, victim.port)
    assert {node.port: node.role for node in cluster.nodes()}[victim.port] == "replica"
    pids = cluster.pids()
    assert len(pids) == 6
    cluster.stop()
    assert not any(pid_alive(pid) for pid in pids)
    assert not cluster.folder.exists()


async def test_a_reshard_moves_slots_while_writes_continue(redis_cluster: LocalCluster) -> None:
    """While redis-cli moves 1000 slots between masters, a cluster client keeps writing; every write is kept."""
    source, target = redis_cluster.masters()[:2]
    async with cluster_client(source.port) as client:
        reshard = redis_cluster.start_reshard(source.node_id, target.node_id, 1000)
        written = 0
        while reshard.running or written < 200:
            await client.set(f"key:{written}", written)
            written += 1
        await asyncio.to_thread(reshard.wait)
        await asyncio.to_thread(redis_cluster.wait_ok)
        values = [await client.get(f"key:{n}") for n in range(written)]
    after = {node.node_id: node.served() for node in redis_cluster.masters()}
    moved = source.served() - after[source.node_id]
    assert len(moved) == 1000 and after[target.node_id] == target.served() | moved
    assert values == [str(n) for n in range(written)]
    assert any(key_slot(f"key:{n}".encode()) in moved for n in range(written))


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a reaped child's pid does not)."""
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno != errno.ESRCH
    return True
