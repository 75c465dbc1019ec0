"""A throwaway ``redis-server`` on a free loopback port, for tests, benchmarks and local demos.

Never the machine's own Redis: the server runs in its own temporary directory with persistence
off (``--save "" --appendonly no``), so a restart comes back empty — exactly the "Redis restarted
and lost everything" case the cluster must survive. ``kill()`` is SIGKILL (no goodbye to clients).
:class:`LocalRedisCluster`: a few of them as one Redis Cluster.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

STARTUP_TIMEOUT_S = 10.0


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRedis:
    def __init__(self, port: int | None = None) -> None:
        binary = redis_server_path()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install -y redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="depthkeeper-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        #: more redis-server arguments (a cluster node's)
        self.extra_args: list[str] = []
        self.bus_port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"), *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port} (see {self.dir / 'redis.log'})")
            time.sleep(0.01)  # polling the port against a deadline

    def kill(self) -> None:
        """SIGKILL and wait: the data is gone (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> LocalRedis:
        """Kill, then start empty on the same port."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalRedis:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalRedisCluster:
    """A throwaway Redis Cluster of ``nodes`` primaries (no replicas) on free loopback ports: each node a
    :class:`LocalRedis` with cluster mode on, the 16384 hash slots split evenly, the nodes introduced to
    each other (``CLUSTER MEET``); ready once every node says ``cluster_state:ok``. For tests that must
    prove a command or script is Cluster-safe (a cross-slot one fails here, never on one node)."""

    def __init__(self, nodes: int = 3) -> None:
        self.nodes = [LocalRedis() for _ in range(nodes)]

    @property
    def url(self) -> str:
        """Any node's URL: a cluster client discovers the others from it."""
        return self.nodes[0].url

    def start(self) -> LocalRedisCluster:
        import redis

        for node in self.nodes:
            bus_port = free_port()
            node.extra_args = ["--cluster-enabled", "yes", "--cluster-config-file", str(node.dir / "nodes.conf"),
                               "--cluster-port", str(bus_port), "--cluster-node-timeout", "3000"]
            node.bus_port = bus_port
            node.start()
        clients = [redis.Redis(host="127.0.0.1", port=n.port, decode_responses=True) for n in self.nodes]
        try:
            per = 16384 // len(self.nodes)
            for i, client in enumerate(clients):
                last = 16383 if i == len(clients) - 1 else (i + 1) * per - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S * 2
            while not all("cluster_state:ok" in c.execute_command("CLUSTER", "INFO") and
                          len(c.execute_command("CLUSTER", "SLOTS")) == len(self.nodes) for c in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the local Redis Cluster did not converge")
                time.sleep(0.05)  # polling the cluster state against a deadline
        finally:
            for client in clients:
                client.close()
        return self

    def flush(self) -> None:
        """Empty every node (scripts stay loaded)."""
        import redis

        for node in self.nodes:
            with redis.Redis(host="127.0.0.1", port=node.port) as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
