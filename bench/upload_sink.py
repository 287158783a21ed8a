#!/usr/bin/env python3
"""The ceiling of bench/upload.sh: a trivial HTTP/1.1 endpoint on loopback that reads a request
body of Content-Length bytes into one reused buffer and drops it, then answers 200. curl's
upload rate into it is what one loopback connection on this machine carries at best, with no
hashing, no writing and no parser worth the name on the receiving side.

    python3 bench/upload_sink.py PORT        # serves until killed; one connection at a time
"""
import socket
import sys

BUF = 4 << 20


def serve_one(conn):
    buf = bytearray(BUF)
    view = memoryview(buf)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(65536)
        if not chunk:
            return
        head += chunk
    header, rest = head.split(b"\r\n\r\n", 1)
    length = 0
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    left = length - len(rest)
    while left > 0:
        n = conn.recv_into(view, min(BUF, left))
        if n == 0:
            return
        left -= n
    body = b'{"ok":true}'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def main():
    port = int(sys.argv[1])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    while True:
        conn, _ = srv.accept()
        with conn:
            serve_one(conn)


if __name__ == "__main__":
    main()
