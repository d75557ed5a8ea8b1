#!/usr/bin/env python3
"""A Helm repository for the tests: static files over HTTPS on 127.0.0.1.

  helm_repo.py DIR CERT KEY LOG PORT

Serves DIR (charts and index.yaml), appends each request's path to LOG, and stops when its
parent (the test) goes away.
"""
import http.server
import os
import ssl
import sys
import threading
import time


def main():
    root, cert, key, log, port = sys.argv[1:6]

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=root, **kwargs)

        def do_GET(self):
            with open(log, "a") as f:
                f.write(self.path + "\n")
            super().do_GET()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    parent = os.getppid()

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
