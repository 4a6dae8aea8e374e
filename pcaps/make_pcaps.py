"""Builds the bundled example captures with scapy. Run from this folder: python make_pcaps.py

figure1.pcap — what `tcpdump -i eth0` on ECS-A01 of examples/figure1/topology.yaml would show: the
instance's own view (Internet traffic addressed to its private IP 192.168.0.10, as the EIP is
translated before the packet reaches it). Its expected verdicts, worked out by hand from the SPEC,
are in figure1.expected.csv; `sgdp replay ... --expect figure1.expected.csv` checks them.
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


if __name__ == "__main__":
    figure1()
