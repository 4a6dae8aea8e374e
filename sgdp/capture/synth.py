"""Synthetic topologies and traffic for benchmarks (fixed seeds, deterministic).

``generated_topology()``: 200 instances in 4 subnets of one VPC (plus a peered VPC), 20 security
groups of about 50 rules each — remote groups, address groups, multiport, IPv4 and IPv6 — each
instance bound to 1–3 groups. ``generated_traffic()``: packets already parsed, as a PacketBatch, in
flows between instances and with the Internet (TCP handshakes and data, UDP, ICMP echo), in
capture order.
"""

from __future__ import annotations

import numpy as np

from sgdp._atomic import partial_file
from sgdp.capture.packet import ACK, FIN, PACKET_COLUMNS, SYN, PacketBatch

N_INSTANCES = 200
BENCH_INSTANCES = 273  # the replay benchmark's topology: 273 generated instances + shared-db = 274
N_GROUPS = 20
RULES_PER_GROUP = 50
SERVICE_PORTS = [22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9000, 11211]


def generated_topology(seed: int = 1, instances: int = N_INSTANCES, groups: int = N_GROUPS,
                       rules_per_group: int = RULES_PER_GROUP) -> dict:
    rng = np.random.default_rng(seed)
    subnets = [{"name": f"sn{k}", "cidr": f"10.0.{k}.0/24", "ipv6_cidr": f"fd00:0:{k}::/64"} for k in range(4)]
    topo: dict = {
        "version": 1,
        "vpcs": [
            {"name": "prod", "cidr": "10.0.0.0/16", "subnets": subnets},
            {"name": "shared", "cidr": "10.1.0.0/16", "subnets": [{"name": "shared-a", "cidr": "10.1.0.0/24"}]},
        ],
        "peerings": [{"name": "prod-shared", "vpcs": ["prod", "shared"]}],
        "address_groups": [
            {"name": "partners", "ip_version": 4,
             "ip_set": ["198.51.100.0/24", "203.0.113.0/25", "192.0.2.10-192.0.2.90"]},
            {"name": "office6", "ip_version": 6, "ip_set": ["2001:db8:100::/48"]},
        ],
    }
    gnames = [f"sg{g:02d}" for g in range(groups)]
    sgs = []
    for g, name in enumerate(gnames):
        rules = []
        for r in range(rules_per_group):
            kind = rng.integers(0, 10)
            v6 = kind == 9
            rule: dict = {"direction": "ingress" if rng.random() < 0.8 else "egress",
                          "priority": int(rng.choice([1, 10, 50, 100])),
                          "ethertype": "IPv6" if v6 else "IPv4"}
            if rng.random() < 0.15:
                rule["action"] = "deny"
            proto = rng.choice(["tcp", "tcp", "tcp", "udp", "icmp"])
            if proto == "icmp":
                rule["protocol"] = "icmpv6" if v6 else "icmp"
            else:
                rule["protocol"] = str(proto)
                ports = sorted(rng.choice(SERVICE_PORTS + list(range(1000, 1100)), size=int(rng.integers(1, 4)), replace=False))
                rule["multiport"] = ",".join(str(p) for p in ports)
            if kind < 3:
                rule["remote_group_id"] = gnames[int(rng.integers(0, groups))]
            elif kind < 5 and not v6:
                rule["remote_address_group_id"] = "partners"
            elif kind == 9:
                rule["remote_ip_prefix"] = "fd00::/16" if rng.random() < 0.5 else "::/0"
            else:
                rule["remote_ip_prefix"] = str(rng.choice(["10.0.0.0/16", "10.0.1.0/24", "0.0.0.0/0", "10.1.0.0/24",
                                                           f"10.0.{rng.integers(0, 4)}.{rng.integers(1, 250)}/32"]))
            rules.append(rule)
        rules.append({"direction": "egress", "remote_ip_prefix": "0.0.0.0/0", "priority": 100})
        rules.append({"direction": "egress", "ethertype": "IPv6", "remote_ip_prefix": "::/0", "priority": 100})
        sgs.append({"name": name, "rules": rules})
    topo["security_groups"] = sgs
    insts = []
    for i in range(instances):
        k = i % 4
        host = 10 + i // 4
        inst = {"name": f"ecs{i:03d}", "flavor": "s6.large.2" if i % 7 else "c7.xlarge.2", "subnet": f"sn{k}",
                "ip": f"10.0.{k}.{host}", "ipv6": f"fd00:0:{k}::{host:x}",
                "security_groups": [gnames[int(x)] for x in rng.choice(groups, size=int(rng.integers(1, 4)), replace=False)]}
        if i % 10 == 0:
            inst["eip"] = f"100.64.{i // 256}.{i % 256}"
        insts.append(inst)
    insts.append({"name": "shared-db", "flavor": "s6.large.2", "subnet": "shared-a", "ip": "10.1.0.10",
                  "security_groups": [gnames[0]]})
    topo["instances"] = insts
    return topo


LOCALITIES = ("generated", "uniform")


def generated_traffic(topo: dict, packets: int = 1_000_000, flows: int = 50_000, seed: int = 2,
                      locality: str = "generated") -> PacketBatch:
    """``packets`` packets in ``flows`` flows, interleaved, 1 ms apart, as one PacketBatch.

    Packet k of a flow goes client to server when k is even, back when odd; TCP flows open with SYN,
    SYN-ACK and go on with ACKs, a few closing with FIN.

    ``locality``: ``generated`` (each flow lives for a while: it starts at a random point and its
    packets follow at random gaps, as in a real capture) or ``uniform`` (every packet belongs to a
    flow drawn uniformly from all of them, over the whole capture: nearly every packet touches a
    connection-table entry no recent packet touched, the cache-miss worst case)."""
    if locality not in LOCALITIES:
        raise ValueError(f"locality {locality!r} is not one of {', '.join(LOCALITIES)}")
    rng = np.random.default_rng(seed)
    insts = topo["instances"]
    n_inst = len(insts)
    ip4 = np.array([_v4(x["ip"]) for x in insts], np.uint64)
    v6_lo = np.array([_v6_lo(x.get("ipv6")) for x in insts], np.uint64)
    v6_hi = np.uint64(0xFD00000000000000)
    # flows: (kind, a, b, proto, sport, dport)
    kind = rng.choice(4, size=flows, p=[0.6, 0.2, 0.1, 0.1])  # 0 east-west v4, 1 internet->eip, 2 v6, 3 icmp
    a = rng.integers(0, n_inst, flows)
    b = rng.integers(0, n_inst, flows)
    sport = rng.integers(32768, 61000, flows).astype(np.uint16)
    dport = rng.choice(np.array(SERVICE_PORTS + [1000, 1050, 53], np.uint16), size=flows)
    proto = np.where(kind == 3, 1, np.where(rng.random(flows) < 0.85, 6, 17)).astype(np.uint8)
    # packets: each flow starts at a random point of the capture and its packets follow at random
    # gaps (mean 50 packet slots), interleaved with the other flows active at that time — as in a
    # real capture, where a connection lives for a while, not for the whole capture
    flow_of = rng.integers(0, flows, packets)
    start = rng.random(flows) * packets
    seq = _running_count(flow_of)
    when = start[flow_of] + seq * 50.0 * rng.exponential(1.0, packets)
    if locality == "generated":
        order = np.argsort(when, kind="stable")
        flow_of = flow_of[order]
    seq = _running_count(flow_of)
    reply = (seq % 2 == 1)
    f = flow_of
    cols = {name: np.zeros(packets, dtype) for name, dtype in PACKET_COLUMNS.items()}
    cols["ts"] = 1_700_000_000.0 + np.arange(packets, dtype=np.float64) * 1e-3
    cols["src_mac"][:] = -1
    cols["icmp_type"][:] = -1
    cols["icmp_code"][:] = -1
    is6 = kind[f] == 2
    cols["l3"] = np.where(is6, 6, 4).astype(np.uint8)
    src_a = np.where(kind[f] == 1, np.uint64(0xC6336407), ip4[a[f]])  # 198.51.100.7 for Internet flows
    dst_b = ip4[b[f]]
    src_lo = np.where(is6, v6_lo[a[f]], src_a)
    dst_lo = np.where(is6, v6_lo[b[f]], dst_b)
    hi = np.where(is6, v6_hi, np.uint64(0))
    cols["src_lo"] = np.where(reply, dst_lo, src_lo).astype(np.uint64)
    cols["dst_lo"] = np.where(reply, src_lo, dst_lo).astype(np.uint64)
    cols["src_hi"] = hi.astype(np.uint64)
    cols["dst_hi"] = hi.astype(np.uint64)
    p = proto[f]
    cols["proto"] = p
    tcpudp = p != 1
    cols["sport"] = np.where(tcpudp, np.where(reply, dport[f], sport[f]), 0).astype(np.uint16)
    cols["dport"] = np.where(tcpudp, np.where(reply, sport[f], dport[f]), 0).astype(np.uint16)
    flags = np.where(seq == 0, SYN, np.where(seq == 1, SYN | ACK, ACK))
    flags = np.where((seq > 6) & (rng.random(packets) < 0.05), FIN | ACK, flags)
    cols["tcp_flags"] = np.where(p == 6, flags, 0).astype(np.uint16)
    cols["icmp_type"] = np.where(p == 1, np.where(reply, 0, 8), -1).astype(np.int16)
    cols["icmp_code"] = np.where(p == 1, 0, -1).astype(np.int16)
    cols["icmp_id"] = np.where(p == 1, f % 65536, 0).astype(np.uint16)
    return PacketBatch(cols)


def _running_count(keys: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions have the same key."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sk)) + 1]
    idx = np.arange(len(keys))
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    out = np.empty(len(keys), np.int64)
    out[order] = idx - run_start
    return out


def _v4(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def _v6_lo(text: str | None) -> int:
    if not text:
        return 0
    import ipaddress

    return int(ipaddress.ip_address(text)) & ((1 << 64) - 1)


def write_pcap(path: str, batch: PacketBatch) -> None:
    """Write parsed packets (IPv4/IPv6 with TCP, UDP or ICMP) back as an Ethernet pcap (microsecond
    timestamps), vectorised: frames are built per protocol with NumPy and scattered into one buffer,
    written in chunks. For benchmarks: checksums are left zero."""
    c = batch.columns
    n = len(batch)
    chunk = 1 << 20
    with partial_file(path, "wb") as fh:  # PATH.partial, renamed once whole
        fh.write(np.array([0xA1B2C3D4], "<u4").tobytes() + np.array([2, 4], "<u2").tobytes()
                 + np.array([0, 0, 262144, 1], "<u4").tobytes())
        for s in range(0, n, chunk):
            fh.write(_records({k: v[s:s + chunk] for k, v in c.items()}))


def _records(c: dict[str, np.ndarray]) -> bytes:
    n = len(c["ts"])
    v6 = c["l3"] == 6
    proto = c["proto"]
    l4len = np.where(proto == 6, 20, 8)
    iplen = np.where(v6, 40, 20)
    flen = 14 + iplen + l4len
    rec = 16 + flen
    off = np.concatenate([[0], np.cumsum(rec)[:-1]]).astype(np.int64)
    buf = np.zeros(int(rec.sum()), np.uint8)

    def put(rows: np.ndarray, at: int, data: np.ndarray) -> None:
        """Write ``data`` (len(rows) x k bytes) at offset ``at`` of each selected record."""
        idx = off[rows][:, None] + at + np.arange(data.shape[1])
        buf[idx] = data

    def be(values: np.ndarray, width: int) -> np.ndarray:
        v = values.astype(np.uint64)
        return np.stack([(v >> np.uint64(8 * (width - 1 - k))) & np.uint64(0xFF) for k in range(width)], axis=1).astype(np.uint8)

    def le(values: np.ndarray, width: int) -> np.ndarray:
        return be(values, width)[:, ::-1]

    allr = np.arange(n)
    sec = np.floor(c["ts"]).astype(np.int64)
    usec = np.round((c["ts"] - sec) * 1e6).astype(np.int64)
    put(allr, 0, le(sec, 4))
    put(allr, 4, le(usec, 4))
    put(allr, 8, le(flen, 4))
    put(allr, 12, le(flen, 4))
    put(allr, 16, np.tile(np.frombuffer(b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", np.uint8), (n, 1)))
    put(allr, 28, np.where(v6[:, None], np.array([[0x86, 0xDD]], np.uint8), np.array([[0x08, 0x00]], np.uint8)))
    r4, r6 = np.flatnonzero(~v6), np.flatnonzero(v6)
    ip = 30
    if len(r4):
        put(r4, ip, np.tile(np.array([[0x45, 0]], np.uint8), (len(r4), 1)))
        put(r4, ip + 2, be(20 + l4len[r4], 2))
        put(r4, ip + 8, np.tile(np.array([[64]], np.uint8), (len(r4), 1)))
        put(r4, ip + 9, proto[r4][:, None])
        put(r4, ip + 12, be(c["src_lo"][r4], 4))
        put(r4, ip + 16, be(c["dst_lo"][r4], 4))
    if len(r6):
        put(r6, ip, np.tile(np.array([[0x60, 0, 0, 0]], np.uint8), (len(r6), 1)))
        put(r6, ip + 4, be(l4len[r6], 2))
        put(r6, ip + 6, proto[r6][:, None])
        put(r6, ip + 7, np.tile(np.array([[64]], np.uint8), (len(r6), 1)))
        put(r6, ip + 8, np.concatenate([be(c["src_hi"][r6], 8), be(c["src_lo"][r6], 8)], axis=1))
        put(r6, ip + 24, np.concatenate([be(c["dst_hi"][r6], 8), be(c["dst_lo"][r6], 8)], axis=1))
    l4 = off * 0 + 30 + iplen  # offset of the transport header within each record
    for rows in (np.flatnonzero(proto == 6), np.flatnonzero(proto == 17)):
        if len(rows):
            idx = off[rows][:, None] + l4[rows][:, None] + np.arange(4)
            buf[idx] = np.concatenate([be(c["sport"][rows], 2), be(c["dport"][rows], 2)], axis=1)
    rows = np.flatnonzero(proto == 6)
    if len(rows):
        base = off[rows] + l4[rows]
        buf[base + 12] = 0x50
        buf[base + 13] = c["tcp_flags"][rows].astype(np.uint8)
    rows = np.flatnonzero(proto == 17)
    if len(rows):
        base = off[rows] + l4[rows]
        buf[base + 5] = 8
    rows = np.flatnonzero((proto == 1) | (proto == 58))
    if len(rows):
        base = off[rows] + l4[rows]
        buf[base] = c["icmp_type"][rows].astype(np.uint8)
        buf[base + 1] = c["icmp_code"][rows].astype(np.uint8)
        buf[base + 4] = (c["icmp_id"][rows] >> 8).astype(np.uint8)
        buf[base + 5] = (c["icmp_id"][rows] & 0xFF).astype(np.uint8)
    return buf.tobytes()


def limits_topology(instances: int = 6000, groups: int = 5, quota_rules: int = 120, address_entries: int = 1000,
                    seed: int = 3) -> dict:
    """A topology at the cloud's documented limits, for the big-topology benchmark.

    ``instances`` instances in one VPC (subnets of up to 16,000 addresses), every NIC bound to the
    same ``groups`` groups (5 is the per-NIC limit), so each group has ``instances`` members (6,000
    is the per-group limit). Each group has, per direction, ``quota_rules`` quota-counted rules (120
    is the quota: remote-group, address-group and inconsecutive-port rules) and 10 plain prefix
    rules. Two IPv4 address groups of ``address_entries`` entries each (single addresses and
    prefixes), one IPv6 address group. About one instance in a thousand is of a legacy x86 family and one in a thousand of a
    Kai1 family, so the flavor rules of S10 apply.
    """
    rng = np.random.default_rng(seed)
    per_subnet = 16000
    n_subnets = max(1, -(-instances // per_subnet))
    subnets = [{"name": f"sn{k}", "cidr": f"10.{k // 4}.{(k % 4) * 64}.0/18"} for k in range(n_subnets)]
    if n_subnets > 1024:
        raise ValueError("limits_topology: at most 16,384,000 instances")
    ag = []
    for a in range(2):
        entries = []
        for e in range(address_entries):
            x = int(rng.integers(0, 1 << 24))
            if e % 4 == 3:
                entries.append(f"{100 + a}.{(x >> 16) & 255}.{(x >> 8) & 255}.0/24")
            else:
                entries.append(f"{100 + a}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}")
        ag.append({"name": f"partners{a}", "ip_version": 4, "ip_set": entries})
    ag.append({"name": "office6", "ip_version": 6, "ip_set": ["2001:db8:100::/48", "2001:db8:200::/48"]})
    gnames = [f"sg{g}" for g in range(groups)]
    sgs = []
    for g, name in enumerate(gnames):
        rules = []
        for direction in ("ingress", "egress"):
            for r in range(quota_rules):
                kind = r % 3
                rule: dict = {"direction": direction, "priority": int(rng.choice([1, 10, 50, 100])), "protocol": "tcp"}
                if rng.random() < 0.1:
                    rule["action"] = "deny"
                if kind == 0:
                    rule["remote_group_id"] = gnames[int(rng.integers(0, groups))]
                    rule["multiport"] = str(int(rng.choice(SERVICE_PORTS)))
                elif kind == 1:
                    rule["remote_address_group_id"] = f"partners{int(rng.integers(0, 2))}"
                    rule["multiport"] = str(int(rng.integers(1000, 3000)))
                else:  # inconsecutive ports from a prefix
                    ports = sorted(rng.choice(np.arange(3000, 4000), size=3, replace=False))
                    rule["multiport"] = ",".join(str(int(p)) for p in ports)
                    rule["remote_ip_prefix"] = f"192.168.{int(rng.integers(0, 256))}.0/24"
                rules.append(rule)
            for r in range(10):
                rules.append({"direction": direction, "priority": 100, "protocol": "udp",
                              "multiport": f"{5000 + r * 10}-{5000 + r * 10 + 5}", "remote_ip_prefix": "10.0.0.0/8"})
        sgs.append({"name": name, "rules": rules})
    insts = []
    for i in range(instances):
        k = i // per_subnet
        j = i % per_subnet + 4
        base = (k // 4, (k % 4) * 64)
        ip = f"10.{base[0]}.{base[1] + (j >> 8)}.{j & 255}"
        flavor = "c2.large.2" if i % 997 == 1 else ("kai1s.large.2" if i % 991 == 2 else "s6.large.2")
        insts.append({"name": f"ecs{i:06d}", "flavor": flavor, "subnet": f"sn{k}", "ip": ip, "security_groups": list(gnames)})
    return {"version": 1, "vpcs": [{"name": "big", "cidr": "10.0.0.0/8", "subnets": subnets}],
            "address_groups": ag, "security_groups": sgs, "instances": insts}
