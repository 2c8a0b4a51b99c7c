"""The execute webhook's POST: the status, or the error, never an exception."""

from __future__ import annotations

import socket
import time

from relay_app.inbox.webhook import post_json
from tests.relay_app.inbox.webhook import Webhook
from tests.support import free_port


def test_a_reached_webhook_gets_the_body_and_its_status_comes_back() -> None:
    hook = Webhook()
    try:
        assert post_json(hook.url + "?k=v", b'{"msg_id": "m1"}', 3.0) == 204
        assert hook.bodies == [{"msg_id": "m1"}]
    finally:
        hook.stop()


def test_a_refused_connection_is_returned_as_the_error() -> None:
    result = post_json(f"http://127.0.0.1:{free_port()}/hook", b"{}", 3.0)
    assert isinstance(result, ConnectionRefusedError)


def test_a_webhook_that_never_answers_costs_at_most_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        result = post_json(f"http://127.0.0.1:{silent.getsockname()[1]}/", b"{}", 0.3)
        assert isinstance(result, TimeoutError)
        assert time.monotonic() - started < 3.0


def test_an_unusable_url_is_an_error_not_an_exception() -> None:
    assert isinstance(post_json("http://[::1/x", b"{}", 0.3), Exception)
