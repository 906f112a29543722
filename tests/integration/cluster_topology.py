"""Reading a Redis Cluster's topology from `CLUSTER NODES`, as one node sees it."""

from __future__ import annotations

from dataclasses import dataclass

SLOTS = 16384

# Flags under which a node's entry cannot be trusted yet: suspected or agreed down, or not yet met.
_UNSETTLED_FLAGS = frozenset({"fail", "fail?", "handshake", "noaddr"})


@dataclass(frozen=True)
class NodeInfo:
    """One node of the cluster: its client port, role, id, the master it replicates and the slots it serves."""

    port: int
    role: str  # "master" or "replica"
    node_id: str
    master_id: str | None
    slots: tuple[tuple[int, int], ...]
    flags: frozenset[str]

    @property
    def slot_count(self) -> int:
        """How many slots it serves."""
        return sum(last - first + 1 for first, last in self.slots)

    def served(self) -> set[int]:
        """The slots it serves."""
        return {slot for first, last in self.slots for slot in range(first, last + 1)}

    @property
    def settled(self) -> bool:
        """Whether it is seen as up, met and known by address."""
        return not self.flags & _UNSETTLED_FLAGS


def parse_cluster_nodes(text: str) -> list[NodeInfo]:
    """The nodes listed in a `CLUSTER NODES` reply (the raw text), in its order.

    A line reads `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`;
    a slot entry is `N`, `N-M`, or `[N->-id]` / `[N-<-id]` for a slot being migrated (shown by its two
    ends only), which is not served yet and is left out.
    """
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, address, flags_text, master = fields[:4]
        flags = frozenset(flags_text.split(","))
        port = int(address.split("@", 1)[0].rsplit(":", 1)[1])
        ranges = tuple(_slot_range(entry) for entry in fields[8:] if not entry.startswith("["))
        nodes.append(
            NodeInfo(
                port=port,
                role="master" if "master" in flags else "replica",
                node_id=node_id,
                master_id=None if master == "-" else master,
                slots=ranges,
                flags=flags - {"myself"},
            )
        )
    return nodes


def _slot_range(entry: str) -> tuple[int, int]:
    first, _, last = entry.partition("-")
    return int(first), int(last or first)


def slot_map(nodes: list[NodeInfo]) -> tuple[tuple[int, int, str], ...]:
    """(first slot, last slot, master id) for every served range, sorted: what every node must agree on."""
    return tuple(sorted((first, last, node.node_id) for node in nodes for first, last in node.slots))


def covers_every_slot(ranges: tuple[tuple[int, int, str], ...]) -> bool:
    """Whether the ranges of a slot map serve slots 0..16383 each exactly once."""
    expected = 0
    for first, last, _ in ranges:
        if first != expected:
            return False
        expected = last + 1
    return expected == SLOTS
