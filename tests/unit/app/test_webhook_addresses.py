"""Which addresses a webhook may go to (app/notifications/webhook_addresses.py)."""

from __future__ import annotations

import ipaddress

import pytest

from app.notifications.webhook_addresses import UnsafeAddress, address_problem, resolve, url_problem

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "100.64.0.1",
        "169.254.169.254", "224.0.0.251", "0.0.0.0", "255.255.255.255", "::1", "::",
        "fc00::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
        "192.0.2.1", "198.18.0.1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address), ()) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_are_fine(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address), ()) is None


def test_an_allowed_network_lets_its_addresses_through_and_no_others() -> None:
    assert address_problem(ipaddress.ip_address("127.0.0.5"), LOOPBACK) is None
    assert address_problem(ipaddress.ip_address("::ffff:127.0.0.1"), LOOPBACK) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), LOOPBACK) is not None


@pytest.mark.parametrize(
    ("url", "https", "ok"),
    [
        ("https://hooks.example.com/x", True, True),
        ("http://hooks.example.com/x", True, False),
        ("http://hooks.example.com/x", False, True),
        ("https://user:pw@hooks.example.com/", True, False),
        ("https://hooks.example.com:99999/", True, False),
        ("https://hooks.example.com:0/", True, False),
        ("https:///nohost", True, False),
        ("https://hooks.example.com/#frag", True, False),
        ("javascript:alert(1)", False, False),
    ],
)
def test_url_forms(url: str, https: bool, ok: bool) -> None:
    assert (url_problem(url, require_https=https) is None) == ok


def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    with pytest.raises(UnsafeAddress, match="loopback"):
        resolve("http://localhost:8080/x", (), require_https=False)
    assert str(resolve("http://localhost:8080/x", LOOPBACK, require_https=False).address) in (
        "127.0.0.1",
        "::1",
    )
