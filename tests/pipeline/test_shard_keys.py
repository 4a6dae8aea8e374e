"""Sharding soundness (issue 13, docs/scale-out.md): packets that share dataplane state never land
in different shards.

The test does not trust the design's argument: it runs the reference engine with its state tables
replaced by recording dictionaries, so every access to a connection-tracking entry (security
groups and ACLs, per NIC) and to the fragment memory is seen with the packet that made it. An
access that finds an entry must come from the shard of the packet that last wrote it; otherwise
that shard's engine would not have the entry and the verdict could differ.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.capture.packet import Packet, PacketBatch
from sgdp.engine.reference import ReferenceEngine
from sgdp.pipeline.shard import LB_KEY, Router, ShardKeys, clock
from sgdp.topology.model import topology_from_data
from tests.topogen import packet_sequences, topologies

SHARD_COUNTS = (2, 3, 4, 64)


class Recorder:
    def __init__(self) -> None:
        self.packet = -1
        self.holder: dict[tuple, int] = {}  # state key -> packet that last wrote it
        self.reads: list[tuple[int, int, tuple]] = []  # (reader, writer, key): an access that found an entry

    def found(self, key: tuple) -> None:
        if key in self.holder:
            self.reads.append((self.packet, self.holder[key], key))

    def wrote(self, key: tuple) -> None:
        self.holder[key] = self.packet


class RecordingTable(dict):
    """A state table (dict) that reports every access to its Recorder under ``prefix``."""

    def __init__(self, rec: Recorder, prefix: tuple):
        super().__init__()
        self.rec, self.prefix = rec, prefix

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            self.rec.found(self.prefix + (key,))
        return dict.get(self, key, default)

    def __getitem__(self, key):
        self.rec.found(self.prefix + (key,))
        return dict.__getitem__(self, key)

    def __contains__(self, key):
        if dict.__contains__(self, key):
            self.rec.found(self.prefix + (key,))
            return True
        return False

    def __setitem__(self, key, value):
        self.rec.wrote(self.prefix + (key,))
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        self.rec.found(self.prefix + (key,))
        dict.__delitem__(self, key)


class PerNic(dict):
    """``{nic index: RecordingTable}``, created on first use as the engine's setdefault/get do."""

    def __init__(self, rec: Recorder, name: str):
        super().__init__()
        self.rec, self.name = rec, name

    def _table(self, nic):
        if not dict.__contains__(self, nic):
            dict.__setitem__(self, nic, RecordingTable(self.rec, (self.name, nic)))
        return dict.__getitem__(self, nic)

    def setdefault(self, nic, default=None):
        return self._table(nic)

    def get(self, nic, default=None):
        return self._table(nic)


def record(topo, packets: list[Packet]) -> Recorder:
    rec = Recorder()
    engine = ReferenceEngine(topo)
    engine.conntrack = PerNic(rec, "conntrack")
    engine.acl_conntrack = PerNic(rec, "acl")
    engine.fragments = RecordingTable(rec, ("fragments",))
    for i, pkt in enumerate(packets):
        rec.packet = i
        engine.step(pkt)
    return rec


def shards_of(topo, packets: list[Packet], n: int, cuts=()) -> np.ndarray:
    """The router's shard of every packet, fed in batches cut at ``cuts``: what the executors use
    (``Router.grouped``, compiled), checked against the NumPy reference (``Router.batch``) of a
    second router fed the same batches, with the clock and the grouping by shard."""
    router, reference = Router(ShardKeys([topo]), n), Router(ShardKeys([topo]), n)
    out, previous = [], float("-inf")
    bounds = [0] + sorted(set(min(c, len(packets)) for c in cuts)) + [len(packets)]
    for a, b in zip(bounds, bounds[1:]):
        batch = PacketBatch.from_packets(packets[a:b])
        shard, now, order, edges = router.grouped(batch, previous)
        want_shard, want_now = reference.batch(batch, previous)
        assert shard.tolist() == want_shard.tolist() and now.tolist() == want_now.tolist()
        assert order.tolist() == np.argsort(shard, kind="stable").tolist()
        assert edges.tolist() == [0] + np.cumsum(np.bincount(shard, minlength=n)).tolist()
        assert router.fragments == reference.fragments
        if len(now):
            previous = float(now[-1])
        out.append(shard)
    return np.concatenate(out) if out else np.zeros(0, np.uint8)


def assert_sound(topo, packets, cuts=()) -> Recorder:
    rec = record(topo, packets)
    for n in SHARD_COUNTS:
        shard = shards_of(topo, packets, n, cuts)
        for reader, writer, key in rec.reads:
            assert shard[reader] == shard[writer], (
                f"{n} shards: packet {reader} ({packets[reader]}) reads state {key} written by packet {writer} "
                f"({packets[writer]}) on another shard ({shard[reader]} != {shard[writer]})")
    return rec


@st.composite
def related(draw, topo_dict: dict, packets: list[Packet]) -> list[Packet]:
    """The packet sequence with, after some packets, packets that share its state through another
    address pair: the EIP form of the packet or of its reply, an ICMP error from a third address
    quoting it (also in the EIP form, also fragmented), and for a load balancer's listener the
    client's packet and every backend's reply."""
    import dataclasses

    nics = [n for inst in topo_dict["instances"] for n in ([inst] if "subnet" in inst else inst["nics"])]
    eip_of = {ip(n["ip"]): ip(n["eip"]) for n in nics if "eip" in n}
    private_of = {v: k for k, v in eip_of.items()}
    listeners = []
    for lb in topo_dict.get("load_balancers", []):
        for listener in lb["listeners"]:
            backends = [ip(n["ip"]) for b in listener["backends"] for inst in topo_dict["instances"] if inst["name"] == b["instance"]
                        for n in ([inst] if "subnet" in inst else inst["nics"])[:1]]
            for front in [lb["vip"]] + ([lb["eip"]] if "eip" in lb else []):
                listeners.append((ip(front), listener["port"], 17 if listener["protocol"] == "udp" else 6, backends,
                                  [b["port"] for b in listener["backends"]]))
    routers = [ip(x) for x in ("192.0.2.1", "8.8.8.8", "100.125.0.1")]
    lb_sources = {}
    for lb in topo_dict.get("load_balancers", []):
        v, k = (int(x) for x in lb["subnet"][2:].split("-"))
        src = ip(lb["vip"]) if lb["vip"].startswith(f"10.{v}.{k}.") else ip(f"10.{v}.{k}.2")
        for front in [lb["vip"]] + ([lb["eip"]] if "eip" in lb else []):
            lb_sources[ip(front)] = src
    out: list[Packet] = []
    frag_id = 100
    for p in packets:
        out.append(p)
        if p.l3 != 4 or p.status != 0 or not draw(st.booleans()):
            continue
        kind = draw(st.sampled_from(["eip", "error", "error", "fragmented_error", "lb"]))
        swap = lambda a: eip_of.get(a, private_of.get(a, a))  # noqa: E731
        if kind == "eip":
            reply = draw(st.booleans())
            s, d = (p.dst, p.src) if reply else (p.src, p.dst)
            sp, dp = (p.dport, p.sport) if reply else (p.sport, p.dport)
            s, d = (swap(s), d) if draw(st.booleans()) else (s, swap(d))
            out.append(dataclasses.replace(p, src=s, dst=d, sport=sp, dport=dp, ts=p.ts + 0.5))
        elif kind in ("error", "fragmented_error"):
            to = p.src if draw(st.booleans()) else swap(p.src)
            inner_src = p.src if draw(st.booleans()) else swap(p.src)
            err = Packet(ts=p.ts + 0.5, l3=4, src=draw(st.sampled_from(routers + [p.dst])), dst=to, proto=1,
                         icmp_type=draw(st.sampled_from([3, 11])), icmp_code=0, inner_l3=4, inner_src=inner_src,
                         inner_dst=p.dst, inner_proto=p.proto,
                         inner_sport=p.sport if p.proto in (6, 17) else p.icmp_id,
                         inner_dport=p.dport if p.proto in (6, 17) else 0)
            if kind == "fragmented_error":
                frag_id += 1
                err.more_fragments, err.frag_id = 1, frag_id
                rest = Packet(ts=p.ts + 0.6, l3=4, src=err.src, dst=err.dst, proto=1, frag_offset=185, frag_id=frag_id)
                out += [err, rest]
            else:
                out.append(err)
        elif kind == "lb" and listeners:
            front, port, proto, backends, bports = draw(st.sampled_from(listeners))
            client = p.src
            out.append(Packet(ts=p.ts + 0.5, l3=4, src=client, dst=front, proto=proto, sport=p.sport or 40000,
                              dport=port, tcp_flags=2 if proto == 6 else 0))
            other = draw(st.sampled_from(routers + [p.dst]))  # a second client, same source port
            out.append(Packet(ts=p.ts + 0.5, l3=4, src=other, dst=front, proto=proto, sport=p.sport or 40000,
                              dport=port, tcp_flags=2 if proto == 6 else 0))
            for b, bp in zip(backends, bports):
                for to in (client, ip("100.125.0.1"), lb_sources.get(front, front)):  # to the client, or to the LB
                    out.append(Packet(ts=p.ts + 0.6, l3=4, src=b, dst=to, proto=proto, sport=bp,
                                      dport=p.sport or 40000, tcp_flags=0x12 if proto == 6 else 0))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_packets_sharing_state_share_a_shard(data):
    topo_dict = data.draw(topologies())
    if data.draw(st.booleans()):  # most packets allowed: many entries to share
        for group in topo_dict["security_groups"]:
            group["rules"][:0] = [{"direction": "ingress"}, {"direction": "egress"}]
    packets = data.draw(related(topo_dict, data.draw(packet_sequences(topo_dict, max_packets=40))))
    cuts = data.draw(st.lists(st.integers(0, len(packets)), max_size=3))
    assert_sound(topology_from_data(topo_dict, "generated.yaml"), packets, cuts)


# ------------------------------------------------------------------- the cases the design names

TOPO = {
    "version": 1,
    "vpcs": [{"name": "vpc", "cidr": "10.0.0.0/16", "subnets": [{"name": "sn", "cidr": "10.0.0.0/24"}]}],
    "security_groups": [{"name": "open", "rules": [{"direction": "ingress"}, {"direction": "egress"}]}],
    "instances": [
        {"name": f"ecs{i}", "subnet": "sn", "ip": f"10.0.0.{10 + i}", "security_groups": ["open"],
         **({"eip": f"203.0.113.{10 + i}"} if i < 2 else {})} for i in range(6)],
    "virtual_ips": [{"ip": "10.0.0.21", "subnet": "sn", "instances": ["ecs2", "ecs3"]}],
    "load_balancers": [{"name": "lb", "type": "shared", "vip": "10.0.0.100", "subnet": "sn",
                        "listeners": [{"protocol": "tcp", "port": 80, "transfer_client_ip": True,
                                       "backends": [{"instance": "ecs4", "port": 8080}, {"instance": "ecs5", "port": 8080}]}]}],
}


def ip(text: str) -> int:
    import ipaddress

    return int(ipaddress.ip_address(text))


def pkt(src, dst, proto=6, sport=40000, dport=80, **kw) -> Packet:
    return Packet(ts=kw.pop("ts", 1.0), l3=4, src=ip(src), dst=ip(dst), proto=proto, sport=sport, dport=dport, **kw)


def test_named_cases_share_a_shard():
    """Each pair below shares state; for every shard count they land together (and the rows that
    quote, translate or fragment really took a different path than their plain address pair)."""
    topo = topology_from_data(TOPO, "t.yaml")
    a, b = "10.0.0.10", "198.51.100.7"
    cases = {
        "both directions": [pkt(a, b), pkt(b, a, sport=80, dport=40000)],
        "EIP before and after SNAT": [pkt(a, b), pkt(b, "203.0.113.10", sport=80, dport=40000)],
        "ICMP error quoting the connection": [
            pkt(a, b), pkt("192.0.2.1", a, proto=1, sport=0, dport=0, icmp_type=3, icmp_code=4,
                           inner_l3=4, inner_src=ip(a), inner_dst=ip(b), inner_proto=6, inner_sport=40000, inner_dport=80)],
        "ICMP error quoting the EIP form": [
            pkt(a, b), pkt("192.0.2.1", "203.0.113.10", proto=1, sport=0, dport=0, icmp_type=3, icmp_code=4,
                           inner_l3=4, inner_src=ip("203.0.113.10"), inner_dst=ip(b), inner_proto=6,
                           inner_sport=40000, inner_dport=80)],
        "fragments of a datagram": [pkt(b, a, proto=17, sport=53, dport=5353, more_fragments=1, frag_id=9),
                                    pkt(b, a, proto=17, sport=0, dport=0, frag_offset=185, frag_id=9)],
        "a virtual IP and its holders": [pkt(b, "10.0.0.21"), pkt("10.0.0.12", b, sport=80, dport=40000),
                                         pkt("10.0.0.13", b, sport=80, dport=40000)],
    }
    for n in (2, 3, 4, 16, 64, 255):
        router = Router(ShardKeys([topo]), n)
        for name, packets in cases.items():
            if name == "a virtual IP and its holders":
                continue  # separate pairs: checked below through the owner map
            batch = PacketBatch.from_packets(packets)
            shard = router.route(batch.columns, clock(batch.columns["ts"], float("-inf")))
            assert len(set(shard.tolist())) == 1, (name, n, shard)
    keys = ShardKeys([topo])
    owners = {x: keys.owner(np.array([4], np.uint8), np.array([0], np.uint64), np.array([ip(x)], np.uint64))[0]
              for x in ("10.0.0.21", "10.0.0.12", "10.0.0.13", "10.0.0.10", "203.0.113.10")}
    assert owners["10.0.0.21"] == owners["10.0.0.12"] == owners["10.0.0.13"]
    assert owners["10.0.0.10"] == owners["203.0.113.10"]
    assert owners["10.0.0.10"] != owners["10.0.0.12"]


def test_a_load_balancers_sessions_go_to_the_load_balancer_shard():
    topo = topology_from_data(TOPO, "t.yaml")
    client = "198.51.100.7"
    packets = [pkt(client, "10.0.0.100"), pkt("10.0.0.14", client, sport=8080, dport=40000),
               pkt("10.0.0.15", client, sport=8080, dport=40001), pkt("100.125.0.1", "10.0.0.14", dport=8080),
               pkt("10.0.0.10", "10.0.0.100", sport=40002)]
    batch = PacketBatch.from_packets(packets)
    keys = ShardKeys([topo]).keys(batch.columns)
    assert (keys == LB_KEY).all()
    other = PacketBatch.from_packets([pkt("10.0.0.10", client), pkt("10.0.0.11", client)])
    assert not (ShardKeys([topo]).keys(other.columns) == LB_KEY).any()


def test_every_version_of_a_timeline_counts():
    """An EIP moved from one NIC to another between versions joins both owners."""
    import copy

    v2 = copy.deepcopy(TOPO)
    v2["instances"][0].pop("eip")
    v2["instances"][3]["eip"] = "203.0.113.10"
    t1, t2 = topology_from_data(TOPO, "v1.yaml"), topology_from_data(v2, "v2.yaml")
    keys = ShardKeys([t1, t2])
    own = lambda x: keys.owner(np.array([4], np.uint8), np.array([0], np.uint64), np.array([ip(x)], np.uint64))[0]  # noqa: E731
    assert own("203.0.113.10") == own("10.0.0.10") == own("10.0.0.13")


def test_keys_are_vectorised_and_spread():
    """Address pairs spread evenly over shards."""
    rng = np.random.default_rng(3)
    n = 200_000
    cols = {k: np.zeros(n, v.dtype) for k, v in PacketBatch.from_packets([Packet()]).columns.items()}
    cols["l3"][:] = 4
    cols["proto"][:] = 6
    cols["src_lo"][:] = rng.integers(0x0A000000, 0x0A00FFFF, n).astype(np.uint64)
    cols["dst_lo"][:] = rng.integers(0xC0000000, 0xC000FFFF, n).astype(np.uint64)
    topo = topology_from_data(TOPO, "t.yaml")
    for shards in (2, 4, 16):
        counts = np.bincount(Router(ShardKeys([topo]), shards).route(cols, cols["ts"]), minlength=shards)
        assert counts.min() > 0.9 * n / shards, counts


@pytest.mark.parametrize("n", [0, 256])
def test_router_refuses_impossible_shard_counts(n):
    with pytest.raises(ValueError):
        Router(ShardKeys([]), n)


def test_only_fragmented_icmp_errors_enter_the_follow_table():
    """A large ping's fragments are keyed by their own pair (no table entry, no per-packet Python);
    a fragmented ICMP error's later fragment follows the first one to the quoted connection's shard;
    a new datagram with the same id, keyed by its own pair, drops the entry."""
    topo = topology_from_data(TOPO, "t.yaml")
    a, b = "10.0.0.10", "198.51.100.7"
    ping = [pkt(b, a, proto=1, sport=0, dport=0, icmp_type=8, more_fragments=1, frag_id=7),
            pkt(b, a, proto=1, sport=0, dport=0, frag_offset=185, frag_id=7)]
    router = Router(ShardKeys([topo]), 64)
    batch = PacketBatch.from_packets(ping)
    assert len(set(router.route(batch.columns, batch.columns["ts"]).tolist())) == 1
    assert router.fragments == {}
    error = [pkt(a, b), pkt("192.0.2.1", a, proto=1, sport=0, dport=0, icmp_type=3, icmp_code=4, more_fragments=1,
                            frag_id=9, inner_l3=4, inner_src=ip(a), inner_dst=ip(b), inner_proto=6,
                            inner_sport=40000, inner_dport=80)]
    rest = [pkt("192.0.2.1", a, proto=1, sport=0, dport=0, frag_offset=185, frag_id=9)]
    own = [pkt("192.0.2.1", a, proto=1, sport=0, dport=0, icmp_type=8, more_fragments=1, frag_id=9)]
    for n in (2, 3, 4, 16, 64):
        router = Router(ShardKeys([topo]), n)
        shards = [router.route(x.columns, x.columns["ts"]) for x in map(PacketBatch.from_packets, (error, rest))]
        assert shards[1][0] == shards[0][1] == shards[0][0], n
        assert len(router.fragments) == 1
        x = PacketBatch.from_packets(own + rest)
        shard = router.route(x.columns, x.columns["ts"])
        assert router.fragments == {} and shard[0] == shard[1], n


def test_compiled_routing_agrees_on_crowded_address_tables():
    """The compiled pass looks addresses up in the same table as NumPy, overflow slots included:
    20,000 named addresses (hundreds sharing a slot), some of them the load balancer's, and random
    packets between them and unnamed addresses, ICMP errors quoting other pairs among them."""
    from sgdp.pipeline import shard as shard_module

    if shard_module._shard is None:
        pytest.skip("built without the extensions")
    rng = np.random.default_rng(7)
    named = np.unique(rng.integers(0, 1 << 32, 20_000, dtype=np.uint64))
    values = named ^ np.uint64(4 << 60)  # shard.address_value of IPv4 addresses
    owners = values[rng.integers(0, len(values), len(values))]  # groups of addresses with one owner
    owners[rng.random(len(values)) < 0.02] = shard_module.LB_TOKEN
    keys = ShardKeys([topology_from_data(TOPO, "t.yaml")])
    keys.table = shard_module._AddressTable(values, owners)
    assert (keys.table.state == 2).sum() > 50  # slots shared by several addresses
    pool = np.concatenate([named, rng.integers(0, 1 << 32, 2_000, dtype=np.uint64)]).tolist()
    packets = []
    for k in range(6000):
        src, dst = (int(pool[j]) for j in rng.integers(0, len(pool), 2))
        if k % 7 == 0:
            a, b = (int(pool[j]) for j in rng.integers(0, len(pool), 2))
            packets.append(Packet(ts=k * 0.001, l3=4, src=src, dst=dst, proto=1, icmp_type=3, icmp_code=1,
                                  inner_l3=4, inner_src=a, inner_dst=b, inner_proto=17))
        else:
            packets.append(Packet(ts=(k % 50) * 0.01, l3=4, src=src, dst=dst, proto=6, sport=1000 + k % 60000, dport=80))
    batch = PacketBatch.from_packets(packets)
    for n in (1, 2, 3, 64, 255):
        shard, now, order, edges = Router(keys, n).grouped(batch, 0.5)
        want_shard, want_now = Router(keys, n).batch(batch, 0.5)
        assert shard.tolist() == want_shard.tolist() and now.tolist() == want_now.tolist()
        assert order.tolist() == np.argsort(shard, kind="stable").tolist()
        assert edges.tolist() == [0] + np.cumsum(np.bincount(shard, minlength=n)).tolist()
        assert n == 1 or len(set(shard.tolist())) > 1
