"""Where webhooks may go: the service must not be turned into a way into its own network (SSRF).

A ``callback_url`` is ``http`` or ``https``, with a host and no credentials. Its destination is
checked twice: when the job is created (a literal address, in any of the forms the resolver
accepts — ``2130706433``, ``0x7f.1`` —, or a name that resolves now: a refused destination is a
422), and again when the webhook is sent, against the addresses the name resolves to then (a
name may be re-pointed after creation: DNS rebinding). The request then goes to the address that
was checked, not to whatever a second lookup would answer.

Refused always: link-local (169.254.0.0/16, fe80::/10: cloud metadata lives there), multicast,
unspecified (0.0.0.0, ::), broadcast, and the service's own address and port. Refused unless the
service listens on loopback only (a local sandbox, where the receivers are local too): loopback,
private and every other non-global range. ``allow`` opens ranges (``--allow-callback CIDR``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from vtrans.protocol import HTTP_URL_RE

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolve(host, port)``: the addresses a name stands for.
Resolver = Callable[[str, int], Awaitable[list[str]]]
#: How long creation waits for a name to resolve; past it the name is checked when sending.
CREATION_LOOKUP = 2.0


class Refused(ValueError):
    """A destination webhooks may not go to; the message says which and why."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def loopback_host(host: str) -> bool:
    """Whether a listening address reaches loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def literal(host: str) -> IP | None:
    """The address a host literally is, in the forms ``inet_aton`` accepts too (``127.1``)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


class Guard:
    """The destinations webhooks may go to (see the module's documentation)."""

    def __init__(
        self,
        *,
        loopback: bool,
        allow: Sequence[str] = (),
        own: tuple[str, int] | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.loopback, self.own, self.resolver = loopback, own, resolver
        self.allow: list[Network] = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]

    def refusal(self, address: IP, port: int) -> str | None:
        """Why ``address:port`` is refused, or ``None``."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if (
            self.own is not None
            and port == self.own[1]
            and (address.is_loopback or str(address) == self.own[0])
        ):
            return "the service itself"
        if any(address in network for network in self.allow):
            return None
        for kind, yes in (
            ("link-local", address.is_link_local),
            ("multicast", address.is_multicast),
            ("unspecified", address.is_unspecified),
            ("broadcast", address == ipaddress.IPv4Address("255.255.255.255")),
        ):
            if yes:
                return kind
        if address.is_loopback:
            return None if self.loopback else "loopback"
        if not address.is_global and not self.loopback:
            return "private" if address.is_private else "not a public address"
        return None

    def _check(self, address: str, port: int, host: str) -> IP:
        ip = ipaddress.ip_address(address)
        reason = self.refusal(ip, port)
        if reason is not None:
            shown = host if host == address else f"{host} ({address})"
            raise Refused(f"webhooks may not go to {shown}: {reason}")
        return ip

    async def at_creation(self, url: str) -> None:
        """Raise :class:`Refused` if ``url``'s destination is refused now (a name that does not
        resolve yet is left for the check when sending)."""
        host, port = _host_port(url)
        address = literal(host)
        if address is not None:
            self._check(str(address), port, host)
            return
        try:
            addresses = await asyncio.wait_for(self.resolver(host, port), CREATION_LOOKUP)
        except (OSError, asyncio.TimeoutError, UnicodeError):
            return
        for each in addresses:
            self._check(each, port, host)

    async def pinned(self, url: str) -> tuple[str, dict[str, str], dict[str, str]]:
        """Where to send now: ``url`` with its host replaced by an address it resolves to and that
        is allowed, the ``Host`` header it had, and the TLS name to verify. Raises
        :class:`Refused` (any resolved address refused) or ``OSError`` (no address)."""
        parts = urlsplit(url)
        host, port = _host_port(url)
        address = literal(host)
        resolved = [str(address)] if address is not None else await self.resolver(host, port)
        if not resolved:
            raise OSError(f"{host} has no address")
        checked = [self._check(each, port, host) for each in resolved]
        target = f"[{checked[0]}]" if checked[0].version == 6 else str(checked[0])
        netloc = target if parts.port is None else f"{target}:{parts.port}"
        headers = {"Host": parts.netloc}
        extensions = {"sni_hostname": host} if parts.scheme == "https" and address is None else {}
        return urlunsplit(parts._replace(netloc=netloc)), headers, extensions


def syntax_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a callback (or a source), before any lookup: ``None`` if
    nothing. A URL is good when it matches :data:`~vtrans.protocol.HTTP_URL_PATTERN`; the checks
    before that one only say more precisely what is wrong."""
    if not url.isprintable() or any(c.isspace() for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (user:password@): put a token in the path or query instead"
    if not HTTP_URL_RE.fullmatch(url):
        return (
            "must be an absolute http(s) URL of visible ASCII: a host name or address, then an optional port"
        )
    return None


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
