"""Property tests (hypothesis) over random valid topologies and packet sequences.

Invariants, each following from SPEC §3:
* the engine never raises; every packet gets exactly one row; verdicts are one of the four classes
  and their counts add up (S15 "Nothing is dropped silently"); each row's fields agree with S7;
* S11: the reply (swapped addresses and ports) of an allowed packet, right after it, is allowed;
* S8 first match: removing a deny rule never turns an allowed first packet into a denied one
  (restricted to rules without inconsecutive ports: under S10 a Kai1 instance's cut point is the first
  inconsecutive-port rule, and removing that rule can bring later deny rules into effect);
* S8: an allow-all rule at priority 1, created first in the first group, never turns an allow into a
  deny;
* the dataplane is deterministic: two fresh engines agree on every column.
"""

from __future__ import annotations

import copy
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.engine.choice import make_engine
from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import PacketBatch
from sgdp.testing.scenario import packet_from_spec

SETTINGS = settings(max_examples=130, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])

FLAVORS = [None, "s6.large.2", "c7.xlarge.2", "s1.medium", "m1.large", "et2.large", "kai1s.large.2", "kai1.xlarge"]
MULTIPORTS = ["22", "80", "443", "53", "1-1024", "1", "65535", "1-65535", "22,80", "443,8000-8080", "22-24,25", "53,123"]
PREFIX4 = ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/16", "10.1.0.0/24", "10.0.0.10/32", "198.51.100.0/24",
           "203.0.113.0/24", "172.16.0.0/24", "100.125.0.0/16"]
PREFIX6 = ["::/0", "2407:c080::/32", "2001:db8::/32", "2407:c080:0:0::10/128"]
AG4 = ["10.0.0.0/16", "10.1.0.10-10.1.0.20", "10.0.0.10", "198.51.100.0/24", "172.16.0.0/24", "10.2.0.0/24",
       "203.0.113.10-203.0.113.20"]
AG6 = ["2407:c080::/32", "2001:db8::7", "2407:c080:1:0::10-2407:c080:1:0::20"]
PORTS = [22, 80, 443, 53, 8080, 40000, 1, 65535, 123, 3306]
FLAGS = ["S", "S", "SA", "A", "PA", "FA", "R"]
GAPS = [0.0, 0.0, 0.5, 1.0, 29.0, 31.0, 200.0, 601.0]


# ------------------------------------------------------------------------------------- topologies

@st.composite
def rules_for(draw, group, groups, address_groups, n):
    rules = []
    for k in range(n):
        eth = draw(st.sampled_from([4, 4, 6]))
        proto = draw(st.sampled_from([None, None, None, "tcp", "tcp", "udp", "icmp", "gre", 132]))
        if proto == "icmp" and eth == 6:
            proto = "icmpv6"
        rule = {
            "id": f"{group}-r{k}",
            "direction": draw(st.sampled_from(["ingress", "egress"])),
            "action": draw(st.sampled_from(["allow", "allow", "deny"])),
            "priority": draw(st.sampled_from([1, 1, 2, 50, 100])),
            "ethertype": "IPv4" if eth == 4 else "IPv6",
        }
        if proto is not None:
            rule["protocol"] = proto
        if proto in ("tcp", "udp") and draw(st.booleans()):
            rule["multiport"] = draw(st.sampled_from(MULTIPORTS))
        if proto in ("icmp", "icmpv6") and draw(st.booleans()):
            rule["port_range_min"] = draw(st.sampled_from([0, 3, 8] if eth == 4 else [1, 128, 129]))
            if draw(st.booleans()):
                rule["port_range_max"] = draw(st.sampled_from([0, 1, 3]))
        remote = draw(st.sampled_from(["none", "none", "prefix", "prefix", "group", "ag"]))
        if remote == "prefix":
            rule["remote_ip_prefix"] = draw(st.sampled_from(PREFIX4 if eth == 4 else PREFIX6))
        elif remote == "group":
            rule["remote_group_id"] = draw(st.sampled_from(groups))
        elif remote == "ag":
            fitting = [name for name, v in address_groups if v == eth]
            if fitting:
                rule["remote_address_group_id"] = draw(st.sampled_from(fitting))
        if draw(st.integers(0, 9)) == 0:
            rule["enabled"] = False
        rules.append(rule)
    # broad allows, so that many packets get past the specific rules above them
    for direction in ("ingress", "egress"):
        if draw(st.booleans()):
            eth = draw(st.sampled_from(["IPv4", "IPv6"]))
            rules.append({"id": f"{group}-all-{direction}-{eth}", "direction": direction, "ethertype": eth,
                          "priority": draw(st.sampled_from([1, 50, 100]))})
    return rules


@st.composite
def topologies(draw):
    n_vpcs = draw(st.integers(1, 3))
    vpcs, subnets = [], []  # subnets: (name, vpc index, subnet index, has_ipv6)
    for i in range(n_vpcs):
        subs = []
        for j in range(draw(st.integers(1, 2))):
            sub = {"name": f"s{i}{j}", "cidr": f"10.{i}.{j}.0/24"}
            has6 = draw(st.booleans())
            if has6:
                sub["ipv6_cidr"] = f"2407:c080:{i}:{j}::/64"
            subs.append(sub)
            subnets.append((sub["name"], i, j, has6))
        vpcs.append({"name": f"vpc{i}", "cidr": f"10.{i}.0.0/16", "subnets": subs})
    topo: dict = {"vpcs": vpcs}
    pairs = [(a, b) for a in range(n_vpcs) for b in range(a + 1, n_vpcs)]
    chosen = [p for p in pairs if draw(st.booleans())]
    if chosen:
        topo["peerings"] = [{"name": f"peer{a}{b}", "vpcs": [f"vpc{a}", f"vpc{b}"]} for a, b in chosen]
    if draw(st.booleans()):
        joined = draw(st.lists(st.integers(0, n_vpcs - 1), min_size=1, max_size=n_vpcs, unique=True))
        topo["private_networks"] = [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": [f"vpc{v}" for v in joined]}]

    ags = []
    if draw(st.booleans()):
        topo.setdefault("address_groups", []).append(
            {"name": "ag4", "ip_version": 4, "ip_set": draw(st.lists(st.sampled_from(AG4), min_size=1, max_size=3, unique=True))})
        ags.append(("ag4", 4))
    if draw(st.booleans()):
        topo.setdefault("address_groups", []).append(
            {"name": "ag6", "ip_version": 6, "ip_set": draw(st.lists(st.sampled_from(AG6), min_size=1, max_size=2, unique=True))})
        ags.append(("ag6", 6))

    n_groups = draw(st.integers(1, 4))
    gnames = [f"g{k}" for k in range(n_groups)]
    groups = []
    for g in gnames:
        rules = draw(rules_for(g, gnames, ags, draw(st.integers(0, 6))))
        if rules and draw(st.integers(0, 3)) == 0:  # S2: created_at on every rule of the group
            days = draw(st.lists(st.integers(1, 28), min_size=len(rules), max_size=len(rules)))
            for r, d in zip(rules, days):
                r["created_at"] = f"2024-01-{d:02d}T00:00:00Z"
        groups.append({"name": g, "rules": rules})
    topo["security_groups"] = groups

    instances = []
    eip_next = 10
    for k in range(draw(st.sampled_from([1, 2, 2, 3, 3, 4]))):
        nics = []
        for slot in range(draw(st.sampled_from([1, 1, 1, 2]))):
            sname, i, j, has6 = draw(st.sampled_from(subnets))
            if any(n["subnet"] == sname for n in nics):
                continue
            nic = {"subnet": sname, "ip": f"10.{i}.{j}.{10 + 10 * slot + k}"}
            if has6 and draw(st.booleans()):
                nic["ipv6"] = f"2407:c080:{i}:{j}::{10 + 10 * slot + k}"
                if draw(st.booleans()):
                    nic["ipv6_internet"] = True
            if draw(st.integers(0, 3)) == 0:
                nic["extra_ips"] = [f"10.{i}.{j}.{100 + 10 * slot + k}"]
            if draw(st.booleans()):
                nic["eip"] = f"203.0.113.{eip_next}"
                eip_next += 1
            if draw(st.integers(0, 4)) != 0:
                nic["security_groups"] = draw(st.lists(st.sampled_from(gnames), min_size=1, max_size=min(3, n_groups), unique=True))
            nics.append(nic)
        inst = {"name": f"i{k}", "nics": nics}
        flavor = draw(st.sampled_from(FLAVORS))
        if flavor:
            inst["flavor"] = flavor
        instances.append(inst)
    topo["instances"] = instances

    def nic_in_vpc(inst, vpc_index):
        return any(n["subnet"].startswith(f"s{vpc_index}") for n in inst["nics"])

    if draw(st.integers(0, 2)) == 0:
        inst = draw(st.sampled_from(instances))
        nic = inst["nics"][0]
        sname = nic["subnet"]
        i, j = int(sname[1]), int(sname[2])
        holders = [inst["name"]] + [o["name"] for o in instances if o is not inst and nic_in_vpc(o, i) and draw(st.booleans())]
        topo["virtual_ips"] = [{"ip": f"10.{i}.{j}.200", "subnet": sname, "instances": holders}]

    if draw(st.integers(0, 2)) == 0:
        sname, i, j, _ = draw(st.sampled_from(subnets))
        members = [o["name"] for o in instances if nic_in_vpc(o, i)]
        if members:
            listeners = []
            for port in draw(st.lists(st.sampled_from([80, 443, 53, 8080]), min_size=1, max_size=3, unique=True)):
                lst = {"protocol": draw(st.sampled_from(["tcp", "udp", "http", "https"])), "port": port,
                       "backends": [{"instance": b, "port": draw(st.sampled_from([80, 8080, 53]))}
                                    for b in draw(st.lists(st.sampled_from(members), min_size=1, max_size=2, unique=True))]}
                tci = draw(st.sampled_from([None, True, False]))
                if tci is not None:
                    lst["transfer_client_ip"] = tci
                listeners.append(lst)
            lb = {"name": "lb", "type": draw(st.sampled_from(["shared", "dedicated"])), "vip": f"10.{i}.{j}.250",
                  "subnet": sname, "listeners": listeners}
            if draw(st.booleans()):
                lb["eip"] = "203.0.113.250"
            topo["load_balancers"] = [lb]

    if draw(st.integers(0, 2)) == 0:
        def acl_rules(tag):
            out = []
            for n in range(draw(st.integers(0, 4))):
                r = {"action": draw(st.sampled_from(["allow", "allow", "deny"]))}
                proto = draw(st.sampled_from([None, "tcp", "udp", "icmp"]))
                if proto:
                    r["protocol"] = proto
                if proto in ("tcp", "udp") and draw(st.booleans()):
                    r["destination_port"] = draw(st.sampled_from(MULTIPORTS))
                if proto in ("tcp", "udp") and draw(st.integers(0, 3)) == 0:
                    r["source_port"] = draw(st.sampled_from(MULTIPORTS))
                if draw(st.booleans()):
                    r["source_ip_address" if draw(st.booleans()) else "destination_ip_address"] = draw(
                        st.sampled_from(["10.0.0.0/8", "198.51.100.0/24", "10.0.0.0/24", "0.0.0.0/0"]))
                if proto is None and draw(st.integers(0, 3)) == 0:
                    r["ip_version"] = 6
                    for key in ("source_ip_address", "destination_ip_address"):
                        if key in r:
                            r[key] = "::/0"
                if draw(st.integers(0, 5)) == 0:
                    r["enabled"] = False
                if draw(st.booleans()):
                    r["id"] = f"acl-{tag}-{n}"
                out.append(r)
            return out

        sub = draw(st.sampled_from([s for v in vpcs for s in v["subnets"]]))
        sub["network_acl"] = "acl"
        topo["network_acls"] = [{"name": "acl", "inbound_rules": acl_rules("in"), "outbound_rules": acl_rules("out")}]
    return topo


# ------------------------------------------------------------------------------------- addresses

def address_pool(topo):
    """Addresses packets are drawn from, by IP version, and the load-balancer addresses."""
    v4, v6, lb = [], [], set()
    o4, o6 = [], []  # addresses of no modelled endpoint
    owner = {}  # address -> its NIC, to draw packets between different NICs most of the time
    for inst in topo["instances"]:
        for slot, nic in enumerate(inst["nics"]):
            mine = [nic["ip"]] + nic.get("extra_ips", []) + ([nic["eip"]] if "eip" in nic else [])
            v4.extend(mine)
            if "ipv6" in nic:
                v6.append(nic["ipv6"])
                mine.append(nic["ipv6"])
            owner.update({a: (inst["name"], slot) for a in mine})
    for vip in topo.get("virtual_ips", []):
        v4.append(vip["ip"])
    for b in topo.get("load_balancers", []):
        lb.add(b["vip"])
        v4.append(b["vip"])
        if "eip" in b:
            lb.add(b["eip"])
            v4.append(b["eip"])
    for i, vpc in enumerate(topo["vpcs"]):
        o4.append(f"10.{i}.200.5")  # unlisted host of the VPC
        for sub in vpc["subnets"]:
            if "ipv6_cidr" in sub:
                o6.append(sub["ipv6_cidr"].replace("::/64", "::99"))
    o4 += ["172.16.0.5", "198.51.100.7", "8.8.8.8"]
    o6 += ["2001:db8::7"]
    listeners = [(b["vip"], l["port"], "udp" if l["protocol"] == "udp" else "tcp")
                 for b in topo.get("load_balancers", []) for l in b["listeners"]]
    listeners += [(b["eip"], port, proto) for b in topo.get("load_balancers", []) if "eip" in b
                  for _, port, proto in listeners[:1]]
    return {4: v4, 6: v6, -4: o4, -6: o6, "listeners": listeners, "owner": owner}, lb


@st.composite
def packet_specs(draw, pool, t):
    version = draw(st.sampled_from([4, 4, 4, 6] if pool[6] else [4]))

    def address(avoid=None):
        kind = draw(st.sampled_from([version, version, -version]))
        mine = pool["owner"].get(avoid, avoid)
        choices = [a for a in pool[kind] if a != avoid and pool["owner"].get(a, a) != mine] or pool[kind]
        if draw(st.integers(0, 19)) == 0 and avoid is not None:
            return avoid  # sometimes the same address (local)
        return draw(st.sampled_from(choices))

    src = address()
    dst = address(src)
    proto = draw(st.sampled_from(["tcp", "tcp", "udp", "icmp", "gre", 132]))
    if proto == "icmp" and version == 6:
        proto = "icmpv6"
    spec = {"src": src, "dst": dst, "proto": proto, "time": t}
    if proto in ("tcp", "udp"):
        spec["sport"] = draw(st.sampled_from(PORTS))
        spec["dport"] = draw(st.sampled_from(PORTS))
    if version == 4 and pool["listeners"] and draw(st.integers(0, 3)) == 0:
        spec["dst"], spec["dport"], spec["proto"] = draw(st.sampled_from(pool["listeners"]))
        spec["sport"] = draw(st.sampled_from(PORTS))
    if spec["proto"] == "tcp":
        spec["flags"] = draw(st.sampled_from(FLAGS))
    if spec["proto"] == "icmp":
        spec["icmp_type"] = draw(st.sampled_from([8, 8, 0, 3, 13]))
        spec["icmp_id"] = draw(st.sampled_from([1, 2]))
    if spec["proto"] == "icmpv6":
        spec["icmp_type"] = draw(st.sampled_from([128, 128, 129, 1]))
        spec["icmp_id"] = draw(st.sampled_from([1, 2]))
    return spec


ECHO_REPLY = {8: 0, 0: 8, 128: 129, 129: 128}


def reply_of(spec):
    r = dict(spec, src=spec["dst"], dst=spec["src"])
    if "sport" in spec:
        r["sport"], r["dport"] = spec["dport"], spec["sport"]
    if spec["proto"] == "tcp":
        r["flags"] = "SA" if "S" in spec["flags"] and "A" not in spec["flags"] else "A"
    if spec["proto"] in ("icmp", "icmpv6") and spec["icmp_type"] in ECHO_REPLY:
        r["icmp_type"] = ECHO_REPLY[spec["icmp_type"]]
    return r


def reply_expected(spec, lb_addresses):
    """S11 promises a passing reply for connections it tracks: TCP, UDP, other protocols, ICMP echo.
    Load-balancer flows are left out (their reply from a VIP is S14's business)."""
    if spec["src"] in lb_addresses or spec["dst"] in lb_addresses:
        return False
    if spec["proto"] in ("icmp", "icmpv6"):
        return spec["icmp_type"] in ECHO_REPLY
    return True


@st.composite
def scenarios(draw):
    topo = draw(topologies())
    pool, lb = address_pool(topo)
    t = 1_700_000_000.0
    pairs = []
    for _ in range(draw(st.integers(1, 8))):
        t += draw(st.sampled_from(GAPS))
        spec = draw(packet_specs(pool, t))
        pairs.append(spec)
    return topo, pairs, lb


# --------------------------------------------------------------------------------------- running

def run_engine(topo, specs, engine_name):
    engine = make_engine(topology_from_data(topo, "random.yaml"), engine_name)
    pkts = [packet_from_spec(s, f"packets[{i}]", "random") for i, s in enumerate(specs)]
    out = engine.process(PacketBatch.from_packets(pkts))
    assert len(out) == len(pkts)
    return [engine.names.decode(out, i) for i in range(len(pkts))]


def single(topo, spec, engine_name):
    return run_engine(topo, [spec], engine_name)[0]


ALLOW_REASONS = {"rule", "established", "related", "local", "lb_bypass"}
DENY_REASONS = {"rule", "default", "no_route", "acl"}


def check_row(v, topo):
    """S7 / §5 column rules for one row."""
    assert v.verdict in ("allow", "deny", "unmodelled", "malformed"), v
    if v.verdict == "allow":
        assert v.reason in ALLOW_REASONS, v
    elif v.verdict == "deny":
        assert v.reason in DENY_REASONS, v
    else:
        assert v.reason == v.verdict and not v.instance and not v.direction, v
    if v.reason == "rule":
        assert v.instance and v.direction and v.security_group and v.rule, v
    if v.reason in ("default", "established", "related", "lb_bypass", "local", "no_route"):
        assert not v.security_group and not v.rule, v
    if v.reason in ("default", "established", "related", "lb_bypass"):
        assert v.instance and v.direction, v
    if v.reason in ("local", "no_route"):
        assert not v.direction, v
    if v.reason == "local":
        assert v.instance, v
    if v.reason == "lb_bypass":
        assert v.direction == "ingress", v
    if v.reason == "acl":
        assert v.instance and v.direction and v.security_group in {a["name"] for a in topo.get("network_acls", [])}, v
    if v.instance:
        assert v.instance in {i["name"] for i in topo["instances"]}, v


# ---------------------------------------------------------------------------------------- properties

@SETTINGS
@given(scenarios())
def test_s15_s7_every_packet_gets_one_valid_row(engine_name, case):
    topo, specs, _ = case
    specs = specs + [reply_of(s) for s in specs]
    rows = run_engine(topo, specs, engine_name)
    counts = {k: sum(v.verdict == k for v in rows) for k in ("allow", "deny", "unmodelled", "malformed")}
    assert sum(counts.values()) == len(specs)
    for v in rows:
        check_row(v, topo)


@SETTINGS
@given(scenarios())
def test_s11_reply_right_after_allowed_packet_is_allowed(engine_name, case):
    topo, specs, lb = case
    seq = []
    for s in specs:
        seq += [s, reply_of(s)]
    rows = run_engine(topo, seq, engine_name)
    for k, s in enumerate(specs):
        fwd, back = rows[2 * k], rows[2 * k + 1]
        if fwd.verdict == "allow" and reply_expected(s, lb):
            assert back.verdict == "allow", (k, s, fwd, back)


@SETTINGS
@given(scenarios(), st.data())
def test_s8_removing_a_deny_rule_never_turns_allow_into_deny(engine_name, case, data):
    topo, specs, _ = case
    spec = specs[0]
    candidates = [(gi, ri) for gi, g in enumerate(topo["security_groups"]) for ri, r in enumerate(g["rules"])
                  if r.get("action", "allow") == "deny" and "," not in r.get("multiport", "")]
    if not candidates:
        return
    gi, ri = data.draw(st.sampled_from(candidates))
    before = single(topo, spec, engine_name)
    smaller = copy.deepcopy(topo)
    del smaller["security_groups"][gi]["rules"][ri]
    after = single(smaller, spec, engine_name)
    if before.verdict == "allow":
        assert after.verdict == "allow", (spec, before, after)


@SETTINGS
@given(scenarios())
def test_s8_adding_allow_all_first_never_turns_allow_into_deny(engine_name, case):
    topo, specs, _ = case
    spec = specs[0]
    before = single(topo, spec, engine_name)
    bigger = copy.deepcopy(topo)
    group = bigger["security_groups"][0]
    stamped = any("created_at" in r for r in group["rules"])
    added = []
    for direction in ("ingress", "egress"):
        for eth in ("IPv4", "IPv6"):
            r = {"id": f"prop-allow-{direction}-{eth}", "direction": direction, "ethertype": eth, "priority": 1}
            if stamped:
                r["created_at"] = "2000-01-01T00:00:00Z"
            added.append(r)
    group["rules"] = added + group["rules"]
    after = single(bigger, spec, engine_name)
    if before.verdict == "allow":
        assert after.verdict == "allow", (spec, before, after)


@SETTINGS
@given(scenarios())
def test_s11_dataplane_is_deterministic(engine_name, case):
    topo, specs, _ = case
    specs = [x for s in specs for x in (s, reply_of(s))]
    assert run_engine(topo, specs, engine_name) == run_engine(topo, specs, engine_name)


# A sanity check of the generator itself: the generated topologies are valid and use the features
# the properties are meant to cover.
def test_s1_property_generator_produces_valid_topologies():
    seen = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(topologies())
    def collect(topo):
        topology_from_data(topo, "random.yaml")
        for key in ("peerings", "address_groups", "virtual_ips", "load_balancers", "network_acls", "private_networks"):
            if key in topo:
                seen.add(key)
        for inst in topo["instances"]:
            for nic in inst["nics"]:
                ipaddress.ip_address(nic["ip"])

    collect()
    assert {"load_balancers", "network_acls", "virtual_ips"} <= seen
