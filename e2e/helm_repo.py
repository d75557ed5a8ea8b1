#!/usr/bin/env python3
"""A Helm repository for the tests: static files over HTTPS on 127.0.0.1.

  helm_repo.py DIR CERT KEY LOG PORTFILE [USER:PASSWORD]

Serves DIR (charts and index.yaml) on a port it binds itself, written to PORTFILE once it
listens; appends each request's path to LOG; stops when its parent (the test) goes away.
With USER:PASSWORD it is a private repository: a request without that HTTP basic login is
answered 401, and each LOG line says what the request carried: `PATH login` (the right one),
`PATH none` or `PATH wrong`.
"""
import base64
import http.server
import os
import ssl
import sys

from parent_watch import exit_with_parent


def main():
    root, cert, key, log, portfile = sys.argv[1:6]
    login = sys.argv[6] if len(sys.argv) > 6 else None
    expected = "Basic " + base64.b64encode(login.encode()).decode() if login else None

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=root, **kwargs)

        def do_GET(self):
            carried = self.headers.get("Authorization")
            if expected is None:
                line, ok = self.path, True
            else:
                ok = carried == expected
                line = "%s %s" % (self.path, "login" if ok else ("none" if carried is None else "wrong"))
            with open(log, "a") as f:
                f.write(line + "\n")
            if not ok:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    exit_with_parent()
    srv.serve_forever()


if __name__ == "__main__":
    main()
