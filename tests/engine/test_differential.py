"""The fast engine agrees with the reference engine on every column, packet by packet (issue 3).

Random topologies (several VPCs and peerings, private networks, 1–4 groups per NIC, every rule kind
including address groups with ranges and IPv6, legacy and Kai1 flavours, virtual IPs, EIPs, up to
two load balancers with several backends and every listener kind, ACLs) and packet sequences
(replies, retransmissions, FIN and RST, ICMP errors of every type quoting TCP, UDP and echo,
fragments with and without their first across the 30 s memory, time gaps across every timeout,
out-of-order timestamps, load-balancer clients, replies in both forms and forwarded legs), split
into batches at random points; connection tables that start small and grow and sweep (more flows
than slots, expiry); topology versions (S12); and the same traffic as frames through the capture
reader with snap-length cuts (S15).

``SGDP_DIFF_EXAMPLES`` scales the number of examples: CI keeps the default (a bounded run); a long
run sets it high, seed after seed, e.g.
``SGDP_DIFF_EXAMPLES=10 nice python -m pytest tests/test_differential.py --hypothesis-seed=N``.
Every disagreement such a run finds becomes a named regression test beside the mechanism's tests.
"""

from __future__ import annotations

import os
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.engine.choice import fast_available
from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import REASONS, VERDICTS, PacketBatch
from sgdp.engine.reference import ReferenceEngine
from tests.topogen import packet_sequences, topologies

pytestmark = pytest.mark.skipif(not fast_available(), reason="the compiled engine is not built")

COLUMNS = ("verdict", "reason", "instance", "direction", "group", "rule")
SCALE = max(1, int(os.environ.get("SGDP_DIFF_EXAMPLES", "1")))


def examples(n: int) -> int:
    """The CI number of examples of a test, times SGDP_DIFF_EXAMPLES."""
    return n * SCALE


def _run_both(topo_dict, packets, cuts, ct_capacity=1024, serial=None, flow=None, in_place_from=None):
    """``flow``: per batch in turn, whether the flow cache is used (the engine turns it off by
    itself only on batches of thousands of packets): off, then on again with what it held.
    ``in_place_from``: the table size from which the connection table doubles in place (0: never;
    None: the engine's own, beyond these tests' tables)."""
    from sgdp.engine.fast import FastEngine

    topo = topology_from_data(topo_dict, "generated.yaml")
    ref, fast = ReferenceEngine(topo), FastEngine(topo, ct_capacity=ct_capacity)
    if in_place_from is not None:
        fast.dp.in_place_from = in_place_from
    if serial is not None:
        fast.dp.next_serial = serial
    expected = ref.process(PacketBatch.from_packets(packets))
    got = {c: [] for c in COLUMNS}
    bounds = [0] + sorted(set(min(c, len(packets)) for c in cuts)) + [len(packets)]
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if flow:
            fast.dp.flow_on = flow[k % len(flow)]
        out = fast.process(PacketBatch.from_packets(packets[a:b]))
        # the counts the engine hands the summary are those of the rows it wrote
        assert out.counts.tolist() == (np.bincount(out.verdict, minlength=len(VERDICTS)).tolist()
                                       + np.bincount(out.reason, minlength=len(REASONS)).tolist())
        for c in COLUMNS:
            got[c].extend(getattr(out, c).tolist())
    for i in range(len(packets)):
        want = ref.names.decode(expected, i)
        have = tuple(got[c][i] for c in COLUMNS)
        have_v = fast.names.decode(_one(have), 0)
        assert have_v == want, f"packet {i}: {packets[i]}\nreference {want}\nfast      {have_v}"
    assert fast.rule_hits() == ref.rule_hits()


def _one(row):
    from sgdp.capture.packet import VerdictBatch

    vb = VerdictBatch(1)
    for c, v in zip(COLUMNS, row):
        getattr(vb, c)[0] = v
    return vb


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fast_equals_reference_on_random_topologies(data):
    topo = data.draw(topologies())
    packets = data.draw(packet_sequences(topo))
    cuts = data.draw(st.lists(st.integers(0, len(packets)), max_size=3))
    _run_both(topo, packets, cuts, ct_capacity=data.draw(st.sampled_from([16, 1024])),
              flow=data.draw(st.sampled_from([None, [False], [True, False], [False, True]])),
              in_place_from=data.draw(st.sampled_from([None, 0, 32])))


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fast_equals_reference_with_connection_table_churn(data):
    """Long sequences of many flows through a table that starts at 16 slots: it grows, its sweep
    removes expired entries while probe chains shift, and expired connections start again."""
    topo = data.draw(topologies())
    packets = data.draw(packet_sequences(topo, max_packets=250))
    cuts = data.draw(st.lists(st.integers(0, len(packets)), max_size=4))
    _run_both(topo, packets, cuts, ct_capacity=16, flow=data.draw(st.sampled_from([None, [True, False], [False, True]])),
              in_place_from=data.draw(st.sampled_from([0, 32])))


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fast_equals_reference_across_the_serial_wrap(data):
    """The connection entries' serials (what the flow cache checks its remembered entries by) run
    out within the sequence: the live entries are numbered again and the flow cache forgotten,
    so no remembered (slot, serial) pair can take another entry for its own."""
    topo = data.draw(topologies())
    packets = data.draw(packet_sequences(topo, max_packets=120))
    cuts = data.draw(st.lists(st.integers(0, len(packets)), max_size=2))
    _run_both(topo, packets, cuts, ct_capacity=data.draw(st.sampled_from([16, 1024])),
              serial=2**32 - data.draw(st.integers(1, 40)))


# ---------------------------------------------------------------- through the reader (S15 cuts)


def _pcap(records) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for sec, nsec, frame, wirelen in records:
        out.append(struct.pack("<IIII", sec, nsec, len(frame), wirelen) + frame)
    return b"".join(out)


def _frames(packets, extra, snap):
    """Each packet as an Ethernet frame whose IP datagram carries ``extra`` bytes of payload on the
    wire (its length fields say so), captured up to ``snap`` bytes (None: all of it). Frames that
    are not IP become ARP; malformed ones lose their IP header."""
    from sgdp.capture.frames import packet_to_frame, timestamp
    from sgdp.capture.packet import MALFORMED, NON_IP

    records = []
    for pkt in packets:
        sec, nsec = timestamp(pkt.ts)
        if pkt.status == NON_IP:
            frame = bytes(12) + b"\x08\x06" + bytes(28)
            records.append((sec, nsec, frame, len(frame)))
            continue
        frame = bytearray(packet_to_frame(pkt))
        if pkt.status == MALFORMED:
            records.append((sec, nsec, bytes(frame[:20]), len(frame)))
            continue
        if pkt.l3 == 4:
            struct.pack_into("!H", frame, 16, struct.unpack_from("!H", frame, 16)[0] + extra)
        else:
            struct.pack_into("!H", frame, 18, struct.unpack_from("!H", frame, 18)[0] + extra)
        wire = bytes(frame) + bytes(extra)
        cut = wire if snap is None else wire[:snap]
        records.append((sec, nsec, cut, len(wire)))
    return records


def _read(records):
    from sgdp.capture.ingest import read_batches

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.pcap")
        with open(path, "wb") as fh:
            fh.write(_pcap(records))
        return [b for b in read_batches([path])]


def _verdicts(engine, batches):
    rows = []
    for b in batches:
        out = engine.process(b)
        rows.extend(engine.names.decode(out, i) for i in range(len(b)))
    return rows


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fast_equals_reference_on_header_only_captures(data):
    """The traffic as frames with payload, cut by a snap length: both engines agree on what the
    reader makes of it; where every cut packet kept its classification fields, the verdicts are
    those of the full capture (S15)."""
    from sgdp.engine.fast import FastEngine

    topo_dict = data.draw(topologies())
    packets = data.draw(packet_sequences(topo_dict))
    extra = data.draw(st.sampled_from([0, 8, 100, 1400]))
    snap = data.draw(st.sampled_from([None, 34, 54, 60, 64, 68, 78, 96, 128]))
    topo = topology_from_data(topo_dict, "generated.yaml")
    full = _read(_frames(packets, extra, None))
    cut = _read(_frames(packets, extra, snap))
    ref, fast = ReferenceEngine(topo), FastEngine(topo, ct_capacity=16)
    got_ref, got_fast = _verdicts(ref, cut), _verdicts(fast, cut)
    for i, (a, b) in enumerate(zip(got_ref, got_fast)):
        assert a == b, f"packet {i}: {packets[i]}\nreference {a}\nfast      {b}"
    assert fast.rule_hits() == ref.rule_hits()
    flags = [int(x) for b in cut for x in b.flags]
    status_cut = [int(x) for b in cut for x in b["status"]]
    status_full = [int(x) for b in full for x in b["status"]]
    if status_cut == status_full:
        assert got_ref == _verdicts(ReferenceEngine(topo), full)
    if snap is not None and snap >= 78:
        # IPv4 + TCP/UDP/ICMP echo headers lie within 54 bytes: a cut there never makes them malformed
        for pkt, st_cut, st_full, f in zip(packets, status_cut, status_full, flags):
            if pkt.l3 == 4 and pkt.proto in (6, 17) and st_full == 0:
                assert st_cut == 0, pkt


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fast_equals_reference_across_a_rule_change(data):
    """S12: both engines keep their state across a topology version that drops, adds and reorders
    rules and changes load balancers' backends and client-IP transfer; every column still agrees."""
    import copy

    from sgdp.engine.fast import FastEngine
    from sgdp.pipeline.timeline import plan_change, union_names

    old_dict = data.draw(topologies())
    new_dict = copy.deepcopy(old_dict)
    for group in new_dict["security_groups"]:
        rules = group["rules"]
        if rules and data.draw(st.booleans()):
            rules.pop(data.draw(st.integers(0, len(rules) - 1)))
        if data.draw(st.booleans()):
            rules.append({"direction": data.draw(st.sampled_from(["ingress", "egress"])), "remote_ip_prefix": "0.0.0.0/0"})
        rules.reverse()
    for lb in new_dict.get("load_balancers", []):
        # load balancers change too: a backend leaves, client-IP transfer is switched
        for listener in lb["listeners"]:
            if len(listener["backends"]) > 1 and data.draw(st.booleans()):
                listener["backends"].pop(0)
            if data.draw(st.integers(0, 3)) == 0:
                listener["transfer_client_ip"] = not listener.get("transfer_client_ip", False)
    old, new = topology_from_data(old_dict, "v1.yaml"), topology_from_data(new_dict, "v2.yaml")
    names = union_names([old, new])
    ref, fast = ReferenceEngine(old, names=names), FastEngine(old, names=names, ct_capacity=data.draw(st.sampled_from([16, 1024])))
    fast.dp.in_place_from = data.draw(st.sampled_from([0, 32]))  # the version change rebuilds a table that grows in place, or not
    packets = data.draw(packet_sequences(old_dict))
    cut = data.draw(st.integers(0, len(packets)))
    change = plan_change(old, new)
    for part, retarget in ((packets[:cut], True), (packets[cut:], False)):
        want, got = ref.process(PacketBatch.from_packets(part)), fast.process(PacketBatch.from_packets(part))
        for c in COLUMNS:
            assert getattr(got, c).tolist() == getattr(want, c).tolist(), c
        if retarget:
            for engine in (ref, fast):
                engine.retarget(new, names, change.nic_map, change.drop_sg, change.drop_acl)


def test_the_sender_a_frame_mac_names_on_one_endpoint_addresses():
    """Addresses with one endpoint each are resolved without the endpoint-pair cache; a frame's
    MAC still decides the sender as choose() would: the address's own NIC when the MAC is its, the
    NIC the MAC names forwarding (source/destination check on and off) when it is another's, the
    address's endpoint when the MAC names no NIC or there is none — in both directions, with
    replies, against the reference engine."""
    from sgdp.capture import generated_topology
    from sgdp.capture.packet import Packet

    topo = generated_topology(instances=6, groups=4, rules_per_group=8)
    for k, inst in enumerate(topo["instances"]):
        inst["mac"] = f"fa:16:3e:00:01:{k:02x}"
    topo["instances"][2]["source_dest_check"] = False
    ips = [int.from_bytes(bytes(map(int, inst["ip"].split("."))), "big") for inst in topo["instances"]]
    macs = [int(inst["mac"].replace(":", ""), 16) for inst in topo["instances"]] + [0x0200_0000_0001, -1]
    packets, t = [], 0.0
    for a in range(len(ips)):
        for b in range(len(ips)):
            if a == b:
                continue
            for mac in (macs[a], macs[(a + 2) % len(ips)], macs[-2], macs[-1]):
                for sport, dport, src, dst in ((40000 + a, 22, ips[a], ips[b]), (22, 40000 + a, ips[b], ips[a])):
                    t += 0.5
                    packets.append(Packet(ts=t, src=src, dst=dst, proto=6, sport=sport, dport=dport,
                                          tcp_flags=0x02 if dport == 22 else 0x12, src_mac=mac))
    _run_both(topo, packets, cuts=[len(packets) // 3])


def test_the_flow_cache_turns_itself_off_and_on_by_its_hit_rate():
    """A batch of thousands of first-seen headers (no hit) turns the flow cache off for the next
    batches, then one batch tries it again; a batch of one header repeated keeps it on. Verdicts
    are the reference engine's either way (the tests above run batches with it off and on)."""
    from sgdp.capture.packet import Packet
    from sgdp.engine.fast import FastEngine
    from sgdp.topology import read_structured_file

    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "figure1", "topology.yaml")
    engine = FastEngine(topology_from_data(read_structured_file(path, "topology"), path))
    outside = 0x08080808  # 8.8.8.8: no endpoint of the topology on either side (an early verdict)
    fresh = [Packet(ts=float(k), src=outside, dst=0x08080000 + k, proto=17, sport=53, dport=53) for k in range(6000)]
    engine.process(PacketBatch.from_packets(fresh))
    assert not engine.dp.flow_on  # no header came twice: the cache goes off
    for _ in range(8):  # FLOW_REST batches without it
        engine.process(PacketBatch.from_packets(fresh[:10]))
    assert engine.dp.flow_on  # then it is tried again
    same = [Packet(ts=1e4 + k, src=outside, dst=0x08080404, proto=17, sport=53, dport=53) for k in range(6000)]
    engine.process(PacketBatch.from_packets(same))
    assert engine.dp.flow_on  # one header over and over: it stays on


def test_a_table_that_grows_past_the_mmap_size_with_the_flow_cache_off_and_on():
    """Connection-table and flow-cache blocks of 2 MiB and more come from mmap (zero pages) and go
    back by their size; a table that doubles while the flow cache is off leaves the cache as it was
    until the next batch that uses it, which makes it anew. Batches alternately with and without
    the cache, on thousands of flows (the table grows from 1,024 slots past 32,768, 2 MiB),
    give the reference engine's columns. Doubling into blocks of its own (in_place_from 0), the
    2 MiB block the table leaves when it doubles past 32,768 slots is the size of the flow cache it
    then calls for, which takes it (zeroed): once when the table doubles in a batch with the cache
    on, once in a batch with it off. From 32,768 slots on (the engine's own setting), the table
    moves once into its reserved space and then doubles in place, and the flow cache, from 2 MiB
    on, grows in its own."""
    import numpy as np

    from sgdp.capture import generated_topology, generated_traffic
    from sgdp.engine.fast import FastEngine

    topo_dict = generated_topology(instances=24)
    topo = topology_from_data(topo_dict, "generated.yaml")
    traffic = generated_traffic(topo_dict, packets=30_000, flows=15_000, locality="uniform")
    ref = ReferenceEngine(topo)
    want = ref.process(traffic)
    cols = {name: traffic[name] for name in traffic.columns}
    for pattern, in_place_from in (((False, False, True), 0), ((True,), 0), ((False, True), 0),
                                   ((False, False, True), 32768), ((True,), 32768)):  # the cache per batch, in turn
        fast = FastEngine(topo, ct_capacity=1024)
        fast.dp.in_place_from = in_place_from
        got = {c: [] for c in COLUMNS}
        for k, a in enumerate(range(0, len(traffic), 5_000)):
            fast.dp.flow_on = pattern[k % len(pattern)]
            part = PacketBatch({name: col[a:a + 5_000] for name, col in cols.items()})
            out = fast.process(part)
            for c in COLUMNS:
                got[c].extend(getattr(out, c).tolist())
        assert len(fast.dp) > 16_384 and fast.dp.capacity >= 65_536  # it went past 32,768 slots
        for c in COLUMNS:
            assert np.array_equal(np.array(got[c]), getattr(want, c)), (pattern, c)
        assert fast.rule_hits() == ref.rule_hits()


@pytest.mark.parametrize("in_place_from", [0, 32, 4096])
def test_the_connection_table_keeps_every_probe_chain(in_place_from):
    """Through thousands of flows, expiries, sweeps and doublings from 16 slots — into blocks of
    their own (``in_place_from`` 0), or in place from ``in_place_from`` slots on —, the connection
    table keeps its invariants after every batch — each entry reached from its home slot without
    an empty slot between, the count right — with the reference engine's columns."""
    from sgdp.capture import generated_topology, generated_traffic
    from sgdp.engine.fast import FastEngine

    topo_dict = generated_topology(instances=24)
    topo = topology_from_data(topo_dict, "generated.yaml")
    traffic = generated_traffic(topo_dict, packets=40_000, flows=12_000, locality="uniform")
    want = ReferenceEngine(topo).process(traffic)
    fast = FastEngine(topo, ct_capacity=16)
    fast.dp.in_place_from = in_place_from
    cols = {name: traffic[name] for name in traffic.columns}
    got = {c: [] for c in COLUMNS}
    for a in range(0, len(traffic), 2_500):
        out = fast.process(PacketBatch({name: col[a:a + 2_500] for name, col in cols.items()}))
        for c in COLUMNS:
            got[c].extend(getattr(out, c).tolist())
        assert fast.dp.check_table() == []
    from sgdp.engine._dataplane import space_available

    assert fast.dp.capacity >= 16_384 and fast.dp.in_place == (in_place_from > 0 and space_available())
    for c in COLUMNS:
        assert np.array_equal(np.array(got[c]), getattr(want, c)), c


def test_prefault_from_another_thread_leaves_every_answer_as_it_was():
    """The capture reader's thread makes the memory of the tables' next growth while the engine
    works (Dataplane.prefault, MADV_POPULATE_WRITE): run from a second thread without pause, as the
    engine doubles its table in place and its flow cache grows, it changes no answer and no entry."""
    import threading

    from sgdp.capture import generated_topology, generated_traffic
    from sgdp.engine.fast import FastEngine

    topo_dict = generated_topology(instances=24)
    topo = topology_from_data(topo_dict, "generated.yaml")
    traffic = generated_traffic(topo_dict, packets=40_000, flows=12_000, locality="uniform")
    want = ReferenceEngine(topo).process(traffic)
    fast = FastEngine(topo, ct_capacity=16)
    fast.dp.in_place_from = 32
    stop = threading.Event()
    calls = []

    def keep_prefaulting():
        while not stop.is_set():
            calls.append(fast.idle())

    helper = threading.Thread(target=keep_prefaulting)
    helper.start()
    cols = {name: traffic[name] for name in traffic.columns}
    got = {c: [] for c in COLUMNS}
    try:
        for a in range(0, len(traffic), 2_500):
            fast.dp.flow_on = (a // 2_500) % 2 == 0
            out = fast.process(PacketBatch({name: col[a:a + 2_500] for name, col in cols.items()}))
            for c in COLUMNS:
                got[c].extend(getattr(out, c).tolist())
            assert fast.dp.check_table() == []
    finally:
        stop.set()
        helper.join()
    from sgdp.engine._dataplane import space_available

    assert fast.dp.in_place == space_available() and len(calls) > 0
    for c in COLUMNS:
        assert np.array_equal(np.array(got[c]), getattr(want, c)), c
    # nothing left to make once the table is far from its next doubling
    while fast.idle():
        pass
    assert fast.idle() is False
