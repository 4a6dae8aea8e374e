"""IP addresses and networks as integers.

At the core an address is ``(version, value)`` with ``version`` 4 or 6 and ``value`` a Python int, as
``ipaddress`` keeps ``_ip``; a network is the inclusive interval ``[lo, hi]`` of one version. The
``ipaddress`` objects appear only at the edges (parsing and printing).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Addr = tuple[int, int]  # (version, value)


@dataclass(frozen=True, slots=True)
class Net:
    """An inclusive address interval of one IP version (a CIDR, a single IP or an ``a-b`` range)."""

    version: int
    lo: int
    hi: int

    def contains(self, version: int, value: int) -> bool:
        return version == self.version and self.lo <= value <= self.hi

    def covers(self, other: "Net") -> bool:
        return other.version == self.version and self.lo <= other.lo and other.hi <= self.hi

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    def __str__(self) -> str:
        return format_net(self)


ANY4 = Net(4, 0, (1 << 32) - 1)
ANY6 = Net(6, 0, (1 << 128) - 1)


def _dotted_quad(text: str) -> int | None:
    """A plain dotted-quad IPv4 address (four decimal octets 0..255 without leading zeros) as an
    integer, else None: the common case, read without :mod:`ipaddress` (which decides the rest)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()) or (part[0] == "0" and len(part) > 1):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


def parse_ip(text: str) -> Addr:
    """Parse one IPv4 or IPv6 address; raises ValueError with the text quoted."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an IP address")
    quad = _dotted_quad(text.strip())
    if quad is not None:
        return 4, quad
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    return ip.version, int(ip)


def parse_cidr(text: str) -> Net:
    """Parse ``a.b.c.d/n`` or a bare address (a /32 or /128).

    Host bits are cleared, as Neutron does for ``remote_ip_prefix`` ("10.0.0.5/24" means 10.0.0.0/24).
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an IP address or CIDR")
    addr, slash, length = text.strip().partition("/")
    quad = _dotted_quad(addr)
    if quad is not None and (not slash or (0 < len(length) <= 2 and length.isascii() and length.isdigit()
                                           and (length[0] != "0" or length == "0") and int(length) <= 32)):
        host = (1 << (32 - int(length))) - 1 if slash else 0
        return Net(4, quad & ~host, quad | host)
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR") from None
    return Net(net.version, int(net.network_address), int(net.broadcast_address))


def parse_ip_set_entry(text: str) -> Net:
    """An address-group entry: an IP, a CIDR, or a range ``first-last``."""
    if isinstance(text, str) and "-" in text:
        first, _, last = text.partition("-")
        try:
            a, b = parse_ip(first), parse_ip(last)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address, CIDR or range first-last") from None
        if a[0] != b[0]:
            raise ValueError(f"{text!r} mixes IPv4 and IPv6")
        if a[1] > b[1]:
            raise ValueError(f"{text!r} is a range whose first address is after its last")
        return Net(a[0], a[1], b[1])
    return parse_cidr(text)


def format_ip(version: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def format_net(net: Net) -> str:
    bits = 32 if net.version == 4 else 128
    size = net.hi - net.lo + 1
    if size & (size - 1) == 0 and net.lo % size == 0:
        prefix = bits - (size.bit_length() - 1)
        return f"{format_ip(net.version, net.lo)}/{prefix}"
    return f"{format_ip(net.version, net.lo)}-{format_ip(net.version, net.hi)}"


def parse_mac(text: str) -> int:
    """``aa:bb:cc:dd:ee:ff`` (or with ``-``) to a 48-bit int."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a MAC address")
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"{text!r} is not a MAC address")
    try:
        return int("".join(parts), 16)
    except ValueError:
        raise ValueError(f"{text!r} is not a MAC address") from None


def parse_endpoint(text: str) -> tuple[Addr, int | None]:
    """``IP``, ``IPv4:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: missing ']'")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']'")
        port = _parse_port(text, rest[1:]) if rest else None
        return parse_ip(host), port
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        return parse_ip(host), _parse_port(text, port_text)
    return parse_ip(text), None


def is_number(text: str) -> bool:
    """Is ``text`` a number as a user writes one: ASCII digits only (not Arabic-Indic or other Unicode
    digits, which str.isdigit accepts), and short enough to convert (no 5,000-digit values)?"""
    return text.isascii() and text.isdigit() and len(text) <= 20


def _parse_port(whole: str, text: str) -> int:
    if not is_number(text) or not 0 <= int(text) <= 65535:
        raise ValueError(f"{whole!r}: {text!r} is not a port (0-65535)")
    return int(text)
