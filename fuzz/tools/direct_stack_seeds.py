#!/usr/bin/env python3
"""Writes the direct_stack seeds: a peer (10.0.0.1, fd00::1) talking to the
stack (10.0.0.2, fd00::2). Checksums are left zero: flag bit 0 has the
target fill them in; bit 2 makes TCP segments follow the connection."""
import os
import struct
import sys

US = bytes([2, 0, 0, 0, 0, 2])
PEER = bytes([2, 0, 0, 0, 0, 1])
V4_US, V4_PEER = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1])
V6_US = bytes.fromhex("fd000000000000000000000000000002")
V6_PEER = bytes.fromhex("fd000000000000000000000000000001")
FIX, MAC, FOLLOW = 1, 2, 4


def frame(flags, body, time_exp=10):
    return struct.pack("<HB", len(body), flags | (time_exp << 3)) + body


def eth(kind, payload, dst=US):
    return dst + PEER + struct.pack(">H", kind) + payload


def ipv4(proto, payload):
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, V4_PEER, V4_US) + payload


def ipv6(nh, payload, src=V6_PEER, dst=V6_US):
    return struct.pack(">IHBB16s16s", 6 << 28, len(payload), nh, 255, src, dst) + payload


def tcp(sport, dport, seq, ack, flags, data=b""):
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 8192, 0, 0) + data


def udp(sport, dport, data):
    return struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data


SYN, ACK, PSH, FIN, RST = 2, 16, 8, 1, 4
arp = eth(0x0806, struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER, V4_PEER, bytes(6), V4_US), b"\xff" * 6)
ns = ipv6(58, struct.pack(">BBHI16s", 135, 0, 0, 0, V6_US) + bytes([1, 1]) + PEER)


def conversation(ip, ether, port, data):
    return [
        frame(FIX | MAC, eth(ether, ip(6, tcp(40000, port, 1000, 0, SYN)))),
        frame(FIX | MAC | FOLLOW, eth(ether, ip(6, tcp(40000, port, 0, 0, ACK)))),
        frame(FIX | MAC | FOLLOW, eth(ether, ip(6, tcp(40000, port, 0, 0, ACK | PSH, data)))),
        frame(FIX | MAC | FOLLOW, eth(ether, ip(6, tcp(40000, port, 0, 0, ACK | FIN))), 18),
        frame(FIX | MAC | FOLLOW, eth(ether, ip(6, tcp(40000, port, 0, 0, ACK))), 25),
    ]


v4 = lambda proto, p: ipv4(proto, p)
v6 = lambda nh, p: ipv6(nh, p)
seeds = {
    "tcp_echo_v4": [frame(MAC, arp)] + conversation(v4, 0x0800, 7, b"hello"),
    "tcp_drop_v4": [frame(MAC, arp)] + conversation(v4, 0x0800, 9, b"x" * 100),
    "tcp_echo_v6": [frame(FIX | MAC, eth(0x86DD, ns))] + conversation(v6, 0x86DD, 7, b"hello"),
    "tcp_closed_port": [frame(MAC, arp), frame(FIX | MAC, eth(0x0800, ipv4(6, tcp(40001, 80, 5, 0, SYN))))],
    "tcp_reset": [frame(MAC, arp)] + conversation(v4, 0x0800, 7, b"a")[:2]
    + [frame(FIX | MAC | FOLLOW, eth(0x0800, ipv4(6, tcp(40000, 7, 0, 0, RST))))],
    "udp_v4": [frame(MAC, arp), frame(FIX | MAC, eth(0x0800, ipv4(17, udp(5000, 7, b"ping"))))],
    "udp_v6": [frame(FIX | MAC, eth(0x86DD, ns)), frame(FIX | MAC, eth(0x86DD, ipv6(17, udp(5000, 7, b"ping6"))))],
    "icmp_v4": [frame(MAC, arp), frame(FIX | MAC, eth(0x0800, ipv4(1, struct.pack(">BBHHH", 8, 0, 0, 1, 1) + b"abcd")))],
    "icmp_v6": [frame(FIX | MAC, eth(0x86DD, ns)),
                frame(FIX | MAC, eth(0x86DD, ipv6(58, struct.pack(">BBHHH", 128, 0, 0, 1, 1) + b"abcd")))],
    "router_advert": [frame(FIX | MAC, eth(0x86DD, ipv6(58, struct.pack(">BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
        + struct.pack(">BBBBIII16s", 3, 4, 64, 0xC0, 86400, 14400, 0, bytes.fromhex("20010db8000000000000000000000000")),
        src=bytes.fromhex("fe800000000000000000000000000001"), dst=bytes.fromhex("ff020000000000000000000000000001"))))],
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, frames in seeds.items():
    config = 4 if name == "router_advert" else 0  # SLAAC for the RA
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([config]) + b"".join(frames))
