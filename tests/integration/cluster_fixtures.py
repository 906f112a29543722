"""pytest fixtures for a local Redis Cluster: one shared per test process, or a fresh one with replicas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.redis_cluster import LocalCluster


class _SharedCluster:
    """The test process's three-master cluster: started on first use, replaced if a test left it broken."""

    def __init__(self) -> None:
        self.cluster: LocalCluster | None = None

    def settled(self) -> LocalCluster:
        """The cluster, every node running and agreeing it is ok (a fresh one if that does not happen soon)."""
        if self.cluster is not None:
            try:
                self.cluster.wait_ok(timeout=5)
                return self.cluster
            except AssertionError as problem:
                print(f"the shared Redis Cluster is replaced: {problem}")
                self.cluster.stop()
        self.cluster = LocalCluster(masters=3).start()
        return self.cluster

    def stop(self) -> None:
        """Stop it if it was started."""
        if self.cluster is not None:
            self.cluster.stop()


@pytest.fixture(scope="session")
def _shared_redis_cluster() -> Iterator[_SharedCluster]:
    """Holds one cluster per pytest-xdist worker (a session is a worker), stopped when the worker ends."""
    shared = _SharedCluster()
    try:
        yield shared
    finally:
        shared.stop()


@pytest.fixture
def redis_cluster(_shared_redis_cluster: _SharedCluster) -> LocalCluster:
    """A three-master Redis Cluster without replicas, settled and emptied (keys and Lua scripts) for this test.

    It is shared by the tests of one process: a test that kills a node restarts it, or uses
    `redis_cluster_with_replicas`; a cluster left broken is replaced before the next test.
    """
    cluster = _shared_redis_cluster.settled()
    cluster.flush()
    return cluster


@pytest.fixture
def redis_cluster_with_replicas() -> Iterator[LocalCluster]:
    """A fresh Redis Cluster of three masters with one replica each, for a test that kills or fails over nodes."""
    cluster = LocalCluster(masters=3, replicas=1).start()
    try:
        yield cluster
    finally:
        print(cluster.logs())  # shown by pytest only when the test fails
        cluster.stop()
