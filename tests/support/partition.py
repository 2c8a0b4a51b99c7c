"""A TCP forwarder on 127.0.0.1 that can cut every connection and stop listening, then heal.

The soak puts it between the nodes and the relay: a cut looks to the nodes like the storage
host dropping off the network (refused connections, requests reset half-way), while the
relay process itself lives on, so its memory can be followed for the whole run.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 65536


class Partition:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream_port` until `cut()`."""

    def __init__(self, port: int, upstream_port: int) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.cuts = 0
        # Seconds each chunk towards the upstream is held: a slow link, for requests in flight.
        self.delay = 0.0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    @property
    def up(self) -> bool:
        """Whether it forwards right now."""
        return self._listener is not None

    def heal(self) -> None:
        """Listen again (or for the first time) and forward new connections."""
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and reset every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self.cuts += 1
        _close(listener)
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _close(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut: the listener was shut down
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst, out in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, out), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while data := src.recv(CHUNK):
                if outbound and self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    """Shut down (which also wakes a thread blocked in accept or recv) and close."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
