"""The dotted-quad fast path of parse_ip / parse_cidr answers as :mod:`ipaddress` does: the same
address or network for what it reads, the same refusal (ValueError) for what it does not."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgdp.topology.addr import Net, parse_cidr, parse_ip


def by_ipaddress_ip(text):
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return "error"
    return ip.version, int(ip)


def by_ipaddress_net(text):
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return "error"
    return Net(net.version, int(net.network_address), int(net.broadcast_address))


def ours(fn, text):
    try:
        return fn(text)
    except ValueError:
        return "error"


EDGES = ["10.0.0.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", " 10.0.0.1 ",
         "1.2.3.4/0", "1.2.3.4/32", "1.2.3.4/33", "1.2.3.4/08", "1.2.3.4/8", "10.0.0.5/24", "1.2.3.4/", "١.2.3.4",
         "1.2.3.-4", "1.2.3.+4", "::1", "::/0", "10.0.0.0/255.0.0.0", "1.2.3.4 /8", "1..2.3", "1.2.3.4/3 2"]


@pytest.mark.parametrize("text", EDGES)
def test_edges(text):
    assert ours(parse_ip, text) == by_ipaddress_ip(text)
    assert ours(parse_cidr, text) == by_ipaddress_net(text)


octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "010", "", "a", "1 "]))


@given(st.lists(octet, min_size=3, max_size=5), st.one_of(st.just(""), st.integers(0, 40).map(lambda n: f"/{n}"),
                                                         st.sampled_from(["/", "/08", "/x"])))
def test_random_quads(octets, suffix):
    text = ".".join(octets) + suffix
    assert ours(parse_ip, text) == by_ipaddress_ip(text)
    assert ours(parse_cidr, text) == by_ipaddress_net(text)
