"""Sharding: which shard (stateful engine) each packet goes to, so that packets sharing state meet.

The argument for soundness is in docs/scale-out.md; in short, every piece of dataplane state is an
entry reached through the (unordered) pair of addresses of the packets that touch it, once each
address is replaced by its *owner*:

* connection tracking (S11) and ACL connection tracking (S13) are per NIC, keyed by the packet's
  address pair (both directions: the key is unordered) with the NIC's EIP replaced by its private
  IP — so an EIP's owner is its NIC;
* an ICMP error reads the entry of the connection its embedded header quotes, so it is keyed by the
  embedded pair, not by its own addresses;
* fragment memory (S15) is keyed by (addresses, protocol, datagram id): ports never take part, so
  the first fragment (with ports) and the others (without) land together — except that the first
  fragment of a fragmented ICMP error is keyed by its embedded pair; its later fragments follow it
  through a small table of the coordinator (:class:`Router`);
* a load balancer's state (S14) is keyed by its listener, its backends and its source addresses, not
  by one address pair: every packet touching a listener address, a backend NIC or an LB source
  address goes to the one *load-balancer shard*;
* a virtual IP belongs to its holders (the instances it lists), so failover never splits it.

Owners are computed from every topology the shards will run (all versions of a timeline, both sides
of a diff): an address that is an EIP in one version and a private IP in the next joins both owners.
Hash collisions only merge owners (coarser, still sound), never split one.

The clock: connection and fragment timeouts compare with the dataplane clock, the latest capture
timestamp seen *in the whole capture*. A shard sees only its packets, so the coordinator sends it
the running maximum of the timestamps (:func:`clock`) in place of each packet's own timestamp; the
engine's clock is then exactly the single process's at every packet. Outputs keep the real
timestamps (the coordinator writes them).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from sgdp.capture import PacketBatch
from sgdp.topology import Topology

try:  # the compiled pass (route + clock + grouping by shard in one loop); NumPy below is the reference
    from sgdp.pipeline import _shard
except ImportError:  # pragma: no cover - a build without the extensions
    _shard = None

# The owner of every address that belongs to a load balancer's state; its pair key is LB_KEY.
LB_TOKEN = np.uint64(0x4C42_0000_0000_0001)
LB_KEY = np.uint64(0x4C42_5348_4152_4421)
SHARED_LB_SOURCE = 0x647D0001  # 100.125.0.1 (S14: the shared load balancers' source address)
ICMP_ERROR_TYPES = {1: (3, 4, 5, 11, 12), 58: (1, 2, 3, 4)}  # SPEC S11, as the engines read them
ICMP_PROTOS = (1, 58)
FRAGMENT_TIMEOUT = 30.0  # the engines' fragment memory (S15)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ONE = np.uint64(1)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise over uint64 (wraps modulo 2**64 by design)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        return x ^ (x >> np.uint64(31))


def address_value(l3: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """One 64-bit value per address, cheap (IPv4: the address and its version bit)."""
    with np.errstate(over="ignore"):
        v = lo ^ (l3.astype(np.uint64) << np.uint64(60))
        if hi.any():
            v ^= hi * _GOLDEN
        return v


def _addr_columns(addrs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    l3 = np.array([a[0] for a in addrs], np.uint8)
    hi = np.array([a[1] >> 64 for a in addrs], np.uint64)
    lo = np.array([a[1] & ((1 << 64) - 1) for a in addrs], np.uint64)
    return l3, hi, lo


class _AddressTable:
    """Exact lookup of the addresses the topologies name, vectorised: a direct-mapped table of
    ``2**bits`` slots over a multiplicative hash of the address value; addresses that share a slot
    go to a small sorted overflow array searched only for the packets that land on such a slot."""

    def __init__(self, values: np.ndarray, owners: np.ndarray):
        n = len(values)
        self.bits = max(10, min(22, int(n).bit_length() + 4))
        self.shift = np.uint64(64 - self.bits)
        size = 1 << self.bits
        slot = self._slot(values)
        counts = np.bincount(slot.astype(np.int64), minlength=size)
        single = counts[slot] == 1
        self.key = np.zeros(size, np.uint64)
        self.owner = np.zeros(size, np.uint64)
        self.state = np.zeros(size, np.uint8)  # 0 empty, 1 one address, 2 several (overflow)
        self.key[slot[single]] = values[single]
        self.owner[slot[single]] = owners[single]
        self.state[slot[single]] = 1
        self.state[slot[~single]] = 2
        order = np.argsort(values[~single], kind="stable")
        self.over_key = values[~single][order]
        self.over_owner = owners[~single][order]

    def _slot(self, v: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (v * _M2) >> self.shift

    def lookup(self, v: np.ndarray) -> np.ndarray:
        slot = self._slot(v)
        state = self.state[slot]
        out = np.where((state == 1) & (self.key[slot] == v), self.owner[slot], v)
        rows = np.flatnonzero(state == 2)
        if len(rows):
            vv = v[rows]
            pos = np.minimum(np.searchsorted(self.over_key, vv), len(self.over_key) - 1)
            hit = self.over_key[pos] == vv
            out[rows[hit]] = self.over_owner[pos[hit]]
        return out


class _Owners:
    """Union-find over addresses ``(version, int)``."""

    def __init__(self) -> None:
        self.parent: dict[tuple[int, int], tuple[int, int]] = {}
        self.lb: set[tuple[int, int]] = set()

    def find(self, a: tuple[int, int]) -> tuple[int, int]:
        self.parent.setdefault(a, a)
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, addrs: Iterable[tuple[int, int]]) -> None:
        addrs = list(addrs)
        for a in addrs[1:]:
            ra, rb = self.find(addrs[0]), self.find(a)
            if ra != rb:
                self.parent[max(ra, rb)] = min(ra, rb)


def _nic_addresses(nic) -> list[tuple[int, int]]:
    out = list(nic.fixed_ips)
    if nic.eip is not None:
        out.append((4, nic.eip))
    return out


class ShardKeys:
    """The owner map of a set of topologies and the 64-bit shard key of every packet of a batch."""

    def __init__(self, topologies: Iterable[Topology]):
        from sgdp.engine import lb_source

        owners = _Owners()
        lb_addrs: list[tuple[int, int]] = []
        for topo in topologies:
            for nic in topo.nics:
                owners.union(_nic_addresses(nic))  # fixed IPs and the EIP: one endpoint (S11)
            by_instance: dict[str, list] = {}
            for nic in topo.nics:
                by_instance.setdefault(nic.instance, []).append(nic)
            for vip in topo.virtual_ips:  # a virtual IP with its holder and every instance it lists
                members = [vip.ip, topo.nics[vip.holder_nic].fixed_ips[0]]
                for inst in vip.instances:
                    members.extend(n.fixed_ips[0] for n in by_instance.get(inst, ()) if n.subnet == vip.subnet)
                owners.union(members)
            for lb in topo.load_balancers.values():
                lb_addrs.append(lb.vip)
                if lb.eip is not None:
                    lb_addrs.append((4, lb.eip))
                lb_addrs.append((4, lb_source(topo, lb)))
                if lb.type == "shared":
                    lb_addrs.append((4, SHARED_LB_SOURCE))
                for listener in lb.listeners:
                    for backend in listener.backends:
                        lb_addrs.extend(_nic_addresses(topo.nics[backend.nic]))
        if lb_addrs:
            owners.union(lb_addrs)
            owners.lb.add(owners.find(lb_addrs[0]))
        addrs = sorted(owners.parent)
        self.load_balancers = bool(lb_addrs)
        self.table = None
        if not addrs:
            return
        roots = [owners.find(a) for a in addrs]
        values = address_value(*_addr_columns(addrs))
        root_values = address_value(*_addr_columns(roots))
        is_lb = np.array([r in owners.lb for r in roots], bool)
        self.table = _AddressTable(values, np.where(is_lb, LB_TOKEN, root_values))

    def owner(self, l3: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """The owner of each address: its group's value when the topologies name it, else its own value."""
        v = address_value(l3, hi, lo)
        return v if self.table is None else self.table.lookup(v)

    def keys(self, c: dict[str, np.ndarray]) -> np.ndarray:
        """The shard key of every packet of a batch's columns (uint64)."""
        return self.keys_and_quoted(c, _icmp_rows(c))[0]

    def keys_and_quoted(self, c: dict[str, np.ndarray], icmp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The shard keys, and the rows (of ``icmp``, the batch's ICMP rows) keyed by the pair their
        embedded header quotes instead of their own."""
        a = self.owner(c["l3"], c["src_hi"], c["src_lo"])
        b = self.owner(c["l3"], c["dst_hi"], c["dst_lo"])
        quoted = icmp[:0]
        if len(icmp):  # ICMP errors quoting a connection: keyed by the quoted pair
            itype, p = c["icmp_type"][icmp], c["proto"][icmp]
            error = np.zeros(len(icmp), bool)
            for q, types in ICMP_ERROR_TYPES.items():
                error |= (p == q) & np.isin(itype, types)
            quoted = icmp[error & (c["frag_offset"][icmp] == 0) & (c["inner_l3"][icmp] != 0)]
            if len(quoted):
                l3 = c["inner_l3"][quoted]
                a[quoted] = self.owner(l3, c["inner_src_hi"][quoted], c["inner_src_lo"][quoted])
                b[quoted] = self.owner(l3, c["inner_dst_hi"][quoted], c["inner_dst_lo"][quoted])
        with np.errstate(over="ignore"):
            key = (np.minimum(a, b) * _M1) ^ (np.maximum(a, b) * _M2)
            key ^= key >> np.uint64(29)
        if self.load_balancers:
            key[(a == LB_TOKEN) | (b == LB_TOKEN)] = LB_KEY
        return key, quoted


def _icmp_rows(c: dict[str, np.ndarray]) -> np.ndarray:
    proto = c["proto"]
    return np.flatnonzero((proto == 1) | (proto == 58))


def shard_of(keys: np.ndarray, shards: int) -> np.ndarray:
    """Shard numbers 0..shards-1 (uint8) from shard keys (their high half, times the count, high half)."""
    with np.errstate(over="ignore"):
        return (((keys >> np.uint64(32)) * np.uint64(shards)) >> np.uint64(32)).astype(np.uint8)


def clock(ts: np.ndarray, previous: float) -> np.ndarray:
    """The dataplane clock at every packet: the running maximum of the timestamps so far."""
    if len(ts) == 0:
        return ts.copy()
    return np.maximum(np.maximum.accumulate(ts), previous)


class Router:
    """Shard numbers for the packets of a capture, batch after batch (stateful for one case only:
    the later fragments of a fragmented ICMP error follow its first fragment, which went with the
    connection it quotes)."""

    def __init__(self, keys: ShardKeys, shards: int):
        if not 1 <= shards <= 255:
            raise ValueError(f"shards: {shards} is not in 1..255")
        self.keys = keys
        self.shards = shards
        self.owners = _shard.Owners(keys.table) if _shard is not None else None
        # first fragments of ICMP errors keyed by their quoted pair: datagram -> (clock, shard). Any
        # other datagram's fragments are keyed by their own pair, so they meet without a table.
        self.fragments: dict[tuple, tuple[float, int]] = {}

    def route(self, c: dict[str, np.ndarray], now: np.ndarray) -> np.ndarray:
        """Shard of every packet of a batch's columns; ``now`` is the batch's :func:`clock`."""
        icmp = _icmp_rows(c)
        key, quoted = self.keys.keys_and_quoted(c, icmp)
        shard = shard_of(key, self.shards)
        if not len(icmp) or (not self.fragments and not c["more_fragments"][quoted].any()):
            return shard  # no fragmented ICMP error in this batch nor in flight: nothing to follow
        fragment = ((c["frag_offset"][icmp] > 0) | (c["more_fragments"][icmp] != 0)) & (c["status"][icmp] == 0) \
            & ((c["l3"][icmp] == 4) | (c["l3"][icmp] == 6))
        rows = icmp[fragment]
        if len(rows):
            self._fragments(c, now, shard, rows, np.isin(rows, quoted))
        return shard

    def _fragments(self, c: dict[str, np.ndarray], now: np.ndarray, shard: np.ndarray, rows: np.ndarray,
                   quoted: np.ndarray) -> None:
        # Python per row, but only for ICMP fragments while a fragmented ICMP error is in flight
        # (rare: ICMP errors fit in one packet); in capture order, as the engines' fragment memory.
        cols = [c[k][rows].tolist() for k in ("l3", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "frag_id",
                                              "frag_offset", "more_fragments")]
        clocks = now[rows].tolist()
        for j, (l3, sh, sl, dh, dl, proto, fid, off, mf, q) in enumerate(zip(*cols, quoted.tolist())):
            key = (l3, sh, sl, dh, dl, proto, fid)
            if off == 0:
                if mf and q:
                    self.fragments[key] = (clocks[j], int(shard[rows[j]]))
                elif mf:  # a new datagram with this id, keyed by its own pair: forget the old one
                    self.fragments.pop(key, None)
            else:
                seen = self.fragments.get(key)
                if seen is not None:  # (expired or not: an expired first fragment is ignored anywhere)
                    shard[rows[j]] = seen[1]
        if len(self.fragments) > 4096:
            t = clocks[-1]
            self.fragments = {k: v for k, v in self.fragments.items() if t - v[0] <= FRAGMENT_TIMEOUT}

    def batch(self, batch: PacketBatch, previous_clock: float) -> tuple[np.ndarray, np.ndarray]:
        """(shard of every packet, the clock column) for a batch."""
        now = clock(batch.columns["ts"], previous_clock)
        return self.route(batch.columns, now), now

    def grouped(self, batch: PacketBatch, previous_clock: float, now: np.ndarray | None = None,
                order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`batch`, and the rows grouped by shard: ``(shard, clock, order, bounds)``, shard
        k's rows being ``order[bounds[k]:bounds[k + 1]]`` in capture order. One compiled pass
        (sgdp.pipeline._shard) unless a fragmented ICMP error is in flight, which takes the NumPy
        path above with its table (the two give the same shards: tests compare them). ``now`` and
        ``order`` (float64 and int64, one row per packet): where the clock and the order go (the
        worker processes' shared memory), else new arrays."""
        n = len(batch)
        order = np.empty(n, np.int64) if order is None else order
        now = np.empty(n, np.float64) if now is None else now
        bounds = np.empty(self.shards + 1, np.int64)
        if self.owners is not None and not self.fragments:
            shard = np.empty(n, np.uint8)
            follow = _shard.route(self.owners, self.keys.load_balancers, int(LB_TOKEN), int(LB_KEY), self.shards,
                                  batch.columns, previous_clock, shard, now, order, bounds)
            if not follow:
                return shard, now, order, bounds
        shard, running = self.batch(batch, previous_clock)
        now[:] = running
        if _shard is not None:
            _shard.grouped(shard, self.shards, order, bounds)
        else:  # pragma: no cover - a build without the extensions
            order[:] = np.argsort(shard, kind="stable")
            bounds[0] = 0
            bounds[1:] = np.cumsum(np.bincount(shard, minlength=self.shards))
        return shard, now, order, bounds
