"""The running relay: store, IngestActor, app, HTTP server; started in order, stopped in reverse."""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

import bottle

from relay_app.app import create_app
from relay_app.archive.tiered import with_archive
from relay_app.diskspace import FreeBytes, SpaceGate
from relay_app.files import MULTIPART_OVERHEAD
from relay_app.ingest import Ingest
from relay_app.metrics import MetricsMiddleware
from relay_app.metrics_auth import MetricsGate
from relay_app.relay_lock import acquire, release
from relay_app.store import MessageStore
from relay_app.stores import open_store
from runtime.core.config import ClusterConfig, RelaySettings
from runtime.core.tls import server_context
from runtime.core.wsgi import FrontLimits, ServerHandle, serve_in_thread

logger = logging.getLogger(__name__)


def body_cap(settings: RelaySettings) -> int:
    """The largest body any route accepts: a JSON batch, or a file with its multipart frame."""
    return max(settings.max_body_bytes, settings.max_file_bytes + MULTIPART_OVERHEAD)


class RelayServer:
    """One relay process's worth of parts; `start()` then `stop()` (or use `with`)."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        host: str,
        port: int,
        store: MessageStore | None = None,
        free_bytes: FreeBytes | None = None,
    ) -> None:
        """Prepare; nothing opens until `start()`. `store` defaults to SQLite in data_dir."""
        self.config = config
        self.host = host
        self.port = port
        self._store = store
        # The relay's one free-space gate, which the API, the file door and the inbox all ask;
        # `free_bytes` replaces the data directory's probe (tests fill a disk at will).
        self.gate = SpaceGate.of(config.relay, free_bytes)
        self._ingest: Ingest | None = None
        self._http: ServerHandle | None = None
        self._app: bottle.Bottle | None = None
        self._lock: int | None = None

    @property
    def url(self) -> str:
        """The base URL the relay listens on (after `start()`)."""
        assert self._http is not None, "RelayServer not started"
        return self._http.url

    @property
    def store(self) -> MessageStore:
        """The store (after `start()`)."""
        assert self._store is not None, "RelayServer not started"
        return self._store

    def start(self) -> RelayServer:
        """Open the store, start the IngestActor, then accept connections."""
        settings = self.config.relay
        tls = server_context(self.config)  # a bad certificate or key stops the start here
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        try:
            if settings.store == "sqlite":
                # One SQLite relay per data dir, and none under a restore (relay_app.relay_lock).
                # Relays on PostgreSQL may share a data dir: their store is elsewhere.
                self._lock = acquire(settings.data_dir)
            if self._store is None:
                self._store = open_store(settings)
            self._store = with_archive(self._store, settings.data_dir)
            self._ingest = Ingest.start(self._store)
            app = self.make_app(self._store, self._ingest)
            self._app = app
            # The gate answers /metrics 401 without the metrics token, before it is counted.
            metered = MetricsMiddleware(app, self._store, self.gate.free, self._ingest)
            served = MetricsGate(metered, settings)
            self._http = serve_in_thread(
                served,
                self.host,
                self.port,
                threads=settings.threads,
                name="commander-relay",
                limits=FrontLimits(
                    body_bytes=body_cap(settings), write_timeout=float(settings.write_timeout_s)
                ),
                ssl_context=tls,
            )
        except BaseException:
            self.stop()
            raise
        logger.info("relay listening on %s, data in %s", self._http.url, settings.data_dir)
        return self

    def make_app(self, store: MessageStore, ingest: Ingest) -> bottle.Bottle:
        """The relay's Bottle app; a subclass may add routes (the benchmark's HTTP floor)."""
        return create_app(store, self.config, ingest=ingest, gate=self.gate)

    def healthy(self) -> bool:
        """Whether the HTTP server and the IngestActor are both running."""
        http, ingest = self._http, self._ingest
        return http is not None and http.running and ingest is not None and ingest.alive

    def stop(self) -> None:
        """Stop accepting and finish requests in flight, then stop the writer, then close."""
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._app is not None:
            self._app.close()  # stops the inbox's writer (a Bottle plugin's close)
            self._app = None
        if self._ingest is not None:
            self._ingest.stop()
            self._ingest = None
        if self._store is not None:
            self._store.close()
        if self._lock is not None:
            release(self._lock)
            self._lock = None

    def __enter__(self) -> RelayServer:
        """Start on entering a `with` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving it."""
        self.stop()
