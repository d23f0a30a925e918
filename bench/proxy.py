"""A TCP forwarder on loopback that a test can cut and restore: a database going away."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; stop() drops every connection and refuses new
    ones until start() again, on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for conn in (source, sink):
                    self._open.discard(conn)
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)


def proxied(url: str) -> tuple[TcpProxy, str]:
    """A started proxy in front of the database server of `url`, and `url` through it."""
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    port = parts.port or 5432
    proxy = TcpProxy(parts.hostname or "127.0.0.1", port)
    proxy.start()
    return proxy, url.replace(f"{parts.hostname}:{port}", f"127.0.0.1:{proxy.port}", 1)
