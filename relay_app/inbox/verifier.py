"""Password checks on one dedicated thread behind a bounded queue.

scrypt takes a 16 MiB buffer per hash. Hashed in the HTTP worker threads, every worker
that ever took a login kept such a buffer in its own glibc malloc arena (memory grew
with every worker: docs/benchmarks.md), and 16 workers hashing at once left none for
ingest. Here one thread hashes, so the buffer lives in one arena whatever thread took
the request; a full queue is refused at once (`VerifierBusy`) instead of parking more
workers.

That arena keeps the one buffer from the second hash on (about 16 MiB, for the relay's
life: glibc mmaps the first, then raises its mmap threshold past that size, and returns a
thread arena's top to the system only past its trim threshold; malloc_trim leaves it
too). That is the price, paid once, not per worker.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from relay_app.passwords import verify_password

logger = logging.getLogger(__name__)

# Attempts waiting for the hashing thread: with the throttle's budget (5 hashes a second,
# each far shorter than that second) the queue is nearly always empty; 4 absorbs a burst,
# and at most 5 worker threads ever wait on it.
QUEUE_SIZE = 4
# A worker waits at most this long for its answer (the queue's worth of hashes, with room
# for a loaded machine) before answering "busy".
WAIT_S = 10.0

_Job = tuple[str, Future[bool]] | None


class VerifierBusy(Exception):
    """The hashing thread's queue is full (or it did not answer in time): try later."""


class PasswordVerifier:
    """Checks passwords against one scrypt hash, on its own thread."""

    def __init__(self, encoded: str, queue_size: int = QUEUE_SIZE) -> None:
        """Start the hashing thread."""
        self._encoded = encoded
        self._jobs: queue.Queue[_Job] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="inbox-scrypt", daemon=True)
        self._thread.start()

    def verify(self, password: str, timeout: float = WAIT_S) -> bool:
        """Whether `password` matches; VerifierBusy when the queue is full or slow."""
        done: Future[bool] = Future()
        try:
            self._jobs.put_nowait((password, done))
        except queue.Full as exc:
            raise VerifierBusy("password checks are queued to their limit") from exc
        try:
            return done.result(timeout)
        except TimeoutError as exc:
            done.cancel()  # still queued: the thread skips it
            raise VerifierBusy("the password check did not finish in time") from exc

    def close(self) -> None:
        """Stop the thread after the checks already queued."""
        self._jobs.put(None)
        self._thread.join(timeout=WAIT_S)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            password, done = job
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(verify_password(password, self._encoded))
            except Exception as exc:  # the thread must outlive one bad check
                logger.exception("password check failed")
                done.set_exception(exc)
