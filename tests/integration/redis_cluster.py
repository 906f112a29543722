"""A local Redis Cluster of redis-server child processes, for tests of slots, failover and resharding."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.integration.cluster_node import NodeProcess
from tests.integration.cluster_topology import NodeInfo, covers_every_slot, parse_cluster_nodes, slot_map
from tests.integration.reshard import Reshard
from tests.integration.server_ports import free_ports


class LocalCluster:
    """A Redis Cluster of `masters` masters with `replicas` replicas each, on free local ports, in a temp folder.

    Every method is synchronous: an asyncio test calls the slow ones (`failover`, `restart`, `wait_ok`)
    through `asyncio.to_thread` so that its own clients keep running meanwhile.
    """

    def __init__(self, masters: int = 3, replicas: int = 0, *, node_timeout_ms: int = 1000) -> None:
        # redis-cli refuses to create a cluster of fewer than 3 masters.
        assert masters >= 3 and replicas in (0, 1), "3+ masters, 0 or 1 replica each"
        self.masters_wanted = masters
        self.replicas_per_master = replicas
        self.node_timeout_ms = node_timeout_ms
        self.folder = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self._nodes: dict[int, NodeProcess] = {}
        self._reshards: list[Reshard] = []

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def ports(self) -> list[int]:
        """The client ports of every node, running or not, in creation order."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """The redis:// URL of a running master."""
        return f"redis://127.0.0.1:{self.masters()[0].port}"

    def start(self, timeout: float = 20.0) -> LocalCluster:
        """Start the nodes, create the cluster with redis-cli and wait until every node agrees it is ok."""
        atexit.register(self.stop)  # the processes must not outlive an interrupted test run
        try:
            self._launch_nodes(self.masters_wanted * (1 + self.replicas_per_master), timeout)
            self._create(timeout)
            self.wait_ok(timeout)
        except BaseException:
            print(self.logs())
            self.stop()
            raise
        return self

    def _launch_nodes(self, count: int, timeout: float) -> None:
        pending = self._new_nodes(count)
        for attempt in range(3):
            for node in pending:
                node.launch()
            # Another process may have taken a port between picking and binding: try again on new ones.
            failed = [node for node in pending if not node.wait_answering(timeout)]
            for node in pending:
                if node not in failed:
                    self._nodes[node.port] = node
            if not failed:
                return
            if attempt == 2:
                raise AssertionError(f"cluster nodes did not start:\n{failed[0].log_tail(20)}")
            for node in failed:
                node.kill()
            pending = self._new_nodes(len(failed))

    def _new_nodes(self, count: int) -> list[NodeProcess]:
        """Nodes (not started) on fresh free ports, each with a client port and a cluster bus port."""
        ports = free_ports(2 * count)
        return [
            NodeProcess(self.folder / str(port), port, bus, self.node_timeout_ms)
            for port, bus in zip(ports[::2], ports[1::2], strict=True)
        ]

    def _create(self, timeout: float) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self._nodes]
        command = ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas_per_master)]
        done = subprocess.run([*command, "--cluster-yes"], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0 or "All 16384 slots covered" not in done.stdout:
            raise AssertionError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")

    def client(self, port: int) -> redis.Redis:
        """A synchronous client on one node (no retries: a dead node fails at once); the caller closes it."""
        return redis.Redis(
            port=port, decode_responses=True, socket_timeout=2, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )

    def _ask(self, port: int, *command: str) -> Any:
        """A command's raw reply (redis-py would parse INFO and CLUSTER NODES into dicts)."""
        with self.client(port) as node:
            node.response_callbacks.clear()
            return node.execute_command(*command)

    def cluster_info(self, port: int) -> dict[str, str]:
        """The fields of `CLUSTER INFO` on one node (cluster_state, cluster_slots_ok, ...)."""
        lines = str(self._ask(port, "CLUSTER", "INFO")).splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def nodes(self) -> list[NodeInfo]:
        """Every node as a running node sees it (a master's view if one runs): roles, ids, slots, flags."""
        running = sorted(self._running_ports(), key=lambda port: self._role_of(port) != "master")
        for port in running:
            try:
                return parse_cluster_nodes(self._ask(port, "CLUSTER", "NODES"))
            except redis.RedisError:
                continue
        raise AssertionError("no cluster node answers")

    def masters(self) -> list[NodeInfo]:
        """The running masters that serve slots, by port."""
        running = set(self._running_ports())
        return sorted(
            (node for node in self.nodes() if node.role == "master" and node.slots and node.port in running),
            key=lambda node: node.port,
        )

    def node_id(self, port: int) -> str:
        """The cluster node id of the node on `port` (it keeps it across restarts, in nodes.conf)."""
        return str(self._ask(port, "CLUSTER", "MYID"))

    def pids(self) -> list[int]:
        """The pids of the running nodes."""
        return [node.process.pid for node in self._nodes.values() if node.process is not None and node.running]

    def _running_ports(self) -> list[int]:
        return [port for port, node in self._nodes.items() if node.running]

    def _role_of(self, port: int) -> str:
        try:
            return str(self._ask(port, "ROLE")[0])
        except redis.RedisError:
            return "unknown"

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Wait until every running node says cluster_state:ok, all agree on roles and slots, replicas are in sync."""
        deadline = time.monotonic() + timeout
        problem = "not checked yet"
        while time.monotonic() < deadline:
            try:
                problem = self._unsettled()
            except redis.RedisError as error:
                problem = f"a node did not answer: {error!r}"
            if not problem:
                return
            time.sleep(0.05)
        raise AssertionError(f"the cluster did not settle within {timeout} s: {problem}\n{self.logs()}")

    def _unsettled(self) -> str:
        """What keeps the cluster from being settled, or "" if nothing does."""
        running = self._running_ports()
        views = {}
        for port in running:
            if self.cluster_info(port).get("cluster_state") != "ok":
                return f"node {port} reports cluster_state other than ok"
            seen = [node for node in parse_cluster_nodes(self._ask(port, "CLUSTER", "NODES")) if node.port in running]
            if len(seen) < len(running) or not all(node.settled for node in seen):
                return f"node {port} does not yet see every running node as up"
            roles = tuple(sorted((node.node_id, node.role, node.master_id) for node in seen))
            views[port] = (slot_map(seen), roles)
            if self._replica_out_of_sync(port, seen):
                return f"replica {port} is not in sync with its master"
        if len(set(views.values())) > 1:
            return "nodes disagree about roles or slots"
        if views and not covers_every_slot(next(iter(views.values()))[0]):
            return "the running masters do not serve every slot"
        return ""

    def _replica_out_of_sync(self, port: int, seen: list[NodeInfo]) -> bool:
        me = next(node for node in seen if node.port == port)
        return me.role == "replica" and "master_link_status:up" not in self._ask(port, "INFO", "replication")

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port` (it keeps its data and identity for `restart`)."""
        self._nodes[port].kill()

    def restart(self, port: int, *, wait_ok: bool = True, timeout: float = 15.0) -> None:
        """Start a stopped node again on its port, with its data; by default wait until the cluster is ok."""
        node = self._nodes[port]
        assert not node.running, f"node {port} is running"
        node.launch()
        if not node.wait_answering(timeout):
            raise AssertionError(f"node {port} did not restart:\n{node.log_tail(20)}")
        if wait_ok:
            self.wait_ok(timeout)

    def failover(self, replica_port: int, *, mode: str = "", timeout: float = 15.0) -> None:
        """`CLUSTER FAILOVER [FORCE|TAKEOVER]` on a replica; wait until it is a master and the cluster is ok.

        Plain mode needs the master up (they swap without losing a write); FORCE works with the master dead.
        """
        self._ask(replica_port, "CLUSTER", "FAILOVER", *([mode] if mode else []))
        deadline = time.monotonic() + timeout
        while self._role_of(replica_port) != "master":
            if time.monotonic() > deadline:
                raise AssertionError(f"replica {replica_port} was not promoted within {timeout} s\n{self.logs()}")
            time.sleep(0.05)
        self.wait_ok(max(deadline - time.monotonic(), 1.0))

    def start_reshard(self, from_id: str, to_id: str, slots: int) -> Reshard:
        """Start `redis-cli --cluster reshard` moving `slots` slots (with their keys); returns at once."""
        port = self.masters()[0].port
        reshard = Reshard.start(port, from_id, to_id, slots, self.folder / f"reshard-{len(self._reshards)}.log")
        self._reshards.append(reshard)
        return reshard

    def reshard(self, from_id: str, to_id: str, slots: int, timeout: float = 60.0) -> None:
        """Move `slots` slots (with their keys) from one master to another; wait until done and the cluster is ok."""
        self.start_reshard(from_id, to_id, slots).wait(timeout)
        self.wait_ok()

    def flush(self) -> None:
        """Empty every master: its keys (replicas follow) and its cached Lua scripts, as on a fresh server."""
        for master in self.masters():
            with self.client(master.port) as node:
                node.flushall()
                node.script_flush()

    def logs(self, lines: int = 15) -> str:
        """The last lines of every node's log, for a failed test's report."""
        return "\n".join(f"----- node {port} -----\n{node.log_tail(lines)}" for port, node in self._nodes.items())

    def stop(self) -> None:
        """Kill every node and any running reshard by pid, and remove the temp folder (safe to call twice)."""
        for reshard in self._reshards:
            reshard.kill()
        for node in self._nodes.values():
            node.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.stop)
