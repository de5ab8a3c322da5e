"""The SSRF guard: which resolved addresses the link checker may connect to.

A saved url is chosen by a user, so the checker must never become a way to reach the
service's own network: loopback, private ranges, link-local, cloud metadata endpoints, and
in general anything that is not globally routable are refused, also when written in an IPv6
form that embeds such an IPv4 address. An operator can admit networks explicitly (to check
intranet links); cloud metadata endpoints stay refused whatever the allow-list says.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Instance metadata services hand out cloud credentials: never reachable, allow-list or not.
METADATA_ADDRESSES = frozenset(
    ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)

_SHARED = ip_network("100.64.0.0/10")  # carrier-grade NAT: neither private nor global
_NAT64 = ip_network("64:ff9b::/96")  # globally routable when the embedded IPv4 address is
_IPV4_COMPATIBLE = ip_network("::/96")  # deprecated ::a.b.c.d form
_UNROUTABLE_FORMS = {
    "Teredo": "a Teredo tunnel address",
    "IPv4-compatible": "a deprecated IPv4-compatible address",
}


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Parse the comma-separated allow-list setting ("127.0.0.2/32, 10.0.0.0/8")."""
    return tuple(_network(item.strip()) for item in text.split(",") if item.strip())


def _network(value: str | IPNetwork) -> IPNetwork:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    try:
        return ip_network(value)
    except ValueError as exc:
        raise ValueError(
            f"invalid allowed network: {exc}; expected CIDR such as 10.0.0.0/8 or fd00::/8"
        ) from None


def _embedded_ipv4(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address embedded in an IPv6 one, with the name of the embedding."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64:
        return "NAT64", IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return "IPv4-compatible", IPv4Address(int(ip))
    return None


def _is_metadata(ip: IPAddress) -> bool:
    embedded = _embedded_ipv4(ip) if isinstance(ip, IPv6Address) else None
    return ip in METADATA_ADDRESSES or (embedded is not None and embedded[1] in METADATA_ADDRESSES)


def _not_global(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address, or None when it is one."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        form, ipv4 = embedded
        why = _not_global(ipv4)
        if why is not None:
            return f"the {form} form of {ipv4}, {why}"
        # Mapped, NAT64 and 6to4 reach the public address they embed; the others reach nothing.
        return _UNROUTABLE_FORMS.get(form)
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


class AddressGuard:
    """Admits globally routable addresses, and those inside the operator's allowed networks."""

    def __init__(self, allowed_networks: Iterable[str | IPNetwork] = ()) -> None:
        self._allowed = tuple(_network(network) for network in allowed_networks)

    def refusal_reason(self, address: str | IPAddress) -> str | None:
        """Why the checker must not connect to ``address``, or None when it may.

        Raises ValueError when ``address`` is not an IP address.
        """
        ip = ip_address(address)
        why = _not_global(ip)
        if why is None or (not _is_metadata(ip) and self._admits(ip)):
            return None
        return f"{ip} is {why}"

    def is_allowed(self, address: str | IPAddress) -> bool:
        return self.refusal_reason(address) is None

    def _admits(self, ip: IPAddress) -> bool:
        # ::ffff:a.b.c.d is the very same host as a.b.c.d, so the same networks admit it.
        same = ip.ipv4_mapped if isinstance(ip, IPv6Address) else None
        return any(ip in net or (same is not None and same in net) for net in self._allowed)
