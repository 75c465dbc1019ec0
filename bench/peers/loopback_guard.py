"""The bench harnesses' network guard: only loopback, in Python's socket layer and in /proc.

Standard library only (binance_harness.py runs with every peer's interpreter). ``LoopbackGuard``
refuses any other address in getaddrinfo/connect, switches proxies off, and a watcher lists this
process's TCP sockets, which also sees sockets opened by native code (nautilus' Rust clients).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "::ffff:127.0.0.1"})
#: the socket watcher: poll period, scans given to a new socket to show a remote, full scan period (polls)
WATCH_POLL_S, WATCH_PENDING_POLLS, WATCH_FULL_EVERY = 0.1, 10, 100


class LoopbackGuard:
    """Refuse non-loopback addresses in Python's socket layer; watch the process's TCP sockets."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.foreign: set[str] = set()
        self.hosts_resolved: set[str] = set()
        self._stop = threading.Event()

    def install(self) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                     "WS_PROXY", "WSS_PROXY", "ws_proxy", "wss_proxy"):
            os.environ.pop(name, None)
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "*"
        real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, \
            socket.socket.connect_ex
        guard = self

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            text = host.decode() if isinstance(host, bytes) else str(host)
            guard.hosts_resolved.add(text)
            if host is not None and text not in LOOPBACK:
                guard.blocked.append(f"resolve {text}")
                raise socket.gaierror(socket.EAI_NONAME, f"bench guard: {text} is not loopback")
            return real_getaddrinfo(host, *args, **kwargs)

        def check(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and str(address[0]) not in LOOPBACK:
                guard.blocked.append(f"connect {address[0]}")
                raise ConnectionRefusedError(f"bench guard: {address[0]} is not loopback")

        def connect(sock: socket.socket, address: Any) -> Any:
            check(sock, address)
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            check(sock, address)
            return real_connect_ex(sock, address)

        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        threading.Thread(target=self._watch, name="bench-net-watch", daemon=True).start()

    def _watch(self) -> None:
        """Scan the TCP tables only when this process has a socket whose remote is not known yet.

        The tables list every TCP socket of the network namespace (on a busy machine thousands in
        TIME_WAIT, e.g. after a 1000-snapshot run): a scan costs ~10 ms, so scanning every 100 ms
        took ~10% of a core from every peer, inside its measured CPU. A socket is *settled* once
        seen listening or with a remote address (a TCP socket connects once); new inodes are
        scanned for until settled (or WATCH_PENDING_POLLS scans: not TCP, e.g. a socketpair), and
        a full scan runs every WATCH_FULL_EVERY polls anyway (10 s: even with few sockets in the
        tables a scan costs ~8 ms, the kernel walking its whole TCP hash to print them; every 2 s
        that was ~4-10 ms of CPU a second in every peer's row, a third of naive's at 10k).
        """
        pending: dict[str, int] = {}
        known: set[str] = set()  # settled, or given up on (left to the full scans)
        polls = 0
        while not self._stop.wait(WATCH_POLL_S):
            polls += 1
            inodes = _socket_inodes()
            for inode in inodes - known - pending.keys():
                pending[inode] = WATCH_PENDING_POLLS
            known &= inodes
            if not pending and polls % WATCH_FULL_EVERY:
                continue
            foreign, seen = _scan_tcp(inodes)
            self.foreign.update(foreign)
            known |= seen | {i for i, left in pending.items() if left <= 1}
            pending = {i: left - 1 for i, left in pending.items() if i in inodes and i not in known}

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self.foreign.update(foreign_tcp_peers())
        return {"blocked": sorted(set(self.blocked)), "non_loopback_sockets": sorted(self.foreign),
                "hosts_resolved": sorted(self.hosts_resolved)}


def _socket_inodes() -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _hex_addr(text: str) -> str:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def foreign_tcp_peers() -> set[str]:
    """Remote addresses of this process's TCP sockets that are not loopback (connected or connecting)."""
    return _scan_tcp(_socket_inodes())[0]


def _scan_tcp(inodes: set[str]) -> tuple[set[str], set[str]]:
    """(non-loopback remotes, inodes settled: listening or with a remote) of ``inodes`` in the TCP tables."""
    out, settled = set(), set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[9] not in inodes:
                continue
            if parts[3] == "0A":  # LISTEN
                settled.add(parts[9])
                continue
            remote = _hex_addr(parts[2])
            host = remote.rsplit(":", 1)[0].strip("[]")
            if host not in ("0.0.0.0", "::"):
                settled.add(parts[9])
            if not (host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1", "0.0.0.0", "::")):
                out.add(remote)
    return out, settled
