"""Builds the bundled example captures with scapy. Run from this folder: python make_pcaps.py

Each capture has an expected verdict file worked out by hand from the SPEC and docs/semantics.md
(never copied from sgdp's output); `sgdp replay TOPOLOGY CAPTURE --expect EXPECTED` checks it, and
the scenario files in examples/ replay each capture in a `capture:` step.

figure1.pcap — what `tcpdump -i eth0` on ECS-A01 of examples/figure1/topology.yaml would show: the
instance's own view (Internet traffic addressed to its private IP 192.168.0.10, as the EIP is
translated before the packet reaches it). Its expected verdicts, worked out by hand from the SPEC,
are in figure1.expected.csv; `sgdp replay ... --expect figure1.expected.csv` checks them.

figure2.pcap — examples/figure2/topology.yaml, a mirror of VPC-A's traffic (each packet once): office
SSH over the private network, traffic between members of Sg-A, Sg-A to Sg-B SSH, and what is denied.
Expected: figure2.expected.csv.

lb.pcap — examples/lb/topology.yaml, the load balancers' traffic: an Internet client through the
shared LB's client-IP-transfer listener (bypass) and the backend's replies to it, listeners without
transfer (the backend's group applies to 100.125.0.1) and the backend's replies to the LB, the LB's
replies as an internal client receives them, the dedicated LB, listeners that do not exist, a health
check. Expected: lb.expected.csv.

fragments.pcap — examples/figure2/topology.yaml again: IPv4 fragments (later fragments take their
first fragment's verdict; orphans are evaluated without ports; the 30 s fragment memory) and ICMP
errors (related to a tracked connection, or not; an expired one). Expected: fragments.expected.csv.

The new captures are built with sgdp.capture.craft, the scapy helpers sgdp provides for this.
"""

from scapy.all import ARP, DNS, DNSQR, ICMP, IP, TCP, UDP, Ether, PcapWriter, Raw

T0 = 1_700_000_000
ECS = "192.168.0.10"
ECS_MAC = "fa:16:3e:00:00:10"
GW_MAC = "fa:16:3e:ff:ff:01"
CLIENT = "198.51.100.7"
WEB = "93.184.216.34"
DNS_SERVER = "100.125.1.250"  # Huawei Cloud's private DNS


def inbound(pkt):
    return Ether(src=GW_MAC, dst=ECS_MAC) / pkt


def outbound(pkt):
    return Ether(src=ECS_MAC, dst=GW_MAC) / pkt


def figure1():
    frames = [
        (0.000, Ether(src=ECS_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=ECS, pdst="192.168.0.1", hwsrc=ECS_MAC)),
        (1.000, inbound(IP(src=CLIENT, dst=ECS) / ICMP(type=8, id=7, seq=1) / Raw(b"ping" * 8))),
        (1.001, outbound(IP(src=ECS, dst=CLIENT) / ICMP(type=0, id=7, seq=1) / Raw(b"ping" * 8))),
        (2.000, inbound(IP(src=CLIENT, dst=ECS) / TCP(sport=51000, dport=22, flags="S", seq=1000))),
        (3.000, inbound(IP(src=CLIENT, dst=ECS) / TCP(sport=51000, dport=22, flags="S", seq=1000))),
        (4.000, inbound(IP(src=CLIENT, dst=ECS) / TCP(sport=51001, dport=3389, flags="S", seq=5000))),
        (5.000, outbound(IP(src=ECS, dst=WEB) / TCP(sport=40000, dport=443, flags="S", seq=100))),
        (5.020, inbound(IP(src=WEB, dst=ECS) / TCP(sport=443, dport=40000, flags="SA", seq=900, ack=101))),
        (5.021, outbound(IP(src=ECS, dst=WEB) / TCP(sport=40000, dport=443, flags="A", seq=101, ack=901))),
        (5.022, outbound(IP(src=ECS, dst=WEB) / TCP(sport=40000, dport=443, flags="PA", seq=101, ack=901) / Raw(b"\x16\x03\x01" + b"\0" * 60))),
        (5.050, inbound(IP(src=WEB, dst=ECS) / TCP(sport=443, dport=40000, flags="PA", seq=901, ack=164) / Raw(b"\x16\x03\x03" + b"\0" * 90))),
        (5.060, outbound(IP(src=ECS, dst=WEB) / TCP(sport=40000, dport=443, flags="FA", seq=164, ack=994))),
        (5.080, inbound(IP(src=WEB, dst=ECS) / TCP(sport=443, dport=40000, flags="FA", seq=994, ack=165))),
        (5.081, outbound(IP(src=ECS, dst=WEB) / TCP(sport=40000, dport=443, flags="A", seq=165, ack=995))),
        (6.000, outbound(IP(src=ECS, dst=DNS_SERVER) / UDP(sport=53000, dport=53) / DNS(rd=1, qd=DNSQR(qname="example.com")))),
        (6.010, inbound(IP(src=DNS_SERVER, dst=ECS) / UDP(sport=53, dport=53000) / DNS(qr=1, qd=DNSQR(qname="example.com")))),
    ]
    with PcapWriter("figure1.pcap", linktype=1, sync=True) as out:
        for dt, pkt in frames:
            pkt.time = T0 + dt
            out.write(pkt)
        # a frame cut by the snap length inside its IP header: malformed (S15)
        cut = bytes(inbound(IP(src=CLIENT, dst=ECS) / TCP(sport=51002, dport=80, flags="S")))
        out.write_packet(cut[:20], sec=T0 + 7, usec=0, caplen=20, wirelen=len(cut))


# ------------------------------------------------------------------------------------- figure2
# The helpers below are sgdp's own (sgdp.capture.craft); they need sgdp installed (pip install -e .).

from sgdp import craft  # noqa: E402

OFFICE = "172.16.0.5"
A01, A02, B01 = "192.168.0.10", "192.168.0.11", "192.168.1.10"
MACS = {A01: "fa:16:3e:00:00:10", A02: "fa:16:3e:00:00:11", B01: "fa:16:3e:00:01:10"}


def frame(pkt):
    """An Ethernet frame from the sender's MAC (the gateway's for a sender outside the VPC's NICs)."""
    return craft.ether(pkt, src=MACS.get(pkt.src, GW_MAC), dst=MACS.get(pkt.dst, GW_MAC))


def seg(src, dst, sport, dport, flags, payload=b""):
    return craft.tcp_segment(src, dst, sport, dport, flags, payload=payload)


def figure2():
    t0 = 1_700_001_000
    ssh = b"SSH-2.0-OpenSSH_9.6\r\n"
    frames = [
        # office SSH to ECS-A01 over the private network, then its close (rows 0-4, 19-21)
        (0.000, seg(OFFICE, A01, 50000, 22, "S")),
        (0.010, seg(A01, OFFICE, 22, 50000, "SA")),
        (0.020, seg(OFFICE, A01, 50000, 22, "A")),
        (0.030, seg(OFFICE, A01, 50000, 22, "PA", ssh)),
        (0.040, seg(A01, OFFICE, 22, 50000, "PA", ssh)),
        (1.000, seg(OFFICE, A01, 50001, 3389, "S")),                 # RDP from the office
        (2.000, seg(A01, A02, 41000, 3306, "S")),                    # within Sg-A
        (2.001, seg(A02, A01, 3306, 41000, "SA")),
        (2.002, seg(A01, A02, 41000, 3306, "A")),
        (3.000, seg(A01, B01, 42000, 22, "S")),                      # Sg-A to Sg-B SSH
        (3.001, seg(B01, A01, 22, 42000, "SA")),
        (3.002, seg(A01, B01, 42000, 22, "A")),
        (3.003, seg(A01, B01, 42000, 22, "PA", ssh)),
        (3.004, seg(B01, A01, 22, 42000, "PA", ssh)),
        (4.000, seg(B01, A01, 43000, 22, "S")),                      # Sg-B to Sg-A SSH
        (5.000, seg(OFFICE, B01, 50002, 22, "S")),                   # office to Sg-B SSH
        (6.000, craft.flow(A02, A01, proto="icmp", icmp_id=0x77)[0][1]),   # ping within Sg-A
        (6.001, craft.flow(A02, A01, proto="icmp", icmp_id=0x77)[1][1]),
        (7.000, seg(A01, B01, 44000, 3306, "S")),                    # Sg-A to Sg-B MySQL
        (8.000, seg(OFFICE, A01, 50000, 22, "FA")),
        (8.001, seg(A01, OFFICE, 22, 50000, "FA")),
        (8.002, seg(OFFICE, A01, 50000, 22, "A")),
        (9.000, craft.ip(B01, OFFICE) / UDP(sport=45000, dport=514) / Raw(b"<14>sgdp: hello")),  # syslog
    ]
    craft.write_pcap("figure2.pcap", [(t0 + dt, frame(p)) for dt, p in frames])


# ------------------------------------------------------------------------------------------ lb

W01, C01 = "192.168.0.10", "192.168.0.20"
LB_EIP, LB_VIP, LB_DED = "203.0.113.50", "192.168.0.100", "192.168.0.101"
LB_SNAT = "100.125.0.1"      # where sgdp's shared LB forwards from without client-IP transfer
HEALTH = "100.125.64.10"     # a health checker of the shared LB
MACS.update({C01: "fa:16:3e:00:00:20"})


def lb():
    t0 = 1_700_002_000
    get, ok = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"
    frames = [
        # Internet client -> LB EIP tcp/80 (client-IP transfer), backend replies to the client (rows 0-7)
        (0.000, seg(CLIENT, LB_EIP, 51000, 80, "S")),
        (0.001, seg(W01, CLIENT, 80, 51000, "SA")),
        (0.002, seg(CLIENT, LB_EIP, 51000, 80, "A")),
        (0.003, seg(CLIENT, LB_EIP, 51000, 80, "PA", get)),
        (0.004, seg(W01, CLIENT, 80, 51000, "PA", ok)),
        (0.005, seg(CLIENT, LB_EIP, 51000, 80, "FA")),
        (0.006, seg(W01, CLIENT, 80, 51000, "FA")),
        (0.007, seg(CLIENT, LB_EIP, 51000, 80, "A")),
        # tcp/8080 without transfer: the backend's SYN-ACK goes to the LB's address (rows 8-10)
        (1.000, seg(CLIENT, LB_EIP, 51001, 8080, "S")),
        (1.001, seg(W01, LB_SNAT, 8080, 51001, "SA")),
        (1.002, seg(CLIENT, LB_EIP, 51001, 8080, "A")),
        (2.000, seg(CLIENT, LB_EIP, 51002, 9000, "S")),              # tcp/9000, no transfer
        (3.000, seg(CLIENT, LB_EIP, 51002, 9000, "S")),              # its retransmission
        (4.000, seg(CLIENT, LB_EIP, 51003, 88, "S")),                # http/88 (transfer ignored)
        # ECS-C01 through the shared LB's VIP tcp/80; the LB's reply as C01 receives it (rows 14-16)
        (5.000, seg(C01, LB_VIP, 40001, 80, "S")),
        (5.001, seg(LB_VIP, C01, 80, 40001, "SA")),
        (5.002, seg(C01, LB_VIP, 40001, 80, "A")),
        # ECS-C01 through the dedicated LB (rows 17-18)
        (6.000, seg(C01, LB_DED, 40002, 80, "S")),
        (6.001, seg(LB_DED, C01, 80, 40002, "SA")),
        (7.000, seg(CLIENT, LB_EIP, 51004, 443, "S")),               # no listener on 443
        (8.000, seg(C01, LB_VIP, 40003, 22, "S")),                   # no listener on 22
        (9.000, seg(CLIENT, W01, 51005, 80, "S")),                   # the forwarded leg as W01 sees it (S14)
        (10.000, seg(HEALTH, W01, 41000, 8080, "S")),                # health check
        (10.001, seg(W01, HEALTH, 8080, 41000, "SA")),
    ]
    craft.write_pcap("lb.pcap", [(t0 + dt, frame(p)) for dt, p in frames])


# ----------------------------------------------------------------------------------- fragments

OFFICE_DNS, OFFICE_ROUTER, OFFICE_HOST = "172.16.0.53", "172.16.0.1", "172.16.0.9"


def fragments():
    t0 = 1_700_003_000
    dns_answer = craft.ip(OFFICE_DNS, A01, id=0x1001) / UDP(sport=53, dport=53001) / Raw(b"a" * 3000)
    blocked = craft.ip(OFFICE, A01, id=0x2002) / UDP(sport=40000, dport=5001) / Raw(b"b" * 2000)
    ping = craft.ip(A02, A01, id=0x3001) / ICMP(type=8, id=0x55, seq=1) / Raw(b"p" * 2000)
    pong = craft.ip(A01, A02, id=0x3002) / ICMP(type=0, id=0x55, seq=1) / Raw(b"p" * 2000)

    def orphan(src, dst, proto, frag_id):
        """A last fragment (offset 1480) whose first fragment never went by."""
        return craft.ip(src, dst, id=frag_id, proto=proto, frag=185) / Raw(b"o" * 100)

    syslog = craft.ip(A01, OFFICE) / UDP(sport=45000, dport=514) / Raw(b"<14>sgdp: hello")
    untracked = craft.ip(A01, OFFICE) / UDP(sport=45999, dport=514) / Raw(b"<14>sgdp: hello")
    probe = craft.ip(A01, OFFICE_HOST) / ICMP(type=8, id=0x99, seq=1) / Raw(b"ttl")
    d1, d2, d3 = craft.fragments(dns_answer)
    b1, b2 = craft.fragments(blocked)
    p1, p2 = craft.fragments(ping)
    q1, q2 = craft.fragments(pong)
    late = craft.fragments(dns_answer)[2]
    frames = [
        (0.000, craft.ip(A01, OFFICE_DNS) / UDP(sport=53001, dport=53) / Raw(b"q" * 30)),  # DNS query
        (0.010, d1), (0.010, d2), (0.010, d3),                       # its answer in 3 fragments
        (1.000, b1), (1.000, b2),                                    # a denied datagram in 2 fragments
        (2.000, p1), (2.000, p2),                                    # a big ping within Sg-A ...
        (2.001, q1), (2.001, q2),                                    # ... and its reply
        (3.000, orphan(OFFICE, A01, 17, 0x4001)),                    # orphan fragments
        (3.100, orphan(A02, A01, 17, 0x4002)),
        (3.200, orphan(OFFICE, A01, 6, 0x4003)),
        (4.000, syslog),
        (4.001, craft.icmp_error(OFFICE, syslog)),                   # port unreachable: related
        (5.000, craft.icmp_error(OFFICE, untracked)),                # about a flow never seen
        (6.000, craft.icmp_error(OFFICE_ROUTER, syslog, type=11, code=0)),
        (7.000, probe),
        (7.001, craft.icmp_error(OFFICE_ROUTER, probe, type=11, code=0)),
        (40.000, craft.icmp_error(OFFICE_ROUTER, probe, type=11, code=0)),  # 33 s later
        (45.000, late),                                              # a late copy of the last fragment
    ]
    craft.write_pcap("fragments.pcap", [(t0 + dt, frame(p)) for dt, p in frames])


if __name__ == "__main__":
    figure1()
    figure2()
    lb()
    fragments()
