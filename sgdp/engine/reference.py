"""The reference dataplane: SPEC §3 written plainly, one packet at a time.

This engine defines the semantics; the compiled engine must agree with it on every column. It favours
being obviously right over being fast: rules are tried one by one, connection tracking is a dict.

Per packet (S5–S7, S11, S13–S15):
  status → fragment memory → endpoints (sender, receiver) → local / load balancer / path →
  sender egress (security groups, then outbound ACL) → receiver ingress (inbound ACL, then groups).
Each stage that allows a packet updates its NIC's connection tracking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sgdp.topology import Net, format_ip
from sgdp.topology import GRE, ICMP, ICMPV6, PORT_PROTOS, TCP, UDP, AclRule, LoadBalancer, Nic, Topology
from sgdp.capture import ACK, FIN, MALFORMED, NON_IP, RST, SYN, Names, Packet, PacketBatch, Verdict, VerdictBatch
from sgdp.topology import Policy, format_net, rule_matches_packet, rule_mismatch
from sgdp.engine.common import (BROADCAST, CLOUD_SERVICES, LINK_MULTICAST, METADATA, SERVICE_V4, SERVICE_V6,
                               Trace, lb_source, names_for)

# -------------------------------------------------------------------------- fixed addresses and numbers


# connection tracking (S11)
TCP_NEW, TCP_EST, TCP_CLOSING = 0, 1, 2
UNREPLIED, REPLIED = 0, 1
TIMEOUT_TCP = {TCP_NEW: 30.0, TCP_EST: 600.0, TCP_CLOSING: 30.0}
TIMEOUT_OTHER = {UNREPLIED: 30.0, REPLIED: 180.0}
TIMEOUT_ICMP = 30.0
FRAGMENT_TIMEOUT = 30.0  # a first fragment's verdict is remembered this long (Linux ipfrag_time)

ICMP_ECHO = {ICMP: (8, 0), ICMPV6: (128, 129)}
ICMP_ERRORS = {ICMP: (3, 4, 5, 11, 12), ICMPV6: (1, 2, 3, 4)}


def lb_hash(l3: int, src: int, dst: int, proto: int, sport: int, dport: int) -> int:
    """Deterministic 64-bit FNV-1a over the 5-tuple, to choose a backend (S14).

    Addresses are 16 bytes big-endian (IPv4 zero-extended), ports 2 bytes big-endian, protocol 1 byte.
    """
    h = 0xCBF29CE484222325
    data = src.to_bytes(16, "big") + dst.to_bytes(16, "big") + bytes((proto,)) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ------------------------------------------------------------------------------------------ endpoints


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a packet.

    kind: ``nic`` (with ``how``: fixed, eip, vip, forwarded), ``lb``, ``service``, ``vpc`` (an unlisted
    host of VPC ``name``), ``private`` (a private network) or ``external``.
    """

    kind: str
    nic: Nic | None = None
    how: str = ""
    name: str = ""
    lb: LoadBalancer | None = None


@dataclass(slots=True)
class Conn:
    """A connection-tracking entry at one NIC."""

    state: int
    last: float
    orig: tuple  # the originator side (address, port) of the normalised key
    inbound: bool  # opened by inbound traffic (ingress stage): dropped on a rule change (S12)
    lb: bool = False  # opened by a load balancer's client-IP-transfer forwarding (S14)
    port: int = 0  # a load-balancer session entry: the source port of its backend leg (S14)


@dataclass(slots=True)
class Filter:
    """The outcome of one filter (security groups or ACL) at one stage."""

    allowed: bool
    reason: str
    group: str = ""
    rule: str = ""


@dataclass(slots=True)
class View:
    """A packet as one NIC stage sees it.

    ``peer`` is the remote address the rules compare (source for ingress, destination for egress),
    ``genuine`` whether that peer is a NIC's own fixed IP sent by it (remote-group membership, S8).
    ``acl_src``/``acl_dst`` are the private-address form seen by network ACLs (S13).
    """

    pkt: Packet
    src: int
    dst: int
    sport: int | None
    dport: int | None
    peer: int
    genuine: bool
    acl_src: int
    acl_dst: int
    acl_exempt: bool


class ReferenceEngine:
    """One stateful dataplane over a topology; feed it packets in capture order."""

    name = "reference"

    def __init__(self, topo: Topology, policy: Policy | None = None, names: Names | None = None):
        self.topo = topo
        self.policy = policy or Policy(topo)
        self.names = names or names_for(topo)  # a superset is fine (a timeline's names of every version)
        self.conntrack: dict[int, dict[tuple, Conn]] = {}
        self.acl_conntrack: dict[int, dict[tuple, Conn]] = {}
        # S14 sessions of listeners that do not pass the client's address, at the backend NIC, keyed by
        # the client's 5-tuple as sent to the load balancer: the source port of the backend leg
        self.lb_sessions: dict[int, dict[tuple, Conn]] = {}
        self.fragments: dict[tuple, tuple[float, Verdict]] = {}
        self.hits: dict[tuple[str, str, str], int] = {}
        self.now = float("-inf")  # the dataplane clock: the latest capture timestamp seen (never goes back)
        self._index_addresses()

    # -- public API ---------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> VerdictBatch:
        """Verdict columns for a batch, continuing the state of earlier batches."""
        out = VerdictBatch(len(batch))
        for i, pkt in enumerate(batch):
            self.names.encode(out, i, self.step(pkt))
        return out

    def rule_hits(self) -> list[dict[str, Any]]:
        return [
            {"security_group": g, "rule": r, "direction": d, "hits": n}
            for (g, r, d), n in sorted(self.hits.items())
        ]

    def step(self, pkt: Packet, trace: Trace | None = None) -> Verdict:
        """The verdict for one packet (S5–S15), updating state."""
        self.now = max(self.now, pkt.ts)
        if pkt.status == MALFORMED:  # a malformed frame may not even have a known IP version
            return Verdict("malformed", "malformed")
        if pkt.status == NON_IP or pkt.l3 not in (4, 6):
            return Verdict("unmodelled", "unmodelled")
        frag_key = (pkt.l3, pkt.src, pkt.dst, pkt.proto, pkt.frag_id)
        if pkt.frag_offset > 0:
            seen = self.fragments.get(frag_key)
            if seen is not None and self.now - seen[0] <= FRAGMENT_TIMEOUT:
                if trace:
                    trace.add(step="fragment", detail="non-first fragment: the verdict of its first fragment")
                return seen[1]
            if trace:
                trace.add(step="fragment", detail="non-first fragment without its first: evaluated without ports")
        verdict = self._evaluate(pkt, trace)
        if pkt.frag_offset == 0 and pkt.more_fragments:
            self.fragments[frag_key] = (self.now, verdict)
        return verdict

    # -- endpoints (S5) -------------------------------------------------------------------------

    def _index_addresses(self) -> None:
        topo = self.topo
        self.by_fixed: dict[tuple[int, int], list[Nic]] = {}
        self.by_eip: dict[int, Nic] = {}
        self.by_vip: dict[tuple[int, int], list[Nic]] = {}
        self.by_lb: dict[tuple[int, int], LoadBalancer] = {}
        self.by_mac: dict[int, Nic] = {}
        # NIC index -> the listeners forwarding to it: (load balancer, listener, backend), in file order
        self.backend_of: dict[int, list[tuple[LoadBalancer, Any, Any]]] = {}
        for nic in topo.nics:
            for addr in nic.fixed_ips:
                self.by_fixed.setdefault(addr, []).append(nic)
            if nic.eip is not None:
                self.by_eip[nic.eip] = nic
            if nic.mac is not None:
                self.by_mac[nic.mac] = nic
        for vip in topo.virtual_ips:
            self.by_vip.setdefault(vip.ip, []).append(topo.nics[vip.holder_nic])
        for lb in topo.load_balancers.values():
            self.by_lb[lb.vip] = lb
            if lb.eip is not None:
                self.by_lb[(4, lb.eip)] = lb
            for listener in lb.listeners:
                for backend in listener.backends:
                    self.backend_of.setdefault(backend.nic, []).append((lb, listener, backend))

    def _candidates(self, l3: int, addr: int) -> list[Endpoint]:
        """Every endpoint an address may denote, most specific first."""
        out = [Endpoint("nic", n, "fixed") for n in self.by_fixed.get((l3, addr), ())]
        if l3 == 4 and addr in self.by_eip:
            out.append(Endpoint("nic", self.by_eip[addr], "eip"))
        out.extend(Endpoint("nic", n, "vip") for n in self.by_vip.get((l3, addr), ()))
        lb = self.by_lb.get((l3, addr))
        if lb is not None:
            out.append(Endpoint("lb", lb=lb))
        if out:
            return out
        for net in SERVICE_V4 if l3 == 4 else SERVICE_V6:
            if net.contains(l3, addr):
                return [Endpoint("service")]
        for vpc in self.topo.vpcs.values():
            if l3 == 4 and vpc.cidr.contains(4, addr):
                out.append(Endpoint("vpc", name=vpc.name))
            elif l3 == 6 and any(self.topo.subnets[s].contains(6, addr) for s in vpc.subnets):
                out.append(Endpoint("vpc", name=vpc.name))
        for pn in self.topo.private_networks:
            if pn.cidr.contains(l3, addr):
                out.append(Endpoint("private", name=pn.name))
        return out or [Endpoint("external")]

    def _sender_candidates(self, pkt: Packet) -> list[Endpoint]:
        if pkt.src_mac >= 0 and pkt.src_mac in self.by_mac:
            nic = self.by_mac[pkt.src_mac]
            for ep in self._candidates(pkt.l3, pkt.src):
                if ep.nic is nic:
                    return [ep]
            return [Endpoint("nic", nic, "forwarded")]
        return self._candidates(pkt.l3, pkt.src)

    # -- paths (S6) -----------------------------------------------------------------------------

    def _path(self, s: Endpoint, r: Endpoint, l3: int) -> bool:
        if s.kind == "lb" or r.kind == "lb":
            return True
        if s.kind != "nic":
            s, r = r, s  # make s the NIC side when only one side is a NIC
        if s.kind != "nic":
            return False
        nic = s.nic
        assert nic is not None
        if r.kind == "nic":
            if s.how == "eip" or r.how == "eip":  # through the Internet: both ends need an EIP
                return l3 == 4 and nic.eip is not None and r.nic.eip is not None  # type: ignore[union-attr]
            return self.topo.peered(nic.vpc, r.nic.vpc)  # type: ignore[union-attr]
        if s.how == "eip" and r.kind != "external":
            return False
        if r.kind == "service":
            return True
        if r.kind == "vpc":
            return self.topo.peered(nic.vpc, r.name)
        if r.kind == "private":
            pn = next(p for p in self.topo.private_networks if p.name == r.name)
            return nic.vpc in pn.vpcs
        # external
        return nic.eip is not None if l3 == 4 else nic.ipv6_internet

    def _choose(self, pkt: Packet) -> tuple[Endpoint, Endpoint]:
        senders = self._sender_candidates(pkt)
        receivers = self._candidates(pkt.l3, pkt.dst)
        for s in senders:
            for r in receivers:
                if self._path(s, r, pkt.l3):
                    return s, r
        return senders[0], receivers[0]

    # -- the decision ---------------------------------------------------------------------------

    def _evaluate(self, pkt: Packet, trace: Trace | None) -> Verdict:
        s, r = self._choose(pkt)
        if trace:
            trace.add(step="endpoints", sender=_describe(s, pkt.l3, pkt.src), receiver=_describe(r, pkt.l3, pkt.dst))
        snic = s.nic if s.kind == "nic" else None
        rnic = r.nic if r.kind == "nic" else None
        if s.kind == "lb" and r.kind != "lb":
            backend = self._lb_form_reply(pkt, s.lb)  # type: ignore[arg-type]
            if backend is not None:
                if trace:
                    trace.add(step="load_balancer", lb=s.lb.name,  # type: ignore[union-attr]
                              detail=f"reply of a load-balancer session, as the load balancer sends it: "
                                     f"established at the backend {backend.label}'s egress")
                if rnic is None:
                    return Verdict("allow", "established", backend.instance, "egress")
        if snic is None and rnic is None and r.kind != "lb":
            if trace:
                trace.add(step="unmodelled", detail="no modelled NIC or load balancer on either side")
            return Verdict("unmodelled", "unmodelled")
        if snic is not None and s.how == "forwarded" and snic.source_dest_check:
            if trace:
                trace.add(step="no_route", detail=f"{snic.label} sent from {format_ip(pkt.l3, pkt.src)}, not one of its addresses, with source/destination check on")
            return Verdict("deny", "no_route", snic.instance)
        if snic is not None and snic is rnic:
            if trace:
                trace.add(step="local", detail="both addresses belong to the same NIC")
            return Verdict("allow", "local", snic.instance)
        if r.kind == "lb":
            return self._via_lb(pkt, s, r.lb, trace)  # type: ignore[arg-type]
        if snic is not None and self._lb_reply(snic, pkt):
            # A backend's reply to a client that reached it with client-IP transfer goes back through
            # the load balancer: load-balancer traffic always has its path (S6, S14) and no network
            # ACL filters it; it belongs to the client's session, also at a client NIC (its entry
            # toward the listener).
            if trace:
                trace.add(step="path", exists=True, detail="reply of a load-balancer session with client-IP transfer "
                                                           "(goes back through the load balancer)")
            view = View(pkt, pkt.src, pkt.dst, *_ports(pkt), peer=pkt.dst, genuine=False,
                        acl_src=pkt.src, acl_dst=pkt.dst, acl_exempt=True)
            out = self._stage(snic, "egress", view, trace)
            if rnic is None:
                return out
            if self._client_entry(rnic, snic, pkt):
                if trace:
                    trace.add(step="conntrack", nic=rnic.label, direction="ingress", result="established",
                              detail="the client's entry toward the listener")
                return Verdict("allow", "established", rnic.instance, "ingress")
            if not self._path(s, r, pkt.l3):
                return out
            if trace:
                trace.add(step="load_balancer", detail="no entry of this client toward a listener: its ingress decides")
            return self._stage(rnic, "ingress", self._ingress_view(pkt, s, r, self._acl_exempt(pkt, s, r)), trace)
        if rnic is not None and r.how == "fixed":
            forwarded = self._forwarded_leg(pkt, s, rnic)
            if forwarded is not None:
                if trace:
                    trace.add(step="load_balancer", lb=forwarded, instance=rnic.instance,
                              detail=f"read as reached through load balancer {forwarded} (a capture on the backend "
                                     f"shows the forwarded leg): client-IP transfer, security groups and ACLs do "
                                     f"not apply")
                self._touch(rnic, pkt, (pkt.src, pkt.sport, pkt.dst, pkt.dport), inbound=True)
                return Verdict("allow", "lb_bypass", rnic.instance, "ingress")
        if not self._path(s, r, pkt.l3):
            if trace:
                trace.add(step="path", exists=False,
                          detail=f"no path between sender and receiver (S6): {self._no_path_hint(s, r, pkt.l3)}")
            inst = snic.instance if snic else rnic.instance  # type: ignore[union-attr]
            return Verdict("deny", "no_route", inst)
        if trace:
            trace.add(step="path", exists=True)

        internet = s.how == "eip" or r.how == "eip"
        exempt = self._acl_exempt(pkt, s, r)
        last: Verdict | None = None
        if snic is not None:
            peer = pkt.dst
            if internet and rnic is not None:
                peer = rnic.eip  # type: ignore[assignment]
            view = View(
                pkt, pkt.src, pkt.dst, *_ports(pkt), peer=peer,
                genuine=rnic is not None and r.how == "fixed" and not internet,
                acl_src=snic.ip if s.how == "eip" else pkt.src, acl_dst=peer, acl_exempt=exempt,
            )
            last = self._stage(snic, "egress", view, trace)
            if last.verdict == "deny":
                return last
        if rnic is not None:
            last = self._stage(rnic, "ingress", self._ingress_view(pkt, s, r, exempt), trace)
        assert last is not None
        return last

    def _ingress_view(self, pkt: Packet, s: Endpoint, r: Endpoint, exempt: bool) -> View:
        """The receiving NIC's view of a packet on an ordinary path (S8, S13)."""
        snic = s.nic if s.kind == "nic" else None
        rnic = r.nic
        internet = s.how == "eip" or r.how == "eip"
        peer = pkt.src
        if internet and snic is not None:
            peer = snic.eip  # type: ignore[assignment]
        return View(
            pkt, pkt.src, pkt.dst, *_ports(pkt), peer=peer,
            genuine=snic is not None and s.how == "fixed" and not internet,
            acl_src=peer, acl_dst=rnic.ip if r.how == "eip" else pkt.dst, acl_exempt=exempt,  # type: ignore[union-attr]
        )

    def _via_lb(self, pkt: Packet, s: Endpoint, lb: LoadBalancer, trace: Trace | None) -> Verdict:
        """S14: a packet to a load-balancer address."""
        listener = None
        if pkt.proto in PORT_PROTOS and pkt.frag_offset == 0:
            listener = next((l for l in lb.listeners if l.ip_protocol == pkt.proto and l.port == pkt.dport), None)
        snic = s.nic if s.kind == "nic" else None
        if listener is None:
            if snic is not None and self._live_entry(snic, pkt):
                # a backend's reply on the leg from the load balancer (to the LB's own address)
                if trace:
                    trace.add(step="load_balancer", lb=lb.name, detail="reply on a backend leg of the load balancer")
                view = View(pkt, pkt.src, pkt.dst, *_ports(pkt), peer=pkt.dst, genuine=False,
                            acl_src=pkt.src, acl_dst=pkt.dst, acl_exempt=True)
                return self._stage(snic, "egress", view, trace)
            if trace:
                trace.add(step="load_balancer", lb=lb.name, detail=f"no listener for {_proto(pkt.proto)} port {pkt.dport}")
            return Verdict("deny", "no_route")
        if snic is not None:
            view = View(pkt, pkt.src, pkt.dst, *_ports(pkt), peer=pkt.dst, genuine=False,
                        acl_src=pkt.src, acl_dst=pkt.dst, acl_exempt=True)
            out = self._stage(snic, "egress", view, trace)
            if out.verdict == "deny":
                return out
        backends = listener.backends
        backend = backends[lb_hash(pkt.l3, pkt.src, pkt.dst, pkt.proto, pkt.sport, pkt.dport) % len(backends)]
        bnic = self.topo.nics[backend.nic]
        baddr = bnic.ip  # load balancers are IPv4 (model.py)
        bypass = lb.bypasses(listener)
        if trace:
            trace.add(step="load_balancer", lb=lb.name, listener=f"{listener.protocol}/{listener.port}",
                      backend=f"{backend.instance}:{backend.port}", client_ip_transfer=bypass)
        if bypass:
            # The forwarded packet keeps the client's address; no ACL or security-group rule applies.
            # An entry at the backend lets its replies to the client through.
            fwd = (pkt.src, pkt.sport, baddr, backend.port)
            self._touch(bnic, pkt, fwd, inbound=True)
            if trace:
                trace.add(step="lb_bypass", instance=bnic.instance, detail="client IP transfer: security groups and ACLs do not apply")
            return Verdict("allow", "lb_bypass", bnic.instance, "ingress")
        source = lb_source(self.topo, lb)
        skey, _ = self._key(bnic, pkt.l3, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport, -1, 0)
        sessions = self.lb_sessions.setdefault(bnic.index, {})
        session = sessions.get(skey)
        if session is not None and _expired(session, pkt.proto, self.now):
            del sessions[skey]
            session = None
        port = session.port if session is not None else self._free_port(bnic, pkt.proto, source, pkt.sport, backend.port)
        if trace:
            trace.add(step="load_balancer", detail=f"backend leg from {format_ip(4, source)}:{port} "
                                                   f"({'the session' if session else 'a new session'}'s source port)")
        fwd_pkt = Packet(**{**_asdict(pkt), "src": source, "dst": baddr, "sport": port, "dport": backend.port})
        view = View(fwd_pkt, source, baddr, port, backend.port, peer=source, genuine=False,
                    acl_src=source, acl_dst=baddr, acl_exempt=True)
        out = self._stage(bnic, "ingress", view, trace)
        if out.verdict == "allow":
            if session is not None:
                _advance(session, pkt.proto, pkt, self.now, reply=False)
            else:
                _, orig = self._key(bnic, pkt.l3, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport, -1, 0)
                sessions[skey] = Conn(_initial_state(pkt), self.now, orig, False, lb=True, port=port)
        return out

    def _free_port(self, bnic: Nic, proto: int, source: int, port: int, bport: int) -> int:
        """The backend leg's source port for a new session (S14): the client's source port unless a
        live entry at the backend already uses it toward the same backend port (another session);
        then the next free port upwards (1024..65535, wrapping), as Linux SNAT does."""
        table = self.conntrack.get(bnic.index, {})
        for _ in range(65536):
            key, _ = self._key(bnic, 4, proto, source, port, bnic.ip, bport, -1, 0)
            conn = table.get(key)
            if conn is None or _expired(conn, proto, self.now):
                return port
            port = port + 1 if port < 65535 else 1024
        return port

    def _lb_form_reply(self, pkt: Packet, lb: LoadBalancer) -> Nic | None:
        """S14: a packet from a listener's address and port to a client, i.e. a backend's reply as
        the load balancer sends it: when it belongs to a live session, advance the backend leg's
        entry (established at the backend's egress) and return the backend's NIC."""
        if pkt.proto not in PORT_PROTOS or pkt.frag_offset > 0:
            return None
        listener = next((l for l in lb.listeners if l.ip_protocol == pkt.proto and l.port == pkt.sport), None)
        if listener is None:
            return None
        backends = listener.backends
        backend = backends[lb_hash(pkt.l3, pkt.dst, pkt.src, pkt.proto, pkt.dport, pkt.sport) % len(backends)]
        bnic = self.topo.nics[backend.nic]
        table = self.conntrack.get(bnic.index, {})
        session = None
        if lb.bypasses(listener):
            peer, peer_port = pkt.dst, pkt.dport
        else:
            skey, _ = self._key(bnic, pkt.l3, pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport, -1, 0)
            session = self.lb_sessions.get(bnic.index, {}).get(skey)
            if session is None or _expired(session, pkt.proto, self.now):
                return None
            peer, peer_port = lb_source(self.topo, lb), session.port
        key, orig = self._key(bnic, 4, pkt.proto, bnic.ip, backend.port, peer, peer_port, -1, 0)
        conn = table.get(key)
        if conn is None or _expired(conn, pkt.proto, self.now) or (session is None and not conn.lb):
            return None
        _advance(conn, pkt.proto, pkt, self.now, reply=orig != conn.orig)
        if session is not None:
            _advance(session, pkt.proto, pkt, self.now, reply=True)
        return bnic

    def _client_entry(self, cnic: Nic, bnic: Nic, pkt: Packet) -> bool:
        """S14: a backend's reply to a client NIC's address in a client-IP-transfer session: the
        client's live entry toward a listener that forwards this client 5-tuple to this backend and
        port (advanced), if there is one."""
        table = self.conntrack.get(cnic.index, {})
        for lb, listener, backend in self.backend_of.get(bnic.index, ()):
            if backend.port != pkt.sport or listener.ip_protocol != pkt.proto or not lb.bypasses(listener):
                continue
            for addr in (lb.vip[1], lb.eip):
                if addr is None or lb.vip[0] != pkt.l3:
                    continue
                chosen = listener.backends[lb_hash(pkt.l3, pkt.dst, addr, pkt.proto, pkt.dport, listener.port)
                                           % len(listener.backends)]
                if chosen is not backend:
                    continue
                key, orig = self._key(cnic, pkt.l3, pkt.proto, addr, listener.port, pkt.dst, pkt.dport, -1, 0)
                conn = table.get(key)
                if conn is not None and not _expired(conn, pkt.proto, self.now):
                    _advance(conn, pkt.proto, pkt, self.now, reply=orig != conn.orig)
                    return True
        return False

    def _forwarded_leg(self, pkt: Packet, s: Endpoint, bnic: Nic) -> str | None:
        """S14: a packet to a backend's IP on a port a client-IP-transfer listener forwards to it, as
        a capture on the backend shows it: from an external address always the listener's forwarded
        traffic; from a client in a VPC or a private network only within the client's session (the
        backend's load-balancer entry for it is live). Returns the load balancer's name, or None."""
        if pkt.proto not in PORT_PROTOS or pkt.frag_offset > 0 or pkt.l3 != 4 or pkt.dst != bnic.ip:
            return None
        if s.kind == "external":
            for lb, listener, backend in self.backend_of.get(bnic.index, ()):
                if backend.port == pkt.dport and listener.ip_protocol == pkt.proto and lb.bypasses(listener):
                    return lb.name
            return None
        if s.kind in ("vpc", "private") or (s.kind == "nic" and s.how in ("fixed", "vip")):
            if self._lb_reply(bnic, pkt):
                for lb, listener, backend in self.backend_of.get(bnic.index, ()):
                    if backend.port == pkt.dport and listener.ip_protocol == pkt.proto and lb.bypasses(listener):
                        return lb.name
        return None

    def _live_entry(self, nic: Nic, pkt: Packet) -> bool:
        if pkt.frag_offset > 0:
            return False
        sport, dport = _ports(pkt)
        key, _ = self._key(nic, pkt.l3, pkt.proto, pkt.src, sport or 0, pkt.dst, dport or 0, pkt.icmp_type, pkt.icmp_id)
        conn = self.conntrack.get(nic.index, {}).get(key) if key is not None else None
        return conn is not None and not _expired(conn, key[1], self.now)

    def _acl_exempt(self, pkt: Packet, s: Endpoint, r: Endpoint) -> bool:
        """S13: traffic a network ACL never filters."""
        if pkt.l3 == 4:
            if pkt.dst == BROADCAST or LINK_MULTICAST.contains(4, pkt.dst):
                return True
            if pkt.dst == METADATA and pkt.proto == TCP and pkt.dport == 80:
                return True
            if pkt.src == METADATA and pkt.proto == TCP and pkt.sport == 80:
                return True  # the metadata service's replies: reading metadata works whatever the ACL says
            if CLOUD_SERVICES.contains(4, pkt.src) or CLOUD_SERVICES.contains(4, pkt.dst):
                return True
        if s.kind == "lb" or r.kind == "lb":
            return True
        if s.how == "eip" or r.how == "eip":
            return False
        return self._subnet_of(s, pkt.l3, pkt.src) is not None and self._subnet_of(s, pkt.l3, pkt.src) == self._subnet_of(r, pkt.l3, pkt.dst)

    def _subnet_of(self, ep: Endpoint, l3: int, addr: int) -> str | None:
        if ep.kind == "nic":
            return ep.nic.subnet  # type: ignore[union-attr]
        if ep.kind == "vpc":
            for name in self.topo.vpcs[ep.name].subnets:
                if self.topo.subnets[name].contains(l3, addr):
                    return name
        return None

    # -- one NIC, one direction -----------------------------------------------------------------

    def _stage(self, nic: Nic, direction: str, view: View, trace: Trace | None) -> Verdict:
        acl_name = self.topo.subnets[nic.subnet].network_acl
        use_acl = acl_name is not None and not view.acl_exempt
        if direction == "ingress" and use_acl:
            acl = self._acl(nic, acl_name, "inbound", view, trace)  # type: ignore[arg-type]
            if not acl.allowed:
                return Verdict("deny", "acl", nic.instance, direction, acl_name, acl.rule)  # type: ignore[arg-type]
        sg = self._groups(nic, direction, view, trace)
        if not sg.allowed:
            return Verdict("deny", sg.reason, nic.instance, direction, sg.group, sg.rule)
        if direction == "egress" and use_acl:
            acl = self._acl(nic, acl_name, "outbound", view, trace)  # type: ignore[arg-type]
            if not acl.allowed:
                return Verdict("deny", "acl", nic.instance, direction, acl_name, acl.rule)  # type: ignore[arg-type]
        return Verdict("allow", sg.reason, nic.instance, direction, sg.group, sg.rule)

    def _why_not(self, rule, view: View) -> str:
        """For explain: the first field of a rule that the packet does not match, and why."""
        pkt = view.pkt
        why = rule_mismatch(rule, pkt.proto, view.dport if pkt.proto in PORT_PROTOS else None,
                            pkt.icmp_type if pkt.frag_offset == 0 else None, pkt.icmp_code if pkt.frag_offset == 0 else None)
        if why is not None:
            return why
        peer = format_ip(pkt.l3, view.peer)
        if rule.remote_kind == "prefix":
            return f"remote: {peer} is outside {format_net(rule.remote)}"
        if rule.remote_kind == "address_group":
            return f"remote: {peer} is not in address group {rule.remote}"
        if rule.remote_kind == "group":
            if not view.genuine and (pkt.l3, view.peer) in self.policy.group_members[rule.remote]:
                return (f"remote: {peer} is a member's address, but this packet is not that NIC's own traffic (traffic "
                        f"via an EIP, a virtual IP or forwarding is never a member of remote group {rule.remote}, S8)")
            return f"remote: {peer} is not a member of remote group {rule.remote} (its NICs' private fixed IPs)"
        return "no field fails"  # pragma: no cover - a rule whose every field matches matched

    def _no_path_hint(self, s: Endpoint, r: Endpoint, l3: int) -> str:
        """For explain: what would give a path between two endpoints that have none (S6)."""
        if s.kind != "nic":
            s, r = r, s
        if s.kind != "nic":
            return "neither side is a NIC"
        nic = s.nic
        assert nic is not None
        if r.kind == "nic":
            other = r.nic
            assert other is not None
            if s.how == "eip" or r.how == "eip":
                missing = [n.label for n in (nic, other) if n.eip is None]
                return ("through the Internet both NICs need an EIP (IPv4); " +
                        (f"{', '.join(missing)} has none" if missing else "IPv6 has no EIP"))
            return f"{nic.label} is in {nic.vpc}, {other.label} in {other.vpc}: a peering between them would give a path"
        if s.how == "eip":
            return f"an EIP reaches only the Internet, not {r.kind} {r.name or ''}".rstrip()
        if r.kind == "vpc":
            return f"{nic.label} is in {nic.vpc}: a peering with {r.name} would give a path"
        if r.kind == "private":
            return f"private network {r.name} is not joined to {nic.vpc}: add {nic.vpc} to its vpcs"
        if l3 == 4:
            return f"{nic.label} has no EIP: an EIP (or a load balancer with one) would give a path to the Internet"
        return f"{nic.label} has no IPv6 Internet access: ipv6_internet would give a path"

    def _groups(self, nic: Nic, direction: str, view: View, trace: Trace | None) -> Filter:
        pkt = view.pkt
        table = self.conntrack.setdefault(nic.index, {})
        tracked = self._tracked(table, nic, view, direction)
        if tracked is not None:
            if trace:
                trace.add(step="conntrack", nic=nic.label, direction=direction, result=tracked)
            return Filter(True, tracked)
        tried = []
        decided: Filter | None = None
        for rule, why in self.policy.walk(nic, direction, pkt.l3):
            if why is not None:
                tried.append({"security_group": rule.security_group, "rule": rule.id, "not_effective": why})
                continue
            match = rule_matches_packet(rule, pkt.proto, view.dport if pkt.proto in PORT_PROTOS else None,
                                        pkt.icmp_type if pkt.frag_offset == 0 else None,
                                        pkt.icmp_code if pkt.frag_offset == 0 else None) \
                and self.policy.remote_matches(rule, pkt.l3, view.peer, view.genuine)
            tried.append({"security_group": rule.security_group, "rule": rule.id, "action": rule.action, "matched": match})
            if trace and not match:
                tried[-1]["why"] = self._why_not(rule, view)
            if match:
                key = (rule.security_group, rule.id, direction)
                self.hits[key] = self.hits.get(key, 0) + 1
                decided = Filter(rule.action == "allow", "rule", rule.security_group, rule.id)
                break
        if decided is None:
            decided = Filter(False, "default")
        if trace:
            trace.add(step="security_groups", nic=nic.label, direction=direction, peer=format_ip(pkt.l3, view.peer),
                      groups=list(nic.security_groups), rules=tried, result=decided.reason if decided.allowed or decided.reason != "rule" else "rule",
                      allowed=decided.allowed, security_group=decided.group, rule=decided.rule)
        if decided.allowed:
            self._open(table, nic, view, inbound=direction == "ingress")
        return decided

    def _acl(self, nic: Nic, acl_name: str, way: str, view: View, trace: Trace | None) -> Filter:
        table = self.acl_conntrack.setdefault(nic.index, {})
        tracked = self._tracked(table, nic, view, "ingress" if way == "inbound" else "egress")
        if tracked is not None:
            if trace:
                trace.add(step="network_acl", acl=acl_name, way=way, result=tracked)
            return Filter(True, tracked)
        acl = self.topo.network_acls[acl_name]
        decided = Filter(False, "acl", acl_name, "")
        for rule in acl.inbound if way == "inbound" else acl.outbound:
            if rule.enabled and self._acl_match(rule, view):
                key = (acl_name, rule.id, "ingress" if way == "inbound" else "egress")
                self.hits[key] = self.hits.get(key, 0) + 1
                decided = Filter(rule.action == "allow", "rule" if rule.action == "allow" else "acl", acl_name, rule.id)
                break
        if trace:
            trace.add(step="network_acl", acl=acl_name, way=way, allowed=decided.allowed, rule=decided.rule or "(implicit deny)")
        if decided.allowed:
            self._open(table, nic, view, inbound=way == "inbound")
        return decided

    def _acl_match(self, rule: AclRule, view: View) -> bool:
        pkt = view.pkt
        if rule.ip_version != pkt.l3:
            return False
        if rule.protocol is not None and rule.protocol != pkt.proto:
            return False
        for end, addr in ((rule.src, view.acl_src), (rule.dst, view.acl_dst)):
            if isinstance(end, Net) and not end.contains(pkt.l3, addr):
                return False
            if isinstance(end, str) and not self.topo.address_groups[end].contains(pkt.l3, addr):
                return False
        for ports, port in ((rule.sports, view.sport), (rule.dports, view.dport)):
            if ports is not None:
                if pkt.proto not in PORT_PROTOS or port is None or not any(lo <= port <= hi for lo, hi in ports):
                    return False
        return True

    # -- connection tracking (S11) --------------------------------------------------------------

    def _key(self, nic: Nic, l3: int, proto: int, src: int, sport: int, dst: int, dport: int, icmp_type: int, icmp_id: int):
        """Normalised key and originator side of a packet at a NIC, or None if it opens no entry.

        The NIC's EIP is replaced by its private IP, so both forms of a flow are one connection.
        """
        if l3 == 4 and nic.eip is not None:
            src = nic.ip if src == nic.eip else src
            dst = nic.ip if dst == nic.eip else dst
        if proto in PORT_PROTOS:
            a, b = (src, sport), (dst, dport)
        elif proto in ICMP_ECHO:
            if icmp_type not in ICMP_ECHO[proto]:
                return None, None
            a, b = (src, icmp_id), (dst, icmp_id)
        else:
            a, b = (src, 0), (dst, 0)
        return (l3, proto) + ((a, b) if a <= b else (b, a)), a

    def _packet_key(self, nic: Nic, view: View):
        pkt = view.pkt
        if pkt.frag_offset > 0:
            return None, None
        return self._key(nic, pkt.l3, pkt.proto, view.src, view.sport or 0, view.dst, view.dport or 0, pkt.icmp_type, pkt.icmp_id)

    def _tracked(self, table: dict, nic: Nic, view: View, direction: str) -> str | None:
        """``established``/``related`` if the packet belongs to a live entry of this table."""
        pkt = view.pkt
        if pkt.proto in ICMP_ERRORS and pkt.icmp_type in ICMP_ERRORS[pkt.proto] and pkt.frag_offset == 0:
            if pkt.inner_l3 == 0:
                return None
            key, _ = self._key(nic, pkt.inner_l3, pkt.inner_proto, pkt.inner_src, pkt.inner_sport, pkt.inner_dst,
                               pkt.inner_dport, ICMP_ECHO.get(pkt.inner_proto, (-1,))[0], pkt.inner_sport)
            if key is None:
                return None
            conn = table.get(key)
            if conn is not None and not _expired(conn, key[1], self.now):
                return "related"
            return None
        key, orig = self._packet_key(nic, view)
        if key is None:
            return None
        conn = table.get(key)
        if conn is None:
            return None
        if _expired(conn, key[1], self.now):
            del table[key]
            return None
        _advance(conn, key[1], pkt, self.now, reply=orig != conn.orig)
        return "established"

    def _open(self, table: dict, nic: Nic, view: View, inbound: bool) -> None:
        pkt = view.pkt
        if pkt.proto in ICMP_ERRORS and pkt.icmp_type in ICMP_ERRORS[pkt.proto]:
            return
        key, orig = self._packet_key(nic, view)
        if key is None:
            return
        table[key] = Conn(_initial_state(pkt), self.now, orig, inbound)

    def _lb_reply(self, nic: Nic, pkt: Packet) -> bool:
        """Is this packet from a backend part of a live client-IP-transfer flow (S14)?"""
        if pkt.frag_offset > 0:
            return False
        sport, dport = _ports(pkt)
        key, _ = self._key(nic, pkt.l3, pkt.proto, pkt.src, sport or 0, pkt.dst, dport or 0, pkt.icmp_type, pkt.icmp_id)
        conn = self.conntrack.get(nic.index, {}).get(key) if key is not None else None
        return conn is not None and conn.lb and not _expired(conn, key[1], self.now)

    def _touch(self, nic: Nic, pkt: Packet, fwd: tuple[int, int, int, int], inbound: bool) -> None:
        """Open or refresh the backend's entry for a client-IP-transfer flow (S14)."""
        src, sport, dst, dport = fwd
        key, orig = self._key(nic, pkt.l3, pkt.proto, src, sport, dst, dport, pkt.icmp_type, pkt.icmp_id)
        table = self.conntrack.setdefault(nic.index, {})
        conn = table.get(key)
        if conn is not None and not _expired(conn, key[1], self.now):
            _advance(conn, key[1], pkt, self.now, reply=orig != conn.orig)
            conn.lb = True
        else:
            table[key] = Conn(_initial_state(pkt), self.now, orig, inbound, lb=True)

    def retarget(self, topo: Topology, names: Names, nic_map: dict[int, int], drop_sg: set[int],
                 drop_acl: set[int]) -> None:
        """S12: continue with another version of the topology, keeping the dataplane state.

        ``names`` must cover every name of ``topo`` (a timeline passes the names of all versions,
        also at construction, so earlier rows keep their meaning). ``nic_map`` maps old NIC indexes to
        new ones (NICs that are gone are absent: their entries are discarded). ``drop_sg`` and
        ``drop_acl`` are new NIC indexes whose security-group (resp. network-ACL) entries opened by
        inbound traffic are dropped; entries of load-balancer client-IP-transfer flows are kept (no
        rule decides them). Fragment memory, hit counters and the clock carry over.
        """
        self.topo = topo
        self.policy = Policy(topo)
        self.names = names
        for attr, drop in (("conntrack", drop_sg), ("acl_conntrack", drop_acl)):
            moved: dict[int, dict[tuple, Conn]] = {}
            for old, table in getattr(self, attr).items():
                new = nic_map.get(old)
                if new is None:
                    continue
                if new in drop:
                    table = {k: c for k, c in table.items() if not c.inbound or c.lb}
                moved[new] = table
            setattr(self, attr, moved)
        # load-balancer sessions follow their backend NIC (no rule decides them)
        self.lb_sessions = {nic_map[old]: table for old, table in self.lb_sessions.items() if old in nic_map}
        self._index_addresses()


def _initial_state(pkt: Packet) -> int:
    if pkt.proto == TCP:
        if pkt.tcp_flags & (FIN | RST):
            return TCP_CLOSING
        if pkt.tcp_flags & SYN and not pkt.tcp_flags & ACK:
            return TCP_NEW
        return TCP_EST
    return UNREPLIED


def _timeout(conn: Conn, proto: int) -> float:
    if proto == TCP:
        return TIMEOUT_TCP[conn.state]
    if proto in ICMP_ECHO:
        return TIMEOUT_ICMP
    return TIMEOUT_OTHER[conn.state]


def _expired(conn: Conn, proto: int, ts: float) -> bool:
    return ts - conn.last > _timeout(conn, proto)


def _advance(conn: Conn, proto: int, pkt: Packet, now: float, reply: bool) -> None:
    """A packet of a live connection: refresh it and move its state (S11)."""
    conn.last = now
    if proto == TCP:
        if pkt.tcp_flags & (FIN | RST):
            conn.state = TCP_CLOSING
        elif conn.state == TCP_NEW and reply:
            conn.state = TCP_EST
    elif proto not in ICMP_ECHO and reply:
        conn.state = REPLIED


def _ports(pkt: Packet) -> tuple[int | None, int | None]:
    """(sport, dport) as the rules see them: None for a non-first fragment or a portless protocol."""
    if pkt.proto not in PORT_PROTOS or pkt.frag_offset > 0:
        return None, None
    return pkt.sport, pkt.dport


def _asdict(pkt: Packet) -> dict:
    return {name: getattr(pkt, name) for name in Packet.__slots__}  # type: ignore[attr-defined]


def _proto(proto: int) -> str:
    return {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMPV6: "icmpv6", GRE: "gre"}.get(proto, str(proto))


def _describe(ep: Endpoint, l3: int, addr: int) -> str:
    ip = format_ip(l3, addr)
    if ep.kind == "nic":
        how = {"fixed": "fixed IP", "eip": "EIP", "vip": "virtual IP", "forwarded": "forwarded (by MAC)"}[ep.how]
        return f"{ip}: {ep.nic.label} ({how})"  # type: ignore[union-attr]
    if ep.kind == "lb":
        return f"{ip}: load balancer {ep.lb.name}"  # type: ignore[union-attr]
    if ep.kind == "vpc":
        return f"{ip}: unlisted host of VPC {ep.name}"
    if ep.kind == "private":
        return f"{ip}: private network {ep.name}"
    if ep.kind == "service":
        return f"{ip}: cloud service address"
    return f"{ip}: external"
