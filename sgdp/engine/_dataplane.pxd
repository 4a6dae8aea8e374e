# The compiled dataplane's C structures (see _dataplane.pyx and sgdp/fast.py).
#
# Addresses are 128-bit values split in (hi, lo) uint64 halves exactly as in sgdp.capture.packet
# (IPv4 in the low half, high half 0). NIC, VPC, LB... indexes are positions in the plan arrays
# built by sgdp/fast.py from the topology (the same order as Topology.nics etc.).

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# One endpoint candidate (reference.Endpoint): kind (K_*), how (H_*) and the index of the NIC,
# load balancer, VPC or private network it denotes (-1 for service/external).
cdef struct Endpoint:
    uint8_t kind
    uint8_t how
    int32_t idx

# Connection-tracking key, normalised: side a <= side b as (hi, lo, port) triples.
# table: 0 security groups, 1 network ACL, 2 load-balancer sessions (S14: at the backend NIC, keyed
# by the client's 5-tuple as sent to the listener); nic: NIC index the table belongs to.
cdef struct CtKey:
    uint64_t a_hi
    uint64_t a_lo
    uint64_t b_hi
    uint64_t b_lo
    uint32_t nic
    uint16_t a_port
    uint16_t b_port
    uint8_t l3
    uint8_t proto
    uint8_t table
    # not part of the key (ct_eq and ct_hash leave it out; the key's padding had room for it): the
    # serial number ct_insert gave the entry, moved with it, never shared by two live entries, so
    # a (slot, serial) pair remembered by the flow cache finds out whether the entry is still there
    uint32_t serial

# One slot of the open-addressing table. lb: opened by a load balancer's client-IP-transfer forwarding. used: 0 empty, 1 occupied.
# state: TCP 0 not yet established, 1 established, 2 closing; others 0 unreplied, 1 replied.
# orig_low: 1 when the opener was side a of the key. inbound: opened at an ingress stage.
# aux: a load-balancer session's backend-leg source port (table 2). 64 bytes with the key.
cdef struct CtSlot:
    CtKey key
    double last
    uint8_t used
    uint8_t state
    uint8_t orig_low
    uint8_t inbound
    uint8_t lb
    uint16_t aux

# Remembered first fragment (S15): key and the verdict row it got.
cdef struct FragSlot:
    uint64_t src_hi
    uint64_t src_lo
    uint64_t dst_hi
    uint64_t dst_lo
    uint32_t frag_id
    uint8_t l3
    uint8_t proto
    uint8_t used
    double time
    uint8_t verdict
    uint8_t reason
    uint8_t direction
    int32_t instance
    int32_t group
    int32_t rule

# One verdict row being built (codes of sgdp.capture.packet; -1 = empty).
cdef struct Row:
    uint8_t verdict
    uint8_t reason
    uint8_t direction
    int32_t instance
    int32_t group
    int32_t rule

# The packet fields the sequential pass needs (one row of the packet columns).
cdef struct Pkt:
    uint64_t src_hi
    uint64_t src_lo
    uint64_t dst_hi
    uint64_t dst_lo
    uint64_t inner_src_hi
    uint64_t inner_src_lo
    uint64_t inner_dst_hi
    uint64_t inner_dst_lo
    uint16_t sport
    uint16_t dport
    uint16_t flags
    uint16_t icmp_id
    uint16_t inner_sport
    uint16_t inner_dport
    int16_t icmp_type
    int16_t icmp_code
    uint8_t l3
    uint8_t proto
    uint8_t frag
    uint8_t inner_l3
    uint8_t inner_proto

# What each stage of one packet sees (reference.View, per stage), filled by resolve_one.
# mode: early verdict (ev/er/einst), normal, load-balancer bypass or forward, or a packet to a
# load-balancer address without a listener from a NIC (a reply on a backend leg when the NIC has a
# live entry). e_*: the sender's egress (peer address, genuine-member flag, the source the outbound
# ACL sees); i_*: the receiver's ingress (peer, the addresses and destination port of the packet as
# delivered, the destination the inbound ACL sees); b_*: the load balancer's backend.
# The S14 checks that need connection tracking (Dataplane.evaluate): lbform_lb, the load balancer
# that sent a packet (a reply of one of its sessions?, -1: none); reply_nic, the sending NIC (a
# backend's reply in a client-IP-transfer session?, -1: not a candidate); fwd, 1 for the forwarded
# leg of a client-IP-transfer listener as captured on the backend (i_nic), 2 for a candidate that
# counts only within the client's session; path: whether the sender and receiver have a path.
cdef struct View:
    uint64_t e_peer_hi
    uint64_t e_peer_lo
    uint64_t e_asrc_hi
    uint64_t e_asrc_lo
    uint64_t i_peer_hi
    uint64_t i_peer_lo
    uint64_t i_src_hi
    uint64_t i_src_lo
    uint64_t i_dst_hi
    uint64_t i_dst_lo
    uint64_t i_adst_hi
    uint64_t i_adst_lo
    int32_t einst
    int32_t e_nic
    int32_t i_nic
    int32_t b_nic
    int32_t lbform_lb
    int32_t reply_nic
    uint16_t i_dport
    uint16_t b_port
    uint8_t mode
    uint8_t ev
    uint8_t er
    uint8_t e_gen
    uint8_t i_gen
    uint8_t exempt
    uint8_t fwd
    uint8_t path

# One slot of a plan's exact-address hash table (count 0: empty): the candidates of address
# (l3, hi, lo) are c_kind/c_how/c_idx[start : start + count]; the first of them also in the slot
# (kind, how, idx: most addresses have one).
cdef struct AddrSlot:
    uint64_t hi
    uint64_t lo
    int32_t start
    int32_t count
    uint8_t l3
    uint8_t kind
    uint8_t how
    int32_t idx

# One slot of a plan's endpoint-pair cache (used 0: empty): the sender and receiver that
# reference._choose gives for the addresses (l3, sh:sl) -> (dh:dl) and the sender's MAC (-1: none).
# They depend on these and the plan alone, so a slot is simply overwritten by the next pair that
# hashes to it. 64 bytes.
cdef struct PairSlot:
    uint64_t sh
    uint64_t sl
    uint64_t dh
    uint64_t dl
    int64_t mac
    Endpoint s
    Endpoint r
    uint8_t l3
    uint8_t used

# One slot of the dataplane's flow cache (Dataplane.run), 128 bytes on a 128-byte boundary: what
# the last packet with these header fields (those resolve_one and the connection keys read; not a
# fragment) came to, so that the next one skips resolve_one and the stages. kind 0: empty;
# FLOW_EARLY: the verdict, reason and instance an early verdict of the plan gave (direction none);
# FLOW_EST: a plain stage path (no load-balancer case) whose n connection entries, one per filter in
# the order the stages ran them, were ct[slot[f]] with serial[f] (orig_low of filter f in bit f of
# low): when all are still there and live, the packet is established at each and the row is allowed,
# established, at instance/direction (the last stage's). check_lb: the sender is a NIC whose live
# load-balancer entry would take another path (Dataplane.evaluate), looked for only once one exists.
cdef struct FlowSlot:
    uint64_t sh
    uint64_t sl
    uint64_t dh
    uint64_t dl
    int64_t mac
    uint16_t sport
    uint16_t dport
    uint16_t icmp_id
    uint8_t l3
    uint8_t proto
    uint8_t kind
    uint8_t n
    uint8_t low
    uint8_t check_lb
    uint8_t verdict
    uint8_t reason
    uint8_t direction
    int32_t instance
    uint32_t slot[4]
    uint32_t serial[4]
    uint8_t pad[32]
