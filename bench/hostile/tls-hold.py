#!/usr/bin/env python3
"""Holds COUNT idle HTTPS keep-alive connections to HOST:PORT for SECONDS:
each completes a TLS handshake (no certificate check), sends one GET,
reads the whole answer and then stays silent. Prints `opened O of N`.

    tls-hold.py HOST:PORT COUNT SECONDS
"""
import socket
import ssl
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
count, secs = int(sys.argv[2]), float(sys.argv[3])
if count > 10000 or secs > 600:
    sys.exit("at most 10000 connections and 600 seconds")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
end = time.time() + secs
conns = []
for _ in range(count):
    try:
        raw = socket.create_connection((host, int(port)), timeout=3)
        # Without this, Nagle holds the GET after the client's Finished
        # until a delayed ACK (40 ms) when the server sends no tickets.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw)
        s.sendall(b"GET / HTTP/1.1\r\nHost: hold\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            head += chunk
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < length:
            body += s.recv(4096)
        conns.append(s)
    except (OSError, ConnectionError):
        pass
print(f"opened {len(conns)} of {count}", flush=True)
time.sleep(max(0.0, end - time.time()))
