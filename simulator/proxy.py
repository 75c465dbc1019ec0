"""A userspace TCP proxy that can blackhole the path: stop forwarding both ways, close nothing.

The simulator's own `blackhole` fault silences a connection from the venue's side. A real
network blackhole is different in one way that matters to a client: TCP keeps every byte, both
ways, in kernel buffers and delivers it once the path is back (if nobody gave up meanwhile).
`TcpProxy` sits between a client and any TCP server on loopback and reproduces exactly that:

- `pause`: from the moment it returns, the proxy hands nothing more to either side: it stops
  reading from both sides, stops writing to both sides and stops accepting (bytes it had already
  written are in the receiver's kernel buffer and still arrive). Nothing is discarded and nothing
  is closed.
  Bytes sent meanwhile wait in the kernel buffers (the sender's socket buffer fills, then its
  writes block or buffer in its application), bytes the proxy had already read wait in the
  proxy; a FIN or RST from either side goes unnoticed. New TCP connections complete in the
  kernel's listen backlog but get no byte of answer, so a WebSocket handshake blocks.
- `resume`: everything held flows again, in order; held connections are accepted.
- `cut`: close every proxied connection now (FIN, or RST with ``reset=True``); keep listening.
- `close`: cut, stop listening, stop the thread.

One daemon thread runs a ``selectors`` loop for every connection; each client connection gets its
own upstream connection (opened when accepted). Per direction the proxy holds at most
`BUFFER_LIMIT_BYTES` before it stops reading that side, so backpressure reaches the sender
as it would through a router. Standard library only: this module imports nothing else, so a
client test can use it against any server (it also imports nothing of ``actors``/``supervisor``).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from types import TracebackType

#: Bytes read from one side and not yet written to the other, per direction, before reading stops.
BUFFER_LIMIT_BYTES = 256 * 1024
#: Largest single read.
READ_CHUNK_BYTES = 64 * 1024
#: How long `close` waits for the thread.
JOIN_TIMEOUT_S = 5.0


class _Direction:
    """Bytes flowing from ``src`` to ``dst`` and the state of that half of the connection."""

    __slots__ = ("buffer", "dst", "eof", "shut", "src")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.buffer = bytearray()
        self.eof = False  # src sent FIN
        self.shut = False  # the FIN has been passed on to dst


class _Pipe:
    """One proxied connection: the client's socket, the upstream socket, both directions."""

    __slots__ = ("closed", "directions", "downstream", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.downstream = client
        self.upstream = upstream
        self.directions = (_Direction(client, upstream), _Direction(upstream, client))
        self.closed = False

    def sockets(self) -> tuple[socket.socket, socket.socket]:
        return self.downstream, self.upstream


def _close(sock: socket.socket, *, reset: bool) -> None:
    if reset:
        try:  # linger 0: the close sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    sock.close()


class TcpProxy:
    """``TcpProxy(host, port)`` forwards ``127.0.0.1:<proxy.port>`` to ``host:port`` until closed."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.target = (target_host, target_port)
        self._connect_timeout_s = connect_timeout_s
        self._listener = socket.create_server((listen_host, listen_port))
        self._listener.setblocking(False)
        self.host: str = listen_host
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._registered: dict[socket.socket, int] = {self._wake_r: selectors.EVENT_READ}
        self._lock = threading.Lock()
        self._paused = False
        self._closing = False
        self._pipes: dict[socket.socket, _Pipe] = {}  # both sockets of each pipe -> the pipe
        self._bytes_forwarded = 0
        self._accepted = 0
        self._thread = threading.Thread(target=self._run, name="depthkeeper-tcp-proxy", daemon=True)
        self._thread.start()

    # -- control (any thread) ---------------------------------------------------------------------

    def url_for(self, path: str = "", scheme: str = "ws") -> str:
        """``scheme://host:port/path`` through the proxy (``ws``, ``http``, ...)."""
        return f"{scheme}://{self.host}:{self.port}{path}"

    def pause(self) -> None:
        """Stop forwarding, reading and accepting, both ways; hold everything, close nothing."""
        with self._lock:
            self._paused = True
        self._wake()

    def resume(self) -> None:
        """Forward again, held bytes first (in order); accept held connections."""
        with self._lock:
            self._paused = False
        self._wake()

    @property
    def paused(self) -> bool:
        return self._paused

    def cut(self, *, reset: bool = False) -> int:
        """Close every proxied connection (both of its sockets) now; return how many."""
        with self._lock:
            pipes = {id(pipe): pipe for pipe in self._pipes.values()}
            for pipe in pipes.values():
                self._close_pipe(pipe, reset=reset)
        self._wake()
        return len(pipes)

    def close(self) -> None:
        """Cut everything, stop listening and join the thread. Idempotent."""
        with self._lock:
            self._closing = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "paused" if self._paused else "forwarding"
        return f"<TcpProxy {self.host}:{self.port} -> {self.target[0]}:{self.target[1]} {state}>"

    # -- figures ----------------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Proxied connections open now."""
        with self._lock:
            return len({id(pipe) for pipe in self._pipes.values()})

    @property
    def accepted(self) -> int:
        """Client connections accepted since the start."""
        with self._lock:
            return self._accepted

    @property
    def bytes_forwarded(self) -> int:
        """Bytes written to either side since the start."""
        with self._lock:
            return self._bytes_forwarded

    # -- the loop (proxy thread) --------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):  # full (a wake-up is pending anyway) or closed
            pass

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closing:
                        return
                    self._refresh_interest()
                events = self._selector.select()
                with self._lock:
                    if self._closing:
                        return
                    for key, mask in events:
                        self._on_event(key.fileobj, mask)  # type: ignore[arg-type]
        finally:
            with self._lock:
                for pipe in list(self._pipes.values()):
                    self._close_pipe(pipe, reset=False)
                self._selector.close()
                self._listener.close()
                self._wake_r.close()
                self._wake_w.close()

    def _refresh_interest(self) -> None:
        """Register each socket for exactly what it may do now (nothing at all while paused)."""
        wanted: dict[socket.socket, int] = {self._wake_r: selectors.EVENT_READ}
        if not self._paused:
            wanted[self._listener] = selectors.EVENT_READ
            for pipe in set(self._pipes.values()):
                for direction in pipe.directions:
                    if not direction.eof and len(direction.buffer) < BUFFER_LIMIT_BYTES:
                        wanted[direction.src] = wanted.get(direction.src, 0) | selectors.EVENT_READ
                    if direction.buffer:
                        wanted[direction.dst] = wanted.get(direction.dst, 0) | selectors.EVENT_WRITE
        for sock, events in list(self._registered.items()):
            if sock not in wanted:
                self._selector.unregister(sock)
                del self._registered[sock]
            elif wanted[sock] != events:
                self._selector.modify(sock, wanted[sock])
                self._registered[sock] = wanted[sock]
        for sock, events in wanted.items():
            if sock not in self._registered:
                self._selector.register(sock, events)
                self._registered[sock] = events

    def _on_event(self, sock: socket.socket, mask: int) -> None:
        if sock is self._wake_r:
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass
            return
        if self._paused:
            return
        if sock is self._listener:
            self._accept()
            return
        pipe = self._pipes.get(sock)
        if pipe is None or pipe.closed:
            return
        try:
            for direction in pipe.directions:
                if mask & selectors.EVENT_READ and direction.src is sock:
                    self._read(direction)
                if direction.buffer or direction.eof:
                    self._flush(direction)
        except OSError:  # reset or broken: pass the abrupt end on to the other side
            self._close_pipe(pipe, reset=True)
            return
        if all(direction.shut for direction in pipe.directions):
            self._close_pipe(pipe, reset=False)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            upstream = socket.create_connection(self.target, timeout=self._connect_timeout_s)
        except OSError:
            _close(client, reset=True)  # like a refused connection, one hop later
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe = _Pipe(client, upstream)
        self._pipes[client] = pipe
        self._pipes[upstream] = pipe
        self._accepted += 1

    def _read(self, direction: _Direction) -> None:
        try:
            data = direction.src.recv(READ_CHUNK_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            direction.buffer += data
        else:
            direction.eof = True

    def _flush(self, direction: _Direction) -> None:
        if direction.buffer:
            try:
                sent = direction.dst.send(direction.buffer)
            except (BlockingIOError, InterruptedError):
                return
            del direction.buffer[:sent]
            self._bytes_forwarded += sent
        if direction.eof and not direction.buffer and not direction.shut:
            direction.dst.shutdown(socket.SHUT_WR)
            direction.shut = True

    def _close_pipe(self, pipe: _Pipe, *, reset: bool) -> None:
        if pipe.closed:
            return
        pipe.closed = True
        for sock in pipe.sockets():
            self._pipes.pop(sock, None)
            if sock in self._registered:
                self._selector.unregister(sock)
                del self._registered[sock]
            _close(sock, reset=reset)
