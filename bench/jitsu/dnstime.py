#!/usr/bin/env python3
"""Times DNS answers: reads `SERVER NAME` lines on standard input, sends
each an A query over UDP (port 53; resent every second, as dig does, for
at most TIMEOUT seconds), at most PARALLEL at a time, and prints
`SERVER NAME MILLISECONDS RCODE ADDRESS` per line (MILLISECONDS is from
the first send to the answer; `- TIMEOUT -` when none came).

    dnstime.py [PARALLEL] [TIMEOUT] < queries
"""
import random
import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor

parallel = int(sys.argv[1]) if len(sys.argv) > 1 else 1
timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def query(qid, name):
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", 1, 1)


def first_a(msg):
    """The first A record's address in an answer, or '-'."""
    count = struct.unpack(">H", msg[6:8])[0]
    i = 12
    while msg[i]:
        i += msg[i] + 1
    i += 5
    for _ in range(count):
        if msg[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while msg[i]:
                i += msg[i] + 1
            i += 1
        rtype, _, _, length = struct.unpack(">HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and length == 4:
            return socket.inet_ntoa(msg[i:i + 4])
        i += length
    return "-"


def one(line):
    server, name = line.split()
    qid = random.randrange(65536)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            s.sendto(query(qid, name), (server, 53))
            s.settimeout(min(1.0, max(0.01, timeout - (time.monotonic() - start))))
            try:
                while True:
                    msg, _ = s.recvfrom(4096)
                    if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                        ms = (time.monotonic() - start) * 1000
                        rcode = RCODES.get(msg[3] & 0xF, str(msg[3] & 0xF))
                        return f"{server} {name} {ms:.1f} {rcode} {first_a(msg)}"
            except socket.timeout:
                continue
        return f"{server} {name} - TIMEOUT -"
    finally:
        s.close()


lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
with ThreadPoolExecutor(max_workers=parallel) as pool:
    for out in pool.map(one, lines):
        print(out, flush=True)
