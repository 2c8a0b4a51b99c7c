"""Which client address and scheme the inbox believes, from which peer."""

from __future__ import annotations

from relay_app.inbox.forwarded import Proxies

PROXY = "10.0.0.5"


def environ(peer: str, **headers: str) -> dict[str, str]:
    """A WSGI environ from `peer` with HTTP_* headers."""
    return {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http", **headers}


def test_a_stranger_is_its_peer_address_whatever_it_forwards() -> None:
    proxies = Proxies([PROXY])
    env = environ("192.0.2.9", HTTP_X_FORWARDED_FOR="203.0.113.1", HTTP_X_FORWARDED_PROTO="https")
    assert proxies.client(env) == "192.0.2.9"
    assert not proxies.https(env)


def test_a_trusted_proxy_vouches_for_the_hop_it_added_not_for_what_the_client_wrote() -> None:
    proxies = Proxies([PROXY])
    forged = environ(PROXY, HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.1")
    assert proxies.client(forged) == "203.0.113.1"
    assert proxies.https(environ(PROXY, HTTP_X_FORWARDED_PROTO="https"))
    assert not proxies.https(environ(PROXY, HTTP_X_FORWARDED_PROTO="https, http"))


def test_a_chain_of_trusted_proxies_is_walked_and_garbage_stops_the_walk() -> None:
    proxies = Proxies([PROXY, "10.0.0.6"])
    chain = environ(PROXY, HTTP_X_FORWARDED_FOR="203.0.113.1, 10.0.0.6")
    assert proxies.client(chain) == "203.0.113.1"
    assert proxies.client(environ(PROXY, HTTP_X_FORWARDED_FOR="not-an-ip")) == PROXY
    assert proxies.client(environ(PROXY)) == PROXY


def test_tls_to_the_relay_itself_is_https_and_mapped_ipv4_matches() -> None:
    proxies = Proxies(["127.0.0.1"])
    assert proxies.https({"REMOTE_ADDR": "192.0.2.9", "wsgi.url_scheme": "https"})
    mapped = environ("::ffff:127.0.0.1", HTTP_X_FORWARDED_FOR="2001:db8::7")
    assert proxies.client(mapped) == "2001:db8::7"
    assert Proxies([]).client(environ("garbage")) == "unknown"
