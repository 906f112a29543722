"""Free local TCP ports for servers a test starts."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody listens on right now, picked by the kernel (bind to port 0).

    All probes stay bound until every port is picked, so the kernel cannot hand out one port twice; another
    process (a parallel pytest-xdist worker) may still take one before our server binds it, which the caller
    notices as a server that exits at once.
    """
    with ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
        return ports
