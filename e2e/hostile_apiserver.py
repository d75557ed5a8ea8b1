#!/usr/bin/env python3
"""A hostile "API server" for the security suite: TLS on loopback, certificate from the test.

  hostile_apiserver.py flood   CERT KEY PORTFILE  # /version answers with an endless body (4 GiB)
  hostile_apiserver.py trickle CERT KEY PORTFILE  # /version is honest; everything else sends
                                                  # one byte every 2 s, for ever

It serves only 127.0.0.1 and stops when its parent (the test) goes away.
"""
import os
import socket
import ssl
import sys
import threading
import time

from parent_watch import exit_with_parent

VERSION = b'{"major":"1","minor":"34","gitVersion":"v1.34.0-hostile","platform":"linux/amd64"}'


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b" ", 2)[1].decode("latin-1") if b" " in data else ""


def flood(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
    conn.sendall(b'{"gitVersion":"')
    chunk = b"x" * (1 << 20)
    for _ in range(4096):
        conn.sendall(chunk)


def trickle(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
    while True:
        conn.sendall(b" ")
        time.sleep(2)


def serve(mode, conn):
    try:
        while True:
            path = read_request(conn)
            if path is None:
                return
            if mode == "flood" and path.startswith("/version"):
                return flood(conn)
            if path.startswith("/version"):
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(VERSION) + VERSION)
                continue
            return trickle(conn)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    mode, cert, key, portfile = sys.argv[1:5]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    exit_with_parent()
    while True:
        raw, _ = srv.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            continue
        threading.Thread(target=serve, args=(mode, conn), daemon=True).start()


if __name__ == "__main__":
    main()
