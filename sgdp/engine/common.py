"""What both engines take from the semantics as it is: the cloud's own service addresses, the
address a load balancer forwards from (S14) and the name tables of a topology's verdicts; and the
:class:`Trace` of an explanation, which the API names without running the reference engine. The
reference engine (:mod:`sgdp.engine.reference`, the semantics written plainly) uses them as the fast
engine does; they live here so that the fast engine starts without importing the reference one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sgdp.capture import Names
from sgdp.topology import LoadBalancer, Net, Topology

CLOUD_SERVICES = Net(4, 0x647D0000, 0x647DFFFF)  # 100.125.0.0/16: cloud services (DNS, ELB health checks, shared LB)
SHARED_LB_SOURCE = 0x647D0001  # 100.125.0.1: the address a shared LB forwards from (S14)
METADATA = 0xA9FEA9FE  # 169.254.169.254
BROADCAST = 0xFFFFFFFF  # 255.255.255.255: limited broadcast (DHCP)
LINK_MULTICAST = Net(4, 0xE0000000, 0xE00000FF)  # 224.0.0.0/24
SERVICE_V4 = (CLOUD_SERVICES, Net(4, METADATA, METADATA), Net(4, BROADCAST, BROADCAST), LINK_MULTICAST)
SERVICE_V6 = (Net(6, 0xFF02 << 112, (0xFF02 << 112) | ((1 << 112) - 1)),)  # ff02::/16


def lb_source(topo: Topology, lb: LoadBalancer) -> int:
    """The IPv4 address a load balancer forwards from when the client IP is not passed on (S14)."""
    if lb.type == "shared":
        return SHARED_LB_SOURCE
    subnet = topo.subnets[lb.subnet]
    if subnet.contains(*lb.vip):
        return lb.vip[1]
    return subnet.cidr.lo + 2


def names_for(topo: Topology) -> Names:
    """The name tables of a topology: instances; groups then ACLs; rule ids then ACL rule ids."""
    rules = [r.id for sg in topo.security_groups.values() for r in sg.rules]
    for acl in topo.network_acls.values():
        rules.extend(r.id for r in acl.inbound + acl.outbound)
    return Names(list(topo.instances), list(topo.security_groups) + list(topo.network_acls), rules)


@dataclass(slots=True)
class Trace:
    """What `explain` shows: every step of the decision."""

    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **step: Any) -> None:
        self.steps.append(step)
