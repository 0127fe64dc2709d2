"""Where a webhook may be sent: no server-side request forgery.

A webhook URL is the app's to choose, so the service must not become a way into its own
network: the URL must be https in production (http is allowed in development and test),
have no user:password part, and its host must resolve only to public addresses, unless an
address is inside EXPORTS_WEBHOOK_ALLOW_NETWORKS. The host is checked when the endpoint is
created and resolved again at every delivery, which connects to the address it checked (a
name that resolves elsewhere later, DNS rebinding, is refused, not followed).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL = 2000


class UnsafeAddress(Exception):
    """The URL may not be called: why, in words for the app."""


@dataclass(frozen=True)
class Target:
    """A checked webhook URL and the address to connect to for it."""

    url: SplitResult
    address: IPAddress

    @property
    def port(self) -> int:
        """The URL's port, or its scheme's."""
        return self.url.port or (443 if self.url.scheme == "https" else 80)

    @property
    def path(self) -> str:
        """Path and query, as the request line sends them."""
        return (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")


def url_problem(url: str, *, require_https: bool) -> str | None:
    """What is wrong with a webhook URL's form (not its address), or None."""
    if len(url) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for one out of range
    except ValueError:
        return "is not a URL"
    if port == 0:
        return "must not name port 0"
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed:
        return "must be an https:// URL" if require_https else "must be an http(s):// URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if parts.fragment:
        return "must not have a #fragment"
    return None


def address_problem(address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why a webhook may not go to `address`, or None (public, or explicitly allowed)."""
    if any(address in network for network in allowed if network.version == address.version):
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        return address_problem(mapped, allowed)
    if address.is_loopback:
        return f"resolves to {address}, a loopback address"
    if address.is_link_local:
        return f"resolves to {address}, a link-local address (such as cloud metadata)"
    if address.is_multicast or address.is_unspecified:
        return f"resolves to {address}, which no webhook can be sent to"
    if not address.is_global:  # RFC 1918, CGNAT, unique-local, reserved, documentation
        return f"resolves to {address}, a private or reserved address"
    return None


def resolve(url: str, allowed: Sequence[IPNetwork], *, require_https: bool) -> Target:
    """Check `url` and resolve its host; UnsafeAddress unless every address is allowed.

    Every address the name resolves to must pass (a name with one public and one private
    address could be steered to the private one), and the first is the one to use.
    """
    if problem := url_problem(url, require_https=require_https):
        raise UnsafeAddress(problem)
    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeAddress(f"host {host!r} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    for address in addresses:
        if problem := address_problem(address, allowed):
            raise UnsafeAddress(f"host {host!r} {problem}")
    return Target(parts, addresses[0])
