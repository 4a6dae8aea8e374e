"""The fast engine: the reference semantics over packet batches, in compiled code.

One compiled pass per batch (``_dataplane.Dataplane.run``), in capture order: fragment memory,
endpoints and paths, load balancers, connection tracking and — only for packets that connection
tracking does not decide — first-match classification. There is no per-packet Python.

Rules are compiled here, once per topology, into the generic first-match tables of
:mod:`sgdp.engine.compiler`, searched by the compiled tuple-space classifier of :mod:`sgdp._fastmatch`:

* one table per distinct security-group policy and direction (NICs bound to the same groups in the
  same order, with the same flavor kind, share it). A rule becomes rows over: source = the peer
  address (its prefix, address-group entries or remote-group member IPs), destination = the
  "genuine member" flag (0/1; remote-group rows require 1), source port = ICMP type, destination
  port = destination port or ICMP code (256 stands for "none": a non-first fragment matches no
  port or ICMP-type rule), protocol = protocol. Multiport and address groups give one row per
  segment or entry, in the rule's place in the walk.
* one table per network ACL and way, over all five fields.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sgdp.engine import _dataplane
from sgdp.topology import Net
from sgdp.engine.classifier import FastClassifier
from sgdp.engine.compiler import Rule as Box, RuleTable
from sgdp.errors import SgdpError
from sgdp.topology import ICMP, ICMPV6, Rule, Topology
from sgdp.capture import REASONS, VERDICTS, Names, PacketBatch, VerdictBatch
from sgdp.topology import Policy
from sgdp.engine.common import SERVICE_V4, SERVICE_V6, lb_source, names_for

MAXC = 256
TOP = {4: (1 << 32) - 1, 6: (1 << 128) - 1}
MASK64 = (1 << 64) - 1
FULL = (0, 65535)
NO_L4 = 256  # the "port" of a header without ports or ICMP type (non-first fragments)

K_EXTERNAL, K_SERVICE, K_VPC, K_PRIVATE, K_NIC, K_LB = range(6)
H_NONE, H_FIXED, H_EIP, H_VIP, H_FORWARDED = range(5)
INGRESS, EGRESS = 1, 2



class Unsupported(SgdpError):
    """The topology exceeds a limit of the compiled engine (the reference engine still handles it)."""


def check_supported(topo: Topology, where: str) -> None:
    """Raise Unsupported (naming ``where``) if the compiled engine cannot run ``topo``."""
    try:
        _plan_arrays(topo, names_for(topo))
    except Unsupported as exc:
        raise Unsupported(f"{where}: {topo.file}: {exc}") from None


class _Table:
    """One compiled first-match table and what its rows mean."""

    __slots__ = ("table", "row_rule", "row_allow", "classifier")

    def __init__(self, boxes: list[Box] | RuleTable, row_rule, row_allow):
        self.table = boxes if isinstance(boxes, RuleTable) else RuleTable.from_rules(boxes)
        self.row_rule = np.asarray(row_rule, np.int32)  # row -> global rule index (names.rules)
        self.row_allow = np.asarray(row_allow, np.uint8)
        self.classifier = FastClassifier(self.table)

    @property
    def compiled(self):
        return self.classifier._compiled

    @property
    def nbytes(self) -> int:
        return self.table.nbytes + self.classifier.table_bytes


class _StoreTable:
    """A security-group table: the walk of a NIC's groups, each group's segment (its effective rules
    of one direction and IP version) rows of the shared store (_RuleRows), laid end to end. The
    dataplane reads ``walk_compiled``: the segments' classifiers (each compiled once however many
    tables use it) chained (``sgdp._fastmatch.chain``), answering in the rows of every walk
    (_RuleRows.build). The table's own rows (``rows``, ``row_rule``, ``row_allow``) and a classifier
    answering in them (``compiled``) are made when asked for, by what checks the tables against the
    rules one by one; no RuleTable is kept (the store goes once everything is built)."""

    __slots__ = ("segments", "parts", "store_rule", "store_allow", "used", "starts", "walk_compiled",
                 "_compiled")

    def __init__(self, store: "_RuleRows", segments: list[tuple]):
        self.segments = segments  # segment keys (group, kind, direction, version), in walk order
        self.parts = [store.segment(*key) for key in segments]  # each segment's store rows
        self.store_rule, self.store_allow = store.row_rule, store.row_allow
        self.used: list = []  # the classifiers of its non-empty segments, and their first rows (build)
        self.starts: list[int] = []
        self.walk_compiled = None  # set by _RuleRows.build
        self._compiled = None

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate(self.parts + [np.zeros(0, np.int64)])

    @property
    def row_rule(self) -> np.ndarray:
        return self.store_rule[self.rows]

    @property
    def row_allow(self) -> np.ndarray:
        return self.store_allow[self.rows]

    @property
    def compiled(self):
        """The table's classifier answering in its own rows (the segments chained in walk order)."""
        from sgdp._fastmatch import chain

        if self._compiled is None:
            if not self.used:
                self._compiled = self.walk_compiled  # the empty table
            elif len(self.used) == 1 and self.starts[0] == 0:
                self._compiled = self.used[0]
            else:
                self._compiled = chain(self.used, np.array(self.starts, np.int64))
        return self._compiled


# The address step of the group walks' tuples (build_tuple_space; ClassBench's measured best is 16):
# a walk's peers are members' /32s, subnets and address-group ranges, and with 8-bit steps a /24
# subnet keeps a tuple of its own instead of joining a /16 one, so the benchmark capture's lookups
# probe fewer tuples (1.66 against 1.74) and compare fewer rules (3.4 against 3.9) per walk; the
# uniform capture's packet phase 2-3 % faster in two A/B runs, the 6,000-instance limits topology's
# compile 7 % slower (benchmarks/README.md). Measured on IPv4 walks: an IPv6 walk may now spread
# over more prefix levels (tuples past the 63rd share the filter's last bit and are probed in turn).
WALK_ADDRESS_STEP = 8


class _RuleRows:
    """Every security-group rule's table rows, made once per topology and shared by every table.

    A rule's rows depend on the rule alone (its remote's merged ranges, its ports or ICMP type and
    code, its protocol): one pass lists each rule's peer ranges and port ranges, and NumPy expands
    them into the rows of one store (peers times port ranges, the order of FastEngine._rule_boxes).
    A NIC walk's table is then the store's rows taken in walk order (one fancy-indexing pass per
    column), with no per-row Python, and the walk of each group (per flavor kind, direction and
    version) is resolved once however many NICs and tables use it."""

    def __init__(self, engine: "FastEngine"):
        self.engine = engine
        self.segments: dict[tuple, np.ndarray] = {}
        policy = engine.policy
        status = policy.group_status
        rules = [r for sg in engine.topo.security_groups.values() for r in sg.rules
                 if status[r.id] is None]  # the rules that take effect on some flavor kind
        distinct: dict[int, int] = {}  # id of a peer list -> its first place among the distinct lists' peers
        lists: list[list[tuple[int, int]]] = []  # the distinct peer lists (kept alive: their ids stay theirs)
        n_distinct = 0
        l4s: list[tuple[int, int, int, int]] = []
        # per rule: peers, port ranges, l3, protocol value, mask, genuine-only, rule index, allow, first peer
        per = np.zeros((len(rules), 9), np.int64)
        for j, rule in enumerate(rules):
            proto, l4 = _rule_l4(rule)
            peers, members_only = policy.remote_ranges(rule)  # shared by the rules of one remote
            at = distinct.get(id(peers))
            if at is None:
                at = distinct[id(peers)] = n_distinct
                lists.append(peers)
                n_distinct += len(peers)
            l4s.extend((sp[0], sp[1], dp[0], dp[1]) for sp, dp in l4)
            per[j] = (len(peers), len(l4), rule.ethertype, proto[0], proto[1], members_only,
                      engine.rule_index[rule.id], rule.action == "allow", at)
        n_peer, n_l4 = per[:, 0], per[:, 1]
        count = n_peer * n_l4
        start = np.cumsum(count) - count
        self.start = dict(zip((r.id for r in rules), start.tolist()))  # rule id -> first row in the store
        self.count = dict(zip((r.id for r in rules), count.tolist()))
        owner = np.repeat(np.arange(len(rules)), count)  # row -> its rule
        within = _within(count)  # row -> its place among its rule's rows (peer-major)
        k = n_l4[owner]
        peer = per[owner, 8] + within // k
        l4_row = (np.cumsum(n_l4) - n_l4)[owner] + within % k
        lo_hi, lo_lo, hi_hi, hi_lo = _split_ranges(lists)
        ports = np.array(l4s, np.uint16).reshape(-1, 4)
        rows = len(owner)
        columns = {
            "l3": per[owner, 2].astype(np.uint8),
            "src_min_hi": lo_hi[peer], "src_min_lo": lo_lo[peer], "src_max_hi": hi_hi[peer], "src_max_lo": hi_lo[peer],
            "dst_min_hi": np.zeros(rows, np.uint64), "dst_min_lo": per[owner, 5].astype(np.uint64),
            "dst_max_hi": np.zeros(rows, np.uint64), "dst_max_lo": np.ones(rows, np.uint64),
            "sport_min": ports[l4_row, 0], "sport_max": ports[l4_row, 1],
            "dport_min": ports[l4_row, 2], "dport_max": ports[l4_row, 3],
            "proto_value": per[owner, 3].astype(np.uint8), "proto_mask": per[owner, 4].astype(np.uint8),
        }
        self.store = RuleTable(**columns)  # validated once; each NIC table takes its rows from it
        self.row_rule = per[owner, 6].astype(np.int32)
        self.row_allow = per[owner, 7].astype(np.uint8)

    def segment(self, group: str, kind: str, direction: str, version: int) -> np.ndarray:
        """Store rows of one group's effective rules (per flavor kind, direction and version), in order."""
        key = (group, kind, direction, version)
        rows = self.segments.get(key)
        if rows is None:
            status = self.engine.policy.family_status(kind)
            rules = [r for r in self.engine.topo.security_groups[group].rules
                     if r.direction == direction and r.ethertype == version and status[r.id] is None]
            rules.sort(key=lambda r: r.sort_key)
            start = np.array([self.start[r.id] for r in rules], np.int64)
            count = np.array([self.count[r.id] for r in rules], np.int64)
            rows = self.segments[key] = np.repeat(start, count) + _within(count)
        return rows

    def table(self, nic, kind: str, direction: str) -> _StoreTable:
        """The table of a NIC's walk (its groups' effective rules, IPv4 then IPv6); compiled by build()."""
        return _StoreTable(self, [(g, kind, direction, version) for version in (4, 6) for g in nic.security_groups])

    def build(self, tables: list[_StoreTable]) -> None:
        """Compile every segment the tables use once, in one call, and chain each table's segments.
        (Compiling each NIC combination's table whole was most of the start-up of a topology with
        hundreds of distinct combinations: the same group's rules compiled hundreds of times.)"""
        from sgdp._fastmatch import build_many, chain
        from sgdp.engine.compiler import BUCKET_LIMIT

        keys = list(dict.fromkeys(key for t in tables for key in t.segments if len(self.segments[key])))
        parts = [self.segments[key] for key in keys]
        sizes = np.array([len(rows) for rows in parts], np.int64)
        offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(sizes)])
        rows = np.concatenate(parts + [np.zeros(0, np.int64)])
        compiled = dict(zip(keys, build_many(self.store, rows, offsets, WALK_ADDRESS_STEP, BUCKET_LIMIT)))
        self.compiled_bytes = sum(int(c.nbytes) for c in compiled.values())
        # the rows of every compiled walk, laid end to end: what the dataplane's tables answer in
        # (walk_compiled), so that a match names its rule and action through these two arrays, the
        # size of the walks, rather than through per-table arrays the size of every table's rows
        # (a hundred times larger on the benchmark topology: a cache miss for each classification)
        base = dict(zip(keys, offsets[:-1].tolist()))
        self.walk_rule = self.row_rule[rows]
        self.walk_allow = self.row_allow[rows]
        empty = None
        for t in tables:
            at, bases = 0, []
            for key in t.segments:
                n = len(self.segments[key])
                if n:
                    t.used.append(compiled[key])
                    t.starts.append(at)
                    bases.append(base[key])
                at += n
            if not t.used:  # no rule at all: an empty table
                if empty is None:
                    empty = build_many(self.store, np.zeros(0, np.int64), np.zeros(2, np.int64), WALK_ADDRESS_STEP,
                                       BUCKET_LIMIT)[0]
                t.walk_compiled = empty
            else:
                t.walk_compiled = chain(t.used, np.array(bases, np.int64), ordered=False)


def _within(count: np.ndarray) -> np.ndarray:
    """For runs of ``count`` items laid end to end, each item's place in its run: 0..count[i]-1 each."""
    total = int(count.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)


def _split_ranges(lists: list[list[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ranges of the lists laid end to end as four uint64 columns: low end high and low halves,
    high end high and low halves. A list of 64-bit values (IPv4) converts in one NumPy call."""
    parts = []
    for ranges in lists:
        try:
            both = np.array(ranges, np.uint64).reshape(-1, 2)
            zero = np.zeros(len(both), np.uint64)
            parts.append(np.stack([zero, both[:, 0], zero, both[:, 1]], axis=1))
        except OverflowError:  # IPv6: 128-bit values, split in Python
            parts.append(np.array([(a >> 64, a & MASK64, b >> 64, b & MASK64) for a, b in ranges], np.uint64).reshape(-1, 4))
    cols = np.concatenate(parts + [np.zeros((0, 4), np.uint64)])
    return tuple(np.ascontiguousarray(cols[:, i]) for i in range(4))  # type: ignore[return-value]


def _rule_l4(rule: Rule) -> tuple[tuple[int, int], list[tuple[tuple[int, int], tuple[int, int]]]]:
    """A security-group rule's protocol (value, mask) and its (sport, dport) ranges: the destination
    port ranges, or ICMP type and code in the port columns, or any."""
    proto = (0, 0) if rule.protocol is None else (rule.protocol, 0xFF)
    if rule.ports is not None:
        return proto, [(FULL, seg) for seg in rule.ports]
    if rule.icmp_type is not None and rule.protocol in (ICMP, ICMPV6):
        code = FULL if rule.icmp_code is None else (rule.icmp_code, rule.icmp_code)
        return proto, [((rule.icmp_type, rule.icmp_type), code)]
    return proto, [(FULL, FULL)]


class FastEngine:
    """The compiled dataplane; same interface and results as :class:`sgdp.engine.reference.ReferenceEngine`."""

    name = "fast"

    def __init__(self, topo: Topology, policy: Policy | None = None, names: Names | None = None,
                 ct_capacity: int = 1024):
        """``ct_capacity``: the connection table's first size (it grows as needed; tests start it
        small to make it grow and sweep)."""
        self.names = names or names_for(topo)  # a superset is fine (a timeline's names of every version)
        self.rule_index = {r: i for i, r in enumerate(self.names.rules)}
        self.rule_group = np.full(len(self.names.rules) + 1, -1, np.int32)
        self.rule_direction_names = ("", "ingress", "egress")
        self._earlier_hits: dict[tuple[str, str, str], int] = {}  # hits under earlier topology versions
        self._setup(topo, policy or Policy(topo))
        self.dp = _dataplane.Dataplane(len(self.names.rules), ct_capacity)

    def _setup(self, topo: Topology, policy: Policy) -> None:
        """Compile a topology (rules to tables, the plan); the dataplane state is kept elsewhere."""
        self.topo = topo
        self.policy = policy
        group_index = self.names.group_index
        for sg in topo.security_groups.values():
            for rule in sg.rules:
                self.rule_group[self.rule_index[rule.id]] = group_index[sg.name]
        for acl in topo.network_acls.values():
            for acl_rule in acl.inbound + acl.outbound:
                self.rule_group[self.rule_index[acl_rule.id]] = group_index[acl.name]
        self.acl_group = np.array([group_index[name] for name in topo.network_acls] + [-1], np.int32)
        arrays = _plan_arrays(topo, self.names)
        self._compile_tables()
        arrays.update(self._table_arrays())
        _check_plan(arrays, len(topo.nics), len(topo.vpcs), len(self.names.rules))
        self.plan = _dataplane.Plan(arrays, len(topo.vpcs))

    def retarget(self, topo: Topology, names: Names, nic_map: dict[int, int], drop_sg: set[int],
                 drop_acl: set[int]) -> None:
        """S12: continue with another version of the topology, keeping the dataplane state (as
        :meth:`sgdp.engine.reference.ReferenceEngine.retarget`). ``names`` must be the names this engine
        was built with (a timeline's names of every version)."""
        if names.rules != self.names.rules or names.groups != self.names.groups or names.instances != self.names.instances:
            raise ValueError("retarget: the names must be those the engine was built with")
        old_to_new = np.full(max(nic_map, default=-1) + 1, -1, np.int32)
        for old, new in nic_map.items():
            old_to_new[old] = new
        n = len(topo.nics)
        sg = np.zeros(n, np.uint8)
        acl = np.zeros(n, np.uint8)
        sg[sorted(k for k in drop_sg if k < n)] = 1
        acl[sorted(k for k in drop_acl if k < n)] = 1
        # hits so far are kept by (group, rule, direction) names: a rule may change groups
        for hit in self.rule_hits():
            self._earlier_hits[(hit["security_group"], hit["rule"], hit["direction"])] = hit["hits"]
        self._setup(topo, Policy(topo))
        self.dp.hits[:] = 0
        self.dp.remap(old_to_new, sg, acl)

    def _compile_tables(self) -> None:
        """One first-match table per distinct security-group policy (NICs with the same groups in
        the same order and the same flavor kind share it, per direction), one per ACL and way."""
        topo, policy = self.topo, self.policy
        shared: dict[tuple, int] = {}
        store = _RuleRows(self)
        nic_table = np.zeros((len(topo.nics), 3), np.int32)
        self.sg_tables: list[_StoreTable] = []
        for nic in topo.nics:
            for direction, code in (("ingress", INGRESS), ("egress", EGRESS)):
                key = (nic.security_groups, policy.nic_kind(nic), direction)
                if key not in shared:
                    shared[key] = len(self.sg_tables)
                    self.sg_tables.append(store.table(nic, key[1], direction))
                nic_table[nic.index, code] = shared[key]
        store.build(self.sg_tables)
        self._compiled_bytes = store.compiled_bytes  # the segments' classifiers, each counted once
        self.nic_table = nic_table
        self._sg_walks = [t.walk_compiled for t in self.sg_tables]
        self._walk_rule, self._walk_allow = store.walk_rule, store.walk_allow
        self.acl_tables: list[_Table] = []
        acl_ids = {name: j for j, name in enumerate(topo.network_acls)}
        acl_table = np.zeros((max(len(acl_ids), 1), 3), np.int32)
        for name, acl in topo.network_acls.items():
            for rules, code in ((acl.inbound, INGRESS), (acl.outbound, EGRESS)):
                acl_table[acl_ids[name], code] = len(self.acl_tables)
                self.acl_tables.append(self._acl_table(rules))
        self.acl_table = acl_table
        self._acl_compiled = [t.compiled for t in self.acl_tables]

    def _table_arrays(self) -> dict[str, Any]:
        """The tables as Plan arrays: which table each NIC and ACL uses, and what each row means."""
        def rows(tables: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            off = np.cumsum([0] + [len(t.row_rule) for t in tables]).astype(np.int64)
            rule = np.concatenate([t.row_rule for t in tables] + [np.zeros(0, np.int32)]).astype(np.int32)
            allow = np.concatenate([t.row_allow for t in tables] + [np.zeros(0, np.uint8)]).astype(np.uint8)
            return off, rule, allow

        a: dict[str, Any] = {"nic_sg": self.nic_table.reshape(-1).astype(np.int32),
                             "acl_way": self.acl_table.reshape(-1).astype(np.int32)}
        # the security-group tables answer in the rows of every group walk (_RuleRows.build)
        a["sg_rule"] = self._walk_rule.astype(np.int32)
        a["sg_allow"] = self._walk_allow.astype(np.uint8)
        a["acl_off"], a["acl_rule"], a["acl_allow"] = rows(self.acl_tables)
        a["rule_group"] = self.rule_group
        a["acl_group"] = self.acl_group
        a["sg_classifiers"] = self._sg_walks
        a["acl_classifiers"] = self._acl_compiled
        return a

    def _sg_rows(self, nic, direction: str) -> list[tuple[Box, Rule]]:
        """The effective walk of a NIC for one direction (IPv4 rules, then IPv6) as boxes, row by row:
        the reference that tests compare the tables of _RuleRows with."""
        out = []
        for version in (4, 6):
            for rule in self.policy.effective(nic, direction, version):
                out.extend((box, rule) for box in self._rule_boxes(rule, version))
        return out

    def _rule_boxes(self, rule: Rule, version: int) -> list[Box]:
        proto, l4 = _rule_l4(rule)
        peers, members_only = self.policy.remote_ranges(rule)
        genuine = (1, 1) if members_only else (0, 1)
        return [Box(version, peer, genuine, sp, dp, proto) for peer in peers for sp, dp in l4]

    def _acl_table(self, rules) -> _Table:
        boxes, row_rule, row_allow = [], [], []
        for rule in rules:
            if not rule.enabled:
                continue
            v = rule.ip_version
            ends = []
            for end in (rule.src, rule.dst):
                if end is None:
                    ends.append([(0, TOP[v])])
                elif isinstance(end, Net):
                    ends.append([(end.lo, end.hi)])
                else:
                    ends.append([(n.lo, n.hi) for n in self.topo.address_groups[end].entries])
            proto = (0, 0) if rule.protocol is None else (rule.protocol, 0xFF)
            for src in ends[0]:
                for dst in ends[1]:
                    for sp in rule.sports or (FULL,):
                        for dp in rule.dports or (FULL,):
                            boxes.append(Box(v, src, dst, sp, dp, proto))
                            row_rule.append(self.rule_index[rule.id])
                            row_allow.append(rule.action == "allow")
        return _Table(boxes, row_rule, row_allow)

    @property
    def table_bytes(self) -> int:
        """Memory of what the dataplane reads: the compiled walks (each counted once), the rule and
        action of each walk row, the ACL tables."""
        return (self._compiled_bytes + self._walk_rule.nbytes + self._walk_allow.nbytes
                + sum(t.nbytes for t in self.acl_tables))

    # -- run ------------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> VerdictBatch:
        """Verdict columns for a batch, continuing the state of earlier batches."""
        out = VerdictBatch(len(batch), fill=False)  # run writes every row
        counts = np.zeros(len(VERDICTS) + len(REASONS), np.int64)
        self.dp.run(self.plan, batch.columns, {k: getattr(out, k) for k in VerdictBatch.COLUMNS}, None, counts)
        out.counts = counts
        return out

    def idle(self) -> bool:
        """A step of work another thread may do while this engine evaluates a batch: the memory its
        tables take when they next grow (``Dataplane.prefault``). Returns whether more is left."""
        return self.dp.prefault()

    def process_into(self, columns: dict[str, np.ndarray], out: dict[str, np.ndarray],
                     rows: np.ndarray | None = None) -> None:
        """As :meth:`process`, over packet columns that need not form a :class:`PacketBatch` (e.g.
        views of a shared-memory slot: contiguous, of the dtypes of PACKET_COLUMNS), the verdict
        columns written into ``out`` (as long as the packet columns), not allocated; with ``rows``
        (int64), only those rows, in that order, each read and written where it lies."""
        self.dp.run(self.plan, columns, out, None if rows is None else np.ascontiguousarray(rows, np.int64))

    # -- state ----------------------------------------------------------------------------------

    def rule_hits(self) -> list[dict[str, Any]]:
        counts = dict(self._earlier_hits)
        hits = self.dp.hits
        for idx, d in zip(*np.nonzero(hits)):
            key = (self.names.groups[self.rule_group[idx]], self.names.rules[idx], self.rule_direction_names[d])
            counts[key] = counts.get(key, 0) + int(hits[idx, d])
        return [{"security_group": g, "rule": r, "direction": d, "hits": n} for (g, r, d), n in sorted(counts.items())]



# ------------------------------------------------------------------------------------------- plan


def _ranges(items: list[tuple[int, int, int]]) -> dict[str, np.ndarray]:
    """(l3, lo, hi) triples as the five range columns."""
    return {
        "l3": np.array([x[0] for x in items], np.uint8),
        "lo_hi": np.array([x[1] >> 64 for x in items], np.uint64),
        "lo_lo": np.array([x[1] & MASK64 for x in items], np.uint64),
        "hi_hi": np.array([x[2] >> 64 for x in items], np.uint64),
        "hi_lo": np.array([x[2] & MASK64 for x in items], np.uint64),
    }


def _plan_arrays(topo: Topology, names: Names) -> dict[str, np.ndarray]:
    """The topology as the flat arrays of ``_dataplane.Plan`` (same candidate order as
    ReferenceEngine._candidates); instances are numbered as in ``names``."""
    a: dict[str, np.ndarray] = {}
    # exact addresses -> candidates, in the reference's order: fixed IPs, EIP, virtual IPs, LB
    exact: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for nic in topo.nics:
        for addr in nic.fixed_ips:
            exact.setdefault(addr, []).append((K_NIC, H_FIXED, nic.index))
    eips = {nic.eip: nic.index for nic in topo.nics if nic.eip is not None}
    vips: dict[tuple[int, int], list[int]] = {}
    for vip in topo.virtual_ips:
        vips.setdefault(vip.ip, []).append(vip.holder_nic)
    lbs: dict[tuple[int, int], int] = {}
    for j, lb in enumerate(topo.load_balancers.values()):
        lbs[lb.vip] = j
        if lb.eip is not None:
            lbs[(4, lb.eip)] = j
    keys = set(exact) | {(4, e) for e in eips} | set(vips) | set(lbs)
    cand: list[tuple[int, int, int]] = []
    ak = []
    for key in sorted(keys):
        items = list(exact.get(key, ()))
        if key[0] == 4 and key[1] in eips:
            items.append((K_NIC, H_EIP, eips[key[1]]))
        items.extend((K_NIC, H_VIP, k) for k in vips.get(key, ()))
        if key in lbs:
            items.append((K_LB, H_NONE, lbs[key]))
        if len(items) > MAXC:
            raise Unsupported(f"an address denotes {len(items)} endpoints (the compiled engine handles {MAXC})")
        ak.append((key, len(cand), len(items)))
        cand.extend(items)
    a["ak_l3"] = np.array([k[0][0] for k in ak], np.uint8)
    a["ak_hi"] = np.array([k[0][1] >> 64 for k in ak], np.uint64)
    a["ak_lo"] = np.array([k[0][1] & MASK64 for k in ak], np.uint64)
    a["ak_start"] = np.array([k[1] for k in ak], np.int32)
    a["ak_count"] = np.array([k[2] for k in ak], np.int32)
    a["c_kind"] = np.array([x[0] for x in cand], np.uint8)
    a["c_how"] = np.array([x[1] for x in cand], np.uint8)
    a["c_idx"] = np.array([x[2] for x in cand], np.int32)

    for prefix, items in (("sv", [(n.version, n.lo, n.hi) for n in SERVICE_V4 + SERVICE_V6]),):
        for k, v in _ranges(items).items():
            a[f"{prefix}_{k}"] = v
    vpc_ids = {name: i for i, name in enumerate(topo.vpcs)}
    subnet_ids = {name: i for i, name in enumerate(topo.subnets)}
    vr, vr_vpc, sr, sr_subnet, sr_vpc = [], [], [], [], []
    for name, vpc in topo.vpcs.items():
        vr.append((4, vpc.cidr.lo, vpc.cidr.hi))
        vr_vpc.append(vpc_ids[name])
        for sname in vpc.subnets:
            sn = topo.subnets[sname]
            if sn.ipv6_cidr is not None:
                vr.append((6, sn.ipv6_cidr.lo, sn.ipv6_cidr.hi))
                vr_vpc.append(vpc_ids[name])
            for net in (sn.cidr, sn.ipv6_cidr):
                if net is not None:
                    sr.append((net.version, net.lo, net.hi))
                    sr_subnet.append(subnet_ids[sname])
                    sr_vpc.append(vpc_ids[name])
    pr = [(pn.cidr.version, pn.cidr.lo, pn.cidr.hi) for pn in topo.private_networks]
    if len(topo.vpcs) + len(pr) >= MAXC:
        raise Unsupported(f"{len(topo.vpcs)} VPCs and {len(pr)} private networks (the compiled engine handles {MAXC - 1} together)")
    for prefix, items in (("vr", vr), ("pr", pr), ("sr", sr)):
        for k, v in _ranges(items).items():
            a[f"{prefix}_{k}"] = v
    a["vr_vpc"] = np.array(vr_vpc, np.int32)
    a["sr_subnet"] = np.array(sr_subnet, np.int32)
    a["sr_vpc"] = np.array(sr_vpc, np.int32)

    macs = sorted((nic.mac, nic.index) for nic in topo.nics if nic.mac is not None)
    a["mac_key"] = np.array([m for m, _ in macs], np.int64)
    a["mac_nic"] = np.array([k for _, k in macs], np.int32)

    inst_ids = names.instance_index
    acl_ids = {name: j for j, name in enumerate(topo.network_acls)}
    nics = topo.nics
    a["nic_vpc"] = np.array([vpc_ids[n.vpc] for n in nics], np.int32)
    a["nic_subnet"] = np.array([subnet_ids[n.subnet] for n in nics], np.int32)
    a["nic_ip"] = np.array([n.ip for n in nics], np.uint64)
    a["nic_has_eip"] = np.array([n.eip is not None for n in nics], np.uint8)
    a["nic_eip"] = np.array([n.eip or 0 for n in nics], np.uint64)
    a["nic_v6inet"] = np.array([n.ipv6_internet for n in nics], np.uint8)
    a["nic_sdc"] = np.array([n.source_dest_check for n in nics], np.uint8)
    a["nic_inst"] = np.array([inst_ids[n.instance] for n in nics], np.int32)
    acls = [topo.subnets[n.subnet].network_acl for n in nics]
    a["nic_acl"] = np.array([-1 if name is None else acl_ids[name] for name in acls], np.int32)

    vpc_names = list(topo.vpcs)
    a["peered"] = np.array([topo.peered(x, y) for x in vpc_names for y in vpc_names], np.uint8)
    a["pn_vpc"] = np.array([v in pn.vpcs for pn in topo.private_networks for v in vpc_names], np.uint8)

    lb_list = list(topo.load_balancers.values())
    a["lb_source"] = np.array([lb_source(topo, lb) for lb in lb_list], np.uint64)
    a["lb_vip"] = np.array([lb.vip[1] for lb in lb_list], np.uint64)      # load balancers are IPv4 (model.py)
    a["lb_eip"] = np.array([lb.eip or 0 for lb in lb_list], np.uint64)
    a["lb_has_eip"] = np.array([lb.eip is not None for lb in lb_list], np.uint8)
    lstart, lcount, ls, be = [], [], [], []
    for j, lb in enumerate(lb_list):
        lstart.append(len(ls))
        lcount.append(len(lb.listeners))
        for listener in lb.listeners:
            ls.append((listener.ip_protocol, listener.port, lb.bypasses(listener), len(be), len(listener.backends), j))
            be.extend((b.nic, b.port, len(ls) - 1) for b in listener.backends)
    a["lb_lstart"] = np.array(lstart, np.int32)
    a["lb_lcount"] = np.array(lcount, np.int32)
    a["ls_proto"] = np.array([x[0] for x in ls], np.uint8)
    a["ls_port"] = np.array([x[1] for x in ls], np.uint16)
    a["ls_bypass"] = np.array([x[2] for x in ls], np.uint8)
    a["ls_bstart"] = np.array([x[3] for x in ls], np.int32)
    a["ls_bcount"] = np.array([x[4] for x in ls], np.int32)
    a["ls_lb"] = np.array([x[5] for x in ls], np.int32)
    a["be_nic"] = np.array([x[0] for x in be], np.int32)
    a["be_port"] = np.array([x[1] for x in be], np.uint16)
    a["be_ls"] = np.array([x[2] for x in be], np.int32)
    # NIC -> the backends (indexes into be_*) that forward to it, in file order (reference.backend_of)
    by_nic: list[list[int]] = [[] for _ in nics]
    for k, (nic, _, _) in enumerate(be):
        by_nic[nic].append(k)
    a["nb_start"] = np.array(np.cumsum([0] + [len(x) for x in by_nic])[:-1], np.int32)
    a["nb_count"] = np.array([len(x) for x in by_nic], np.int32)
    a["nb_be"] = np.array([k for x in by_nic for k in x], np.int32)
    return a


def _check_plan(a: dict[str, Any], n_nic: int, n_vpc: int, n_rules: int) -> None:
    """Every index the compiled code follows is in range (its loops run without bounds checks).
    (``nic_subnet``/``sr_subnet`` are only compared, never followed; ``nic_inst`` only reported.)"""
    def within(name: str, size: int, lo: int = 0) -> None:
        v = a[name]
        if len(v) and (v.min() < lo or v.max() >= size):
            raise AssertionError(f"plan: {name} out of range {lo}..{size - 1}")

    within("c_idx", max(n_nic, len(a["lb_source"]), 1))
    if len(a["ak_start"]) and (a["ak_start"] + a["ak_count"]).max() > len(a["c_kind"]):
        raise AssertionError("plan: candidate ranges out of range")
    within("vr_vpc", n_vpc)
    within("sr_vpc", n_vpc)
    within("mac_nic", n_nic)
    within("nic_vpc", n_vpc)
    within("be_nic", n_nic)
    within("be_ls", max(len(a["ls_proto"]), 1))
    within("ls_lb", max(len(a["lb_source"]), 1))
    within("nb_be", max(len(a["be_nic"]), 1))
    if len(a["nb_start"]) != n_nic or len(a["nb_count"]) != n_nic or (
            n_nic and (a["nb_start"] + a["nb_count"]).max() > len(a["nb_be"])):
        raise AssertionError("plan: per-NIC backend ranges out of range")
    if not (len(a["lb_vip"]) == len(a["lb_eip"]) == len(a["lb_has_eip"]) == len(a["lb_source"])):
        raise AssertionError("plan: load-balancer address arrays differ in length")
    within("nic_acl", max(len(a["acl_group"]) - 1, 0), lo=-1)
    lbs = len(a["lb_source"])
    if len(a["lb_lstart"]) != lbs or len(a["lb_lcount"]) != lbs:
        raise AssertionError("plan: load-balancer arrays differ in length")
    for k, (kind, idx) in enumerate(zip(a["c_kind"].tolist(), a["c_idx"].tolist())):
        if not (0 <= idx < (n_nic if kind == K_NIC else lbs)):
            raise AssertionError(f"plan: candidate {k} points past its table")
    if len(a["ls_bcount"]) and (a["ls_bcount"].min() < 1 or (a["ls_bstart"] + a["ls_bcount"]).max() > len(a["be_nic"])):
        raise AssertionError("plan: backend ranges out of range")
    if len(a["lb_lstart"]) and (a["lb_lstart"] + a["lb_lcount"]).max() > len(a["ls_proto"]):
        raise AssertionError("plan: listener ranges out of range")
    n_sg, n_acl = len(a["sg_classifiers"]), len(a["acl_classifiers"])
    within("nic_sg", max(n_sg, 1))
    within("acl_way", max(n_acl, 1))
    within("sg_rule", max(n_rules, 1))
    within("acl_rule", max(n_rules, 1))
    if len(a["acl_off"]) != n_acl + 1:
        raise AssertionError("plan: table offsets do not match the tables")
    if len(a["sg_allow"]) != len(a["sg_rule"]) or any(c.n_rules > len(a["sg_rule"]) for c in a["sg_classifiers"]):
        raise AssertionError("plan: a security-group table answers past its rows")
    for k, v in a.items():
        if isinstance(v, np.ndarray):
            a[k] = np.ascontiguousarray(v)
