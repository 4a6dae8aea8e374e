"""Hypothesis strategies: random valid topologies (every feature of SPEC §2) and packet sequences
that exercise them (replies, retransmissions, FIN/RST, ICMP errors, fragments, time gaps across
every timeout). Shared by the differential and property tests."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import MALFORMED, NON_IP, Packet
from sgdp.engine.reference import lb_hash

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
    open_rules = [{"direction": "ingress"}, {"direction": "egress"},
                  {"direction": "ingress", "ethertype": "IPv6"}, {"direction": "egress", "ethertype": "IPv6"},
                  {"direction": "ingress", "protocol": "tcp", "priority": 100}]
    for g in gnames:
        rs = draw(st.lists(rules(gnames, ags4, ags6, prefixes4, prefixes6), max_size=8))
        if draw(st.integers(0, 2)) > 0:
            # most groups let a good part of the traffic through, so that connections open, are
            # replied to, age and close (a random rule set mostly denies)
            rs += [dict(r) for r in draw(st.lists(st.sampled_from(open_rules), min_size=1, max_size=4, unique_by=str))]
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
    lbs = []
    for j in range(draw(st.sampled_from([0, 1, 1, 2]))):
        # a load balancer in a random subnet's VPC; its VIP in that subnet or another of the VPC (a
        # dedicated LB whose VIP lies outside its backend subnet forwards from the subnet's third
        # address); listeners of every kind with one to three backends in that VPC
        sub_v, sub_k, sub = draw(st.sampled_from(subnets))
        backends_pool = [x["name"] for x in instances if any(n["subnet"].startswith(f"sn{sub_v}-") for n in ([x] if "subnet" in x else x["nics"]))]
        if not backends_pool:
            continue
        vip_v, vip_k, _ = draw(st.sampled_from([x for x in subnets if x[0] == sub_v]))
        listeners = []
        kinds = [(80, "tcp"), (53, "udp"), (443, "https"), (8080, "http"), (22, "tcp"), (443, "tcp"), (80, "udp"),
                 (3306, "tcp"), (8080, "tcp")]
        for port, proto in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=4,
                                         unique_by=lambda x: (x[0], x[1] == "udp"))):
            listener = {"protocol": proto, "port": port,
                        "backends": [{"instance": b, "port": draw(st.sampled_from([80, 8080, 53, 443, 22]))}
                                     for b in draw(st.lists(st.sampled_from(backends_pool), min_size=1, max_size=3))]}
            tci = draw(st.sampled_from([None, True, False]))
            if tci is not None:
                listener["transfer_client_ip"] = tci
            listeners.append(listener)
        lb = {"name": f"lb{j}", "type": draw(st.sampled_from(["shared", "dedicated"])), "vip": f"10.{vip_v}.{vip_k}.{100 + j}",
              "subnet": sub["name"], "listeners": listeners}
        if draw(st.booleans()):
            lb["eip"] = f"203.0.113.{200 + j}"
        lbs.append(lb)
    if lbs:
        topo["load_balancers"] = lbs
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
                if draw(st.booleans()):
                    acl_rules.append({"action": "allow"})
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
    v4 += ["10.0.0.200", "10.1.0.200", "172.16.0.5", "172.16.0.6", "10.0.0.2", "10.0.1.2"]
    v6 += ["fd00:0:0::200"]
    return v4, v6, macs


def lb_views(topo: dict) -> list[dict]:
    """Per load balancer: its addresses, its backend-side source addresses and, per listener, the
    IP protocol, port and the backends' (address, port)."""
    nic_ip = {}
    for inst in topo["instances"]:
        nics = [inst] if "subnet" in inst else inst["nics"]
        nic_ip[inst["name"]] = nics[0]["ip"]      # close enough: the generator's backends' first NIC
    out = []
    for lb in topo.get("load_balancers", []):
        addrs = [lb["vip"]] + ([lb["eip"]] if "eip" in lb else [])
        v, k = (int(x) for x in lb["subnet"][2:].split("-"))
        if lb["type"] == "shared":
            sources = ["100.125.0.1"]
        elif lb["vip"].startswith(f"10.{v}.{k}."):
            sources = [lb["vip"]]
        else:
            sources = [f"10.{v}.{k}.2"]
        listeners = [(17 if li["protocol"] == "udp" else 6, li["port"],
                      [(nic_ip[b["instance"]], b["port"]) for b in li["backends"]]) for li in lb["listeners"]]
        out.append({"addrs": addrs, "sources": sources, "listeners": listeners})
    return out


ICMP4_ERRORS = [3, 4, 5, 11, 12]
ICMP6_ERRORS = [1, 2, 3, 4]


@st.composite
def packet_sequences(draw, topo: dict, max_packets: int = 40) -> list[Packet]:
    """Interleaved flows between the topology's addresses (NIC addresses most often), with replies,
    retransmissions, FIN/RST, ICMP errors of every type about earlier flows (TCP, UDP, echo),
    fragments (first fragments, later ones with and without their first, across the 30 s memory),
    time gaps chosen at the timeout boundaries, and load-balancer traffic: clients (external, VPC,
    private network) to listeners (same source ports from different clients, ports without a
    listener), replies as the backend sends them (to the client, to the LB's source address) and as
    the LB sends them, and the forwarded leg as captured on a backend."""
    v4, v6, macs = addresses(topo)
    nic4 = [a for a in v4 if a.startswith("10.")] or v4
    pools = {4: (nic4, v4), 6: (v6, v6)}
    lbs = lb_views(topo)
    neighbours: dict[int, list[list[str]]] = {4: [], 6: []}
    internet: dict[int, list[str]] = {4: [], 6: []}
    by_vpc: dict[tuple[int, str], list[str]] = {}
    for inst in topo["instances"]:
        for nic in [inst] if "subnet" in inst else inst["nics"]:
            vpc = nic["subnet"].split("-")[0]
            by_vpc.setdefault((4, vpc), []).append(nic["ip"])
            if "ipv6" in nic:
                by_vpc.setdefault((6, vpc), []).append(nic["ipv6"])
                if nic.get("ipv6_internet"):
                    internet[6].append(nic["ipv6"])
            if "eip" in nic:
                internet[4] += [nic["eip"], nic["ip"]]
    nic_fixed = by_vpc.get((4, "sn0"), []) + by_vpc.get((4, "sn1"), []) + by_vpc.get((4, "sn2"), [])
    for (version, vpc), group in by_vpc.items():
        neighbours[version].append(group + ([f"10.{vpc[2:]}.0.200"] if version == 4 else []))
    clients4 = ["198.51.100.7", "198.51.100.8", "8.8.8.8", "172.16.0.5", "100.125.1.250"] + nic4
    flows: list[tuple] = []
    last_lb = None
    alts: list[list[tuple]] = []   # per flow: other forms its replies may take (load balancers)
    packets: list[Packet] = []
    t = 1000.0
    bits = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}
    ip = lambda a: int(ipaddress.ip_address(a))  # noqa: E731
    for _ in range(draw(st.integers(1, max_packets))):
        if not flows or draw(st.integers(0, 3)) == 0:
            forms: list[tuple] = []
            if lbs and draw(st.integers(0, 2)) == 0:
                who = draw(st.integers(0, 2))
                pool = clients4[:2] if who == 0 else (nic_fixed if who == 1 and nic_fixed else clients4)
                client = draw(st.sampled_from(pool))
                if last_lb is not None and draw(st.integers(0, 2)) == 0:
                    # another client with the same source port to the same listener
                    lb, (proto, port, backends), addr, cport = last_lb
                else:
                    lb = draw(st.sampled_from(lbs))
                    proto, port, backends = draw(st.sampled_from(lb["listeners"]))
                    addr = draw(st.sampled_from(lb["addrs"]))
                    cport = draw(st.sampled_from([40000, 40001, 53]))
                    last_lb = (lb, (proto, port, backends), addr, cport)
                bip, bport = draw(st.sampled_from(backends))
                if draw(st.integers(0, 3)) > 0:
                    # usually the backend the load balancer picks (S14's hash)
                    bip, bport = backends[lb_hash(4, ip(client), ip(addr), proto, cport, port) % len(backends)]
                if draw(st.integers(0, 3)) == 0:
                    # the forwarded leg as a capture on the backend shows it
                    flow = (4, ip(client), ip(bip), proto, cport, bport)
                else:
                    dport = port if draw(st.integers(0, 5)) > 0 else draw(st.sampled_from(PORTS))
                    flow = (4, ip(client), ip(addr), proto, cport, dport)
                    # the reply as the backend sends it: to the client, or to the LB's source address
                    forms.append((ip(bip), ip(client), bport, cport))
                    forms.append((ip(bip), ip(draw(st.sampled_from(lb["sources"]))), bport, cport + draw(st.sampled_from([0, 0, 1]))))
                flows.append(flow)
            else:
                version = draw(st.sampled_from([4, 4, 4, 6]))
                likely, anyaddr = pools[version]
                how = draw(st.integers(0, 5))
                if how <= 1 and neighbours[version]:
                    # two NICs of one VPC, or a NIC and a host of its VPC: there is a path
                    group = draw(st.sampled_from(neighbours[version]))
                    src = ip(draw(st.sampled_from(group)))
                    others = [a for a in group if ip(a) != src] or group
                    dst = ip(draw(st.sampled_from(others)))
                elif how == 2 and internet[version]:
                    # the Internet and a NIC that may reach it (EIP, IPv6 Internet), either way round
                    a, b = ip(draw(st.sampled_from(internet[version]))), ip(draw(st.sampled_from(EXTERNAL4[:2] if version == 4 else EXTERNAL6[:1])))
                    src, dst = (a, b) if draw(st.booleans()) else (b, a)
                else:
                    src = ip(draw(st.sampled_from(likely if draw(st.integers(0, 3)) > 0 else anyaddr)))
                    dst = ip(draw(st.sampled_from(likely if draw(st.integers(0, 3)) > 0 else anyaddr)))
                proto = draw(st.sampled_from([6, 6, 6, 17, 17, 1 if version == 4 else 58, 1 if version == 4 else 58, 47]))
                flows.append((version, src, dst, proto, draw(st.sampled_from([40000, 40001, 53])), draw(st.sampled_from(PORTS))))
            alts.append(forms)
            k = len(flows) - 1
            reply = False
        else:
            k = draw(st.integers(0, len(flows) - 1))
            reply = draw(st.booleans())
        version, src, dst, proto, sport, dport = flows[k]
        # mostly the short gaps of a conversation, often enough one at a timeout's boundary
        t += draw(st.sampled_from(GAPS if draw(st.integers(0, 3)) == 0 else [0.0, 0.001, 0.2, 1.0]))
        if draw(st.integers(0, 15)) == 0:
            t -= draw(st.sampled_from([1.0, 100.0]))  # out of time order
        s, d, sp, dp = (dst, src, dport, sport) if reply else (src, dst, sport, dport)
        if reply and alts[k] and draw(st.booleans()):
            s, d, sp, dp = draw(st.sampled_from(alts[k]))
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
            errors = ICMP4_ERRORS if proto == 1 else ICMP6_ERRORS
            error = draw(st.sampled_from(errors))
            pkt.icmp_type = draw(st.sampled_from([echo[1] if reply else echo[0]] * 3 + [13 if proto == 1 else 135, error, error]))
            pkt.icmp_code = draw(st.sampled_from([0, 0, 1, 3]))
            pkt.icmp_id = (sport % 3 + 1) if draw(st.integers(0, 4)) > 0 else draw(st.sampled_from([1, 2]))
            if pkt.icmp_type == error:
                fv, fs, fd, fp, fsp, fdp = draw(st.sampled_from(flows))
                if fv == version and draw(st.integers(0, 5)) > 0:
                    # usually an error about an earlier flow (TCP, UDP or echo), sent back towards its
                    # source by its destination or by a router on the way
                    pkt.src = fd if draw(st.integers(0, 3)) > 0 else ip("8.8.8.8" if version == 4 else "2001:db8::1")
                    pkt.dst = fs
                    pkt.inner_l3, pkt.inner_src, pkt.inner_dst, pkt.inner_proto = fv, fs, fd, fp
                    pkt.inner_sport, pkt.inner_dport = (fsp, fdp) if fp in (6, 17) else (draw(st.sampled_from([1, 2])), 0)
        if draw(st.integers(0, 11)) == 0:
            # an ICMP error about an earlier flow (TCP, UDP, echo, other), from its destination or
            # from a router, toward its source
            fv, fs, fd, fp, fsp, fdp = draw(st.sampled_from(flows))
            eproto = 1 if fv == 4 else 58
            pkt = Packet(ts=t, l3=fv, src=fd if draw(st.integers(0, 3)) > 0 else ip("8.8.8.8" if fv == 4 else "2001:db8::1"),
                         dst=fs, proto=eproto, src_mac=mac,
                         icmp_type=draw(st.sampled_from(ICMP4_ERRORS if fv == 4 else ICMP6_ERRORS)),
                         icmp_code=draw(st.sampled_from([0, 1, 3, 4])))
            pkt.inner_l3, pkt.inner_src, pkt.inner_dst, pkt.inner_proto = fv, fs, fd, fp
            pkt.inner_sport, pkt.inner_dport = (fsp, fdp) if fp in (6, 17) else ((fsp % 3 + 1), 0)
        choice = draw(st.integers(0, 24))
        if choice == 0:
            pkt.more_fragments, pkt.frag_id = 1, draw(st.sampled_from([7, 8]))
        elif choice in (1, 2):
            pkt.frag_offset, pkt.frag_id = 185, draw(st.sampled_from([7, 7, 8]))
            pkt.more_fragments = draw(st.sampled_from([0, 1]))
        elif choice == 3:
            pkt.status, pkt.l3 = NON_IP, 0
        elif choice == 4:
            pkt.status = MALFORMED
        packets.append(pkt)
    return packets
