"""A minimal OAuth issuer for the bench: an RSA 2048 key, its discovery
document and JWKS served on 127.0.0.1 from a thread, and RS256 access
tokens signed with it (what Keycloak and most providers issue). The test
suite uses a real OpenID provider (tests/e2e/oidc.py); the bench needs only
a token and keys, and a way to take the issuer down."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        self.jwks = {"keys": [{"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256",
                               "n": b64(n), "e": b64(numbers.e.to_bytes(3, "big"))}]}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                docs = {"/.well-known/openid-configuration": {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"},
                        "/jwks": issuer.jwks}
                body = json.dumps(docs[self.path]).encode() if self.path in docs else None
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_):
                pass

        return Handler

    def token(self, audience: str, scope: str = "mcp", ttl: int = 3600) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "at+jwt", "kid": "bench"}
        claims = {"iss": self.url, "aud": audience, "sub": "bench-client", "client_id": "bench-client",
                  "scope": scope, "iat": now, "exp": now + ttl}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}"

    def stop(self) -> None:
        """Take the issuer down: its port refuses connections from now on."""
        self.server.shutdown()
        self.server.server_close()
