"""Tokens and key sets for the JWT tests, made with PyJWT and `cryptography` (python3-jwt,
python3-cryptography): `Key` (RSA or EC, with its JWK), `jwks()`, raw `unsigned`/`hs256` tokens
for forgeries, and `JwksServer`, a JWKS over http:// or https:// on loopback."""

import base64
import hashlib
import hmac
import http.server
import json
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tls_support import ThreadedServer, server_context

ISSUER = "https://idp.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    def __init__(self, kid: str, kind: str = "rsa"):
        self.kid = kid
        if kind == "rsa":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key())
        self.jwk = dict(json.loads(jwk), kid=kid, use="sig")

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, *, kid: str | None = None, alg: str | None = None, **claims) -> str:
        payload = {"iss": ISSUER, "aud": "api", "sub": "alice", "roles": ["admin", "dev"],
                   "exp": int(time.time()) + 300}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.private, algorithm=alg or self.alg,
                          headers={"kid": kid or self.kid})


def jwks(*keys: Key) -> str:
    return json.dumps({"keys": [k.jwk for k in keys]})


def unsigned(header: dict, payload: dict, signature: bytes = b"") -> str:
    return (b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode()) + "." +
            b64(signature))


def hs256(header: dict, payload: dict, secret: bytes) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


class JwksServer:
    """Serves `body` as a JWKS on loopback (None: answers 500), over https:// when a certificate
    and key are given; counts the requests (over TLS: those past the handshake)."""

    def __init__(self, cert=None, key=None):
        self.body = None
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the http.server API
                server.requests += 1
                data = (server.body or "").encode()
                self.send_response(200 if server.body is not None else 500)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        context = server_context(cert, key) if cert else None
        self.server = ThreadedServer(Handler, context)
        scheme = "https" if cert else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.port}/.well-known/jwks.json"

    def close(self):
        self.server.close()
