"""Certificates and HTTPS servers for the TLS tests: `Pki` makes CAs and leaves with the openssl
command line; `ThreadedServer` runs an http.server handler on 127.0.0.1 in a thread of the test,
plain or over TLS (python's ssl module)."""

import base64
import hashlib
import http.server
import os
import ssl
import subprocess
import threading

from conftest import require_tool


def run(*argv):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{argv}: {r.stdout}{r.stderr}"
    return r.stdout


class Pki:
    """A directory of certificates: make_ca(name), leaf(ca, name, san), pin(cert)."""

    def __init__(self, d):
        self.dir = d
        self.openssl = require_tool("openssl")

    def path(self, name):
        return str(self.dir / name)

    def make_ca(self, name):
        run(self.openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.path(f"{name}.key"), "-out", self.path(f"{name}.pem"),
            "-subj", f"/CN={name}", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.path(f"{name}.pem")

    def leaf(self, ca, name, san):
        key, csr, pem = self.path(f"{name}.key"), self.path(f"{name}.csr"), self.path(f"{name}.pem")
        run(self.openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
            "-addext", f"subjectAltName={san}")
        run(self.openssl, "x509", "-req", "-in", csr, "-CA", self.path(f"{ca}.pem"),
            "-CAkey", self.path(f"{ca}.key"), "-CAcreateserial", "-days", "1",
            "-copy_extensions", "copy", "-out", pem)
        os.chmod(key, 0o600)
        return pem, key

    def pin(self, cert):
        der = subprocess.run([self.openssl, "x509", "-in", cert, "-pubkey", "-noout"],
                             capture_output=True, check=True).stdout
        spki = subprocess.run([self.openssl, "pkey", "-pubin", "-outform", "der"], input=der,
                              capture_output=True, check=True).stdout
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def server_context(cert, key, client_ca=None, sni_seen=None):
    """A TLS server context for `cert`/`key`; with client_ca, client certificates are required;
    sni_seen (a list) collects the SNI of each handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    if sni_seen is not None:
        ctx.sni_callback = lambda sock, name, _ctx: sni_seen.append(name)
    return ctx


class ThreadedServer:
    """Serves `handler` (a BaseHTTPRequestHandler class) on 127.0.0.1 from a thread of the test;
    over TLS when `context` (an ssl.SSLContext) is given. close() stops it."""

    def __init__(self, handler, context=None):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
