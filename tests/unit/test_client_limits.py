"""The client address behind proxies, the per-address buckets, and the settings of both."""

from __future__ import annotations

import argparse
from ipaddress import ip_network

import pytest

from signaling.client_limits import AddressBuckets, client_address, limit_key
from signaling.config import Network, Settings, add_arguments, settings_from
from signaling.core.errors import ConfigError

PROXY = "10.0.0.1"
TRUSTED: tuple[Network, ...] = (ip_network("10.0.0.0/24"), ip_network("fd00::/8"))


def address(peer: str | None, *forwarded_for: str) -> str:
    return client_address(peer, list(forwarded_for), TRUSTED)


# --- client_address ------------------------------------------------------------------------


def test_without_a_trusted_peer_the_header_is_ignored() -> None:
    assert address("203.0.113.9", "198.51.100.7") == "203.0.113.9"
    assert client_address(PROXY, ["198.51.100.7"], ()) == PROXY  # no proxy trusted at all


def test_from_a_trusted_proxy_the_header_names_the_client() -> None:
    assert address(PROXY, "198.51.100.7") == "198.51.100.7"
    assert address(PROXY) == PROXY  # no header: a request of the proxy's own


def test_the_right_most_untrusted_entry_wins() -> None:
    # The client wrote the first entry itself; its proxy appended the real one; a second
    # proxy of ours appended the first proxy's.
    assert address(PROXY, "192.0.2.1, 198.51.100.7, 10.0.0.2") == "198.51.100.7"
    # Several header lines are one list.
    assert address(PROXY, "192.0.2.1", "198.51.100.7", "10.0.0.2") == "198.51.100.7"
    # Spaces around entries are allowed.
    assert address(PROXY, "  198.51.100.7  ") == "198.51.100.7"


def test_entries_left_of_the_client_are_never_read() -> None:
    assert address(PROXY, "not an address, 198.51.100.7") == "198.51.100.7"


def test_every_entry_trusted_gives_the_farthest() -> None:
    assert address(PROXY, "10.0.0.3, 10.0.0.2") == "10.0.0.3"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "unknown",
        "",
        "198.51.100.7,",
        "198.51.100.7,,10.0.0.2",
        "198.51.100.7:4711",
        "[2001:db8::1]",
        "999.1.1.1",
        "198.51.100.7; 10.0.0.2",
    ],
)
def test_a_malformed_header_falls_back_to_the_peer(header: str) -> None:
    assert address(PROXY, header) == PROXY


def test_ipv4_inside_ipv6_is_plain_ipv4() -> None:
    # A dual-stack listener reports IPv4 peers this way; the trust list is written in IPv4.
    assert address("::ffff:10.0.0.1", "198.51.100.7") == "198.51.100.7"
    assert address("::ffff:203.0.113.9") == "203.0.113.9"
    assert address(PROXY, "::ffff:198.51.100.7") == "198.51.100.7"


def test_ipv6() -> None:
    assert address("fd00::5", "2001:db8::1") == "2001:db8::1"
    assert address("2001:db8::9", "198.51.100.7") == "2001:db8::9"
    assert address("2001:DB8:0::9") == "2001:db8::9"  # one spelling per address


def test_a_peer_that_is_not_an_ip() -> None:
    assert address(None, "198.51.100.7") == "unknown"
    assert address("/run/sessionroom.sock", "198.51.100.7") == "/run/sessionroom.sock"


def test_limits_count_an_ipv6_host_by_its_64() -> None:
    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:bbbb::9")
    assert limit_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("198.51.100.7") == "198.51.100.7"


# --- AddressBuckets --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_per_key() -> None:
    clock = FakeClock()
    buckets = AddressBuckets(burst=3, per_second=2.0, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # another key has its own
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)


def test_refilled_buckets_are_forgotten() -> None:
    clock = FakeClock()
    buckets = AddressBuckets(burst=4, per_second=2.0, clock=clock)
    for key in ("a", "b", "c"):
        buckets.take(key)
    clock.now += 1.0
    buckets.take("d")
    assert len(buckets) == 4
    clock.now += 1.0  # a, b and c idle for 2 s = burst / rate: full again
    buckets.take("d")
    assert len(buckets) == 1


def test_a_forgotten_bucket_starts_full() -> None:
    clock = FakeClock()
    buckets = AddressBuckets(burst=2, per_second=1.0, clock=clock)
    buckets.take("a")
    buckets.take("a")
    assert buckets.take("a") > 0
    clock.now += 2.0
    assert [buckets.take("a") for _ in range(2)] == [0.0, 0.0]


def test_the_number_of_keys_is_bounded() -> None:
    clock = FakeClock()
    buckets = AddressBuckets(burst=10, per_second=0.001, clock=clock, max_keys=100)
    for n in range(1000):
        buckets.take(f"198.51.{n // 256}.{n % 256}")
    assert len(buckets) == 100


# --- settings ------------------------------------------------------------------------------


def _settings(**env: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from(parser.parse_args([]), env)


def test_the_defaults() -> None:
    s = Settings()
    assert (s.max_sockets_per_address, s.api_rate_burst, s.api_rate_per_second) == (50, 100, 20)
    assert s.trusted_proxies == ()
    assert (s.metrics_port, s.metrics_token) == (0, "")


def test_trusted_proxies_are_ips_or_networks() -> None:
    s = _settings(SESSIONROOM_TRUSTED_PROXIES="172.30.80.2, 10.1.0.0/16,fd00::/8")
    assert s.trusted_proxies == (
        ip_network("172.30.80.2/32"),
        ip_network("10.1.0.0/16"),
        ip_network("fd00::/8"),
    )
    for bad in ("caddy", "10.1.0.5/16", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match="--trusted-proxies"):
            _settings(SESSIONROOM_TRUSTED_PROXIES=bad)


def test_zero_turns_a_limit_off_and_negative_is_refused() -> None:
    s = _settings(SESSIONROOM_MAX_SOCKETS_PER_ADDRESS="0", SESSIONROOM_API_RATE_PER_SECOND="0")
    assert (s.max_sockets_per_address, s.api_rate_per_second) == (0, 0)
    with pytest.raises(ConfigError):
        Settings(max_sockets_per_address=-1)
    with pytest.raises(ConfigError):
        Settings(api_rate_per_second=-1)
    with pytest.raises(ConfigError):
        Settings(api_rate_burst=0)


def test_short_api_keys_are_refused_without_showing_them() -> None:
    Settings(api_keys=("k" * 32,))
    with pytest.raises(ConfigError) as refused:
        Settings(api_keys=("k" * 40, "change-me"))
    message = refused.value.message
    assert "API key 2 of 2" in message and "at least 32" in message
    assert "secrets.token_urlsafe" in message
    assert "change-me" not in message


def test_a_short_metrics_token_is_refused() -> None:
    Settings(metrics_token="t" * 32)
    with pytest.raises(ConfigError, match="SESSIONROOM_METRICS_TOKEN"):
        Settings(metrics_token="short")


def test_the_metrics_port() -> None:
    assert _settings(SESSIONROOM_METRICS_PORT="9100").metrics_port == 9100
    with pytest.raises(ConfigError):
        Settings(port=8080, metrics_port=8080)
    with pytest.raises(ConfigError):
        Settings(metrics_port=70000)
