"""Hypothesis strategies: random valid topologies (every feature of SPEC §2) and packet sequences
that exercise them (replies, retransmissions, FIN/RST, ICMP errors, fragments, time gaps across
every timeout). Shared by the differential and property tests."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import MALFORMED, NON_IP, Packet

FLAVORS = ["s6.large.2", "s1.medium", "c2.large", "kai1s.large.2", "kai1.small", None]
PORTS = [1, 22, 53, 80, 443, 3306, 8080, 65535]
GAPS = [0.0, 0.5, 1.0, 29.0, 30.0, 30.5, 179.0, 180.0, 181.0, 599.0, 600.0, 601.0]
EXTERNAL4 = ["8.8.8.8", "198.51.100.7", "100.125.1.250", "169.254.169.254", "255.255.255.255", "224.0.0.5", "100.125.0.1"]
EXTERNAL6 = ["2001:db8::1", "ff02::1"]
TCP_FLAGS = ["S", "SA", "A", "PA", "FA", "R", "RA", "SF", ""]


def _v6(vpc: int, sub: int, host: int) -> str:
    return f"fd00:{vpc}:{sub}::{host:x}"


@st.composite
def multiports(draw) -> str:
    n = draw(st.integers(1, 3))
    cuts = sorted(draw(st.sets(st.sampled_from(PORTS + [21, 25, 1000, 2000]), min_size=n, max_size=n)))
    segs = []
    for p in cuts:
        if segs and p <= segs[-1][1]:
            continue
        if draw(st.booleans()):
            segs.append((p, p))
        else:
            segs.append((p, min(65535, p + draw(st.sampled_from([1, 2, 100])))))
    out = []
    for lo, hi in segs:
        if out and lo <= out[-1][1]:
            continue
        out.append((lo, hi))
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in out)


@st.composite
def rules(draw, groups: list[str], ags4: list[str], ags6: list[str], prefixes4: list[str], prefixes6: list[str]) -> dict:
    version = draw(st.sampled_from([4, 4, 4, 6]))
    rule: dict = {
        "direction": draw(st.sampled_from(["ingress", "egress"])),
        "action": draw(st.sampled_from(["allow", "allow", "deny"])),
        "priority": draw(st.sampled_from([1, 1, 2, 50, 100])),
        "ethertype": f"IPv{version}",
    }
    proto = draw(st.sampled_from([None, "tcp", "tcp", "udp", "icmp", "gre", 132]))
    if proto == "icmp" and version == 6:
        proto = "icmpv6"
    if proto is not None:
        rule["protocol"] = proto
    if proto in ("tcp", "udp"):
        form = draw(st.sampled_from(["none", "multiport", "multiport", "range"]))
        if form == "multiport":
            rule["multiport"] = draw(multiports())
        elif form == "range":
            lo = draw(st.sampled_from(PORTS))
            rule["port_range_min"] = lo
            rule["port_range_max"] = min(65535, lo + draw(st.sampled_from([0, 10, 1000])))
    elif proto in ("icmp", "icmpv6") and draw(st.booleans()):
        rule["port_range_min"] = draw(st.sampled_from([0, 3, 8, 128, 129, 1]))
        if draw(st.booleans()):
            rule["port_range_max"] = draw(st.sampled_from([0, 1, 3]))
    remote = draw(st.sampled_from(["none", "prefix", "prefix", "group", "group", "ag"]))
    if remote == "prefix":
        rule["remote_ip_prefix"] = draw(st.sampled_from(prefixes4 if version == 4 else prefixes6))
    elif remote == "group" and groups:
        rule["remote_group_id"] = draw(st.sampled_from(groups))
    elif remote == "ag" and (ags4 if version == 4 else ags6):
        rule["remote_address_group_id"] = draw(st.sampled_from(ags4 if version == 4 else ags6))
    if draw(st.integers(0, 9)) == 0:
        rule["enabled"] = False
    return rule


@st.composite
def topologies(draw) -> dict:
    """A valid topology dict."""
    n_vpc = draw(st.integers(1, 3))
    vpcs, subnets = [], []
    n_acl = draw(st.integers(0, 2))
    acl_names = [f"acl{j}" for j in range(n_acl)]
    for v in range(n_vpc):
        subs = []
        for k in range(draw(st.integers(1, 2))):
            sub = {"name": f"sn{v}-{k}", "cidr": f"10.{v}.{k}.0/24"}
            if draw(st.booleans()):
                sub["ipv6_cidr"] = f"fd00:{v}:{k}::/64"
            if acl_names and draw(st.booleans()):
                sub["network_acl"] = draw(st.sampled_from(acl_names))
            subs.append(sub)
            subnets.append((v, k, sub))
        vpcs.append({"name": f"vpc{v}", "cidr": f"10.{v}.0.0/16", "subnets": subs})
    topo: dict = {"version": 1, "vpcs": vpcs}
    pairs = [(a, b) for a in range(n_vpc) for b in range(a + 1, n_vpc)]
    peer = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    if peer:
        topo["peerings"] = [{"name": f"peer{a}{b}", "vpcs": [f"vpc{a}", f"vpc{b}"]} for a, b in peer]
    if draw(st.booleans()):
        topo["private_networks"] = [{"name": "office", "cidr": "172.16.0.0/24",
                                     "vpcs": draw(st.lists(st.sampled_from([f"vpc{v}" for v in range(n_vpc)]), min_size=1, unique=True))}]
    ags4 = []
    ags6 = []
    ag_list = []
    if draw(st.booleans()):
        ag_list.append({"name": "ag4", "ip_version": 4, "ip_set": draw(st.lists(st.sampled_from(
            ["10.0.0.10", "10.0.0.0/28", "10.1.0.5-10.1.0.40", "198.51.100.0/24", "172.16.0.5", "8.8.8.8", "0.0.0.0/0"]),
            min_size=1, max_size=3, unique=True))})
        ags4.append("ag4")
    if draw(st.booleans()):
        ag_list.append({"name": "ag6", "ip_version": 6, "ip_set": draw(st.lists(st.sampled_from(
            ["fd00:0:0::10", "fd00::/16", "2001:db8::/32", "fd00:1:0::1-fd00:1:0::ff"]), min_size=1, max_size=2, unique=True))})
        ags6.append("ag6")
    if ag_list:
        topo["address_groups"] = ag_list
    prefixes4 = ["0.0.0.0/0", "0.0.0.0/0", "10.0.0.0/16", "10.0.0.0/24", "10.0.0.10/32", "10.1.0.0/16", "172.16.0.0/24",
                 "198.51.100.0/24", "100.125.0.0/16", "100.125.0.1/32", "8.8.8.8/32", "203.0.113.0/24", "10.0.0.21/32",
                 "10.0.0.100/32", "10.0.0.0/8"]
    prefixes6 = ["::/0", "fd00::/16", "fd00:0:0::/64", "2001:db8::/32", "fd00:0:0::10/128"]
    n_groups = draw(st.integers(1, 4))
    gnames = [f"sg{g}" for g in range(n_groups)]
    groups = []
    for g in gnames:
        rs = draw(st.lists(rules(gnames, ags4, ags6, prefixes4, prefixes6), max_size=8))
        groups.append({"name": g, "rules": rs})
    topo["security_groups"] = groups
    instances = []
    host = 10
    eip = 10
    mac = 1
    for i in range(draw(st.integers(1, 5))):
        nics = []
        for j in range(draw(st.sampled_from([1, 1, 1, 2]))):
            v, k, sub = draw(st.sampled_from(subnets))
            nic = {"subnet": sub["name"], "ip": f"10.{v}.{k}.{host}"}
            if "ipv6_cidr" in sub and draw(st.booleans()):
                nic["ipv6"] = _v6(v, k, host)
                if draw(st.booleans()):
                    nic["ipv6_internet"] = True
            if draw(st.integers(0, 3)) == 0:
                nic["extra_ips"] = [f"10.{v}.{k}.{host + 100}"]
            host += 1
            if draw(st.booleans()):
                nic["eip"] = f"203.0.113.{eip}"
                eip += 1
            if draw(st.integers(0, 2)) == 0:
                nic["mac"] = f"fa:16:3e:00:00:{mac:02x}"
                mac += 1
                if draw(st.booleans()):
                    nic["source_dest_check"] = False
            if draw(st.integers(0, 4)) > 0:
                nic["security_groups"] = draw(st.lists(st.sampled_from(gnames), min_size=1, max_size=3, unique=True))
            nics.append(nic)
        inst = {"name": f"ecs{i}"}
        flavor = draw(st.sampled_from(FLAVORS))
        if flavor:
            inst["flavor"] = flavor
        if len(nics) == 1:
            inst.update(nics[0])
        else:
            inst["nics"] = nics
        instances.append(inst)
    topo["instances"] = instances
    # virtual IP held by an instance with a NIC in that subnet
    if draw(st.booleans()):
        inst = draw(st.sampled_from(instances))
        first = inst if "subnet" in inst else inst["nics"][0]
        sub = first["subnet"]
        v, k = (int(x) for x in sub[2:].split("-"))
        holders = [x["name"] for x in instances if any(n["subnet"] == sub for n in ([x] if "subnet" in x else x["nics"]))]
        topo["virtual_ips"] = [{"ip": f"10.{v}.{k}.21", "subnet": sub, "instances": holders[:2]}]
    if draw(st.booleans()):
        sub_v, sub_k, sub = draw(st.sampled_from(subnets))
        backends_pool = [x["name"] for x in instances if any(n["subnet"].startswith(f"sn{sub_v}-") for n in ([x] if "subnet" in x else x["nics"]))]
        if backends_pool:
            listeners = []
            for port, proto in draw(st.lists(st.sampled_from([(80, "tcp"), (53, "udp"), (443, "https"), (8080, "http")]), min_size=1, max_size=3, unique_by=lambda x: x[0])):
                listener = {"protocol": proto, "port": port,
                            "backends": [{"instance": b, "port": draw(st.sampled_from([80, 8080, 53]))}
                                         for b in draw(st.lists(st.sampled_from(backends_pool), min_size=1, max_size=3, unique=True))]}
                tci = draw(st.sampled_from([None, True, False]))
                if tci is not None:
                    listener["transfer_client_ip"] = tci
                listeners.append(listener)
            lb = {"name": "lb0", "type": draw(st.sampled_from(["shared", "dedicated"])), "vip": f"10.{sub_v}.{sub_k}.100",
                  "subnet": sub["name"], "listeners": listeners}
            if draw(st.booleans()):
                lb["eip"] = "203.0.113.200"
            topo["load_balancers"] = [lb]
    if acl_names:
        acls = []
        for name in acl_names:
            acl = {"name": name}
            for key in ("inbound_rules", "outbound_rules"):
                acl_rules = []
                for _ in range(draw(st.integers(0, 4))):
                    ver = draw(st.sampled_from([4, 4, 6]))
                    r: dict = {"action": draw(st.sampled_from(["allow", "allow", "deny"])), "ip_version": ver}
                    proto = draw(st.sampled_from([None, "tcp", "udp", "icmp"]))
                    if proto == "icmp" and ver == 6:
                        proto = "icmpv6"
                    if proto:
                        r["protocol"] = proto
                    if draw(st.booleans()):
                        r["source_ip_address"] = draw(st.sampled_from(prefixes4 if ver == 4 else prefixes6))
                    if draw(st.booleans()):
                        r["destination_ip_address"] = draw(st.sampled_from(prefixes4 if ver == 4 else prefixes6))
                    if proto in ("tcp", "udp") and draw(st.booleans()):
                        r["destination_port"] = draw(multiports())
                    if proto in ("tcp", "udp") and draw(st.integers(0, 3)) == 0:
                        r["source_port"] = draw(multiports())
                    if draw(st.integers(0, 6)) == 0:
                        r["enabled"] = False
                    acl_rules.append(r)
                acl[key] = acl_rules
            acls.append(acl)
        topo["network_acls"] = acls
    topology_from_data(topo, "generated.yaml")  # must be valid
    return topo


def addresses(topo: dict) -> tuple[list[str], list[str], list[int]]:
    """(IPv4 addresses, IPv6 addresses, MACs) that packets may use."""
    v4, v6, macs = list(EXTERNAL4), list(EXTERNAL6), []
    for inst in topo["instances"]:
        for nic in [inst] if "subnet" in inst else inst["nics"]:
            v4.append(nic["ip"])
            v4.extend(nic.get("extra_ips", []))
            if "eip" in nic:
                v4.append(nic["eip"])
            if "ipv6" in nic:
                v6.append(nic["ipv6"])
            if "mac" in nic:
                macs.append(int(nic["mac"].replace(":", ""), 16))
    for vip in topo.get("virtual_ips", []):
        v4.append(vip["ip"])
    for lb in topo.get("load_balancers", []):
        v4.append(lb["vip"])
        if "eip" in lb:
            v4.append(lb["eip"])
    v4 += ["10.0.0.200", "10.1.0.200", "172.16.0.5"]
    v6 += ["fd00:0:0::200"]
    return v4, v6, macs


@st.composite
def packet_sequences(draw, topo: dict, max_packets: int = 40) -> list[Packet]:
    """Interleaved flows between the topology's addresses (NIC addresses most often), with replies,
    retransmissions, FIN/RST, ICMP errors about earlier flows, fragments and time gaps chosen at the
    timeout boundaries."""
    v4, v6, macs = addresses(topo)
    nic4 = [a for a in v4 if a.startswith("10.")] or v4
    pools = {4: (nic4, v4), 6: (v6, v6)}
    flows: list[tuple] = []
    packets: list[Packet] = []
    t = 1000.0
    bits = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}
    for _ in range(draw(st.integers(1, max_packets))):
        if not flows or draw(st.integers(0, 3)) == 0:
            version = draw(st.sampled_from([4, 4, 4, 6]))
            likely, anyaddr = pools[version]
            src = int(ipaddress.ip_address(draw(st.sampled_from(likely if draw(st.booleans()) else anyaddr))))
            dst = int(ipaddress.ip_address(draw(st.sampled_from(likely if draw(st.booleans()) else anyaddr))))
            proto = draw(st.sampled_from([6, 6, 6, 17, 17, 1 if version == 4 else 58, 47]))
            flows.append((version, src, dst, proto, draw(st.sampled_from([40000, 40001, 53])), draw(st.sampled_from(PORTS))))
            flow = flows[-1]
            reply = False
        else:
            flow = draw(st.sampled_from(flows))
            reply = draw(st.booleans())
        version, src, dst, proto, sport, dport = flow
        t += draw(st.sampled_from(GAPS))
        if draw(st.integers(0, 15)) == 0:
            t -= draw(st.sampled_from([1.0, 100.0]))  # out of time order
        s, d, sp, dp = (dst, src, dport, sport) if reply else (src, dst, sport, dport)
        mac = draw(st.sampled_from(macs)) if macs and draw(st.integers(0, 4)) == 0 else -1
        pkt = Packet(ts=t, l3=version, src=s, dst=d, proto=proto, src_mac=mac)
        if proto in (6, 17):
            pkt.sport, pkt.dport = sp, dp
        if proto == 6:
            flags = draw(st.sampled_from(TCP_FLAGS))
            if not reply and draw(st.booleans()):
                flags = "S"
            elif reply and draw(st.booleans()):
                flags = "SA"
            for ch in flags:
                pkt.tcp_flags |= bits[ch]
        if proto in (1, 58):
            echo = (8, 0) if proto == 1 else (128, 129)
            error = 3 if proto == 1 else 1
            pkt.icmp_type = draw(st.sampled_from([echo[1] if reply else echo[0]] * 3 + [13 if proto == 1 else 135, error]))
            pkt.icmp_code = draw(st.sampled_from([0, 0, 1, 3]))
            pkt.icmp_id = draw(st.sampled_from([1, 1, 2]))
            if pkt.icmp_type == error:
                fv, fs, fd, fp, fsp, fdp = draw(st.sampled_from(flows))
                if fv == version and draw(st.integers(0, 5)) > 0:
                    # usually an error about an earlier flow, sent back towards its source
                    pkt.src, pkt.dst = fd, fs
                    pkt.inner_l3, pkt.inner_src, pkt.inner_dst, pkt.inner_proto = fv, fs, fd, fp
                    pkt.inner_sport, pkt.inner_dport = (fsp, fdp) if fp in (6, 17) else (1, 0)
        choice = draw(st.integers(0, 24))
        if choice == 0:
            pkt.more_fragments, pkt.frag_id = 1, 7
        elif choice in (1, 2):
            pkt.frag_offset, pkt.frag_id = 185, 7
        elif choice == 3:
            pkt.status, pkt.l3 = NON_IP, 0
        elif choice == 4:
            pkt.status = MALFORMED
        packets.append(pkt)
    return packets
