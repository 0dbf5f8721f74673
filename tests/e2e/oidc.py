"""A real OpenID provider for the OAuth tests (issue 17), and forged tokens.

`OidcProvider` runs panva's oidc-provider (npm, pinned; scripts/test.sh
installs it into .tools/oidc) through tests/e2e/oidc_provider.mjs on
127.0.0.1. It issues client_credentials access tokens as RS256 (or ES256)
`at+jwt` JWTs whose `aud` is the requested resource (RFC 8707), publishes
its keys at /jwks and its metadata at /.well-known/openid-configuration.
The signing keys are generated here and handed to it as a JWKS file, so a
test can forge tokens with them, restart the provider with a rotated key
set, or stop it and start it again on the same port.

    p = OidcProvider(tmp_path)              # one RSA key, client "e2e-client"
    tok = p.token("mcp", resource=url)      # the token endpoint, directly
    p.stop(); p.start()                     # an outage, same port and keys
    p.restart(keys=[rsa_key(), *p.keys])    # a new signing key, old still published
    forge(claims, key=p.keys[0])            # a token it never issued

Every token and the client secrets go through harness.remember_secret: the
suite's last test checks that no log holds one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness import LOG_DIR, ROOT, free_port, http, remember_secret

MODULES = Path(os.environ.get("OIDC_PROVIDER_MODULES") or ROOT / ".tools" / "oidc" / "node_modules")
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")


def provider_installed() -> bool:
    return (MODULES / "oidc-provider" / "package.json").is_file() and shutil.which("node") is not None


# ---- keys ------------------------------------------------------------------

@dataclass
class Key:
    """One signing key: its private key object, kid and JWS algorithm."""

    kid: str
    alg: str
    private: Any  # an RSAPrivateKey or EllipticCurvePrivateKey

    @property
    def public(self):
        return self.private.public_key()

    def public_pem(self) -> bytes:
        """The public key as a SubjectPublicKeyInfo PEM (what an HS/RS confusion attack uses)."""
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwk(self, private: bool = True) -> dict:
        algo = jwt.algorithms.RSAAlgorithm if self.alg.startswith(("RS", "PS")) else jwt.algorithms.ECAlgorithm
        d = algo.to_jwk(self.private if private else self.public, as_dict=True)
        d.update(kid=self.kid, alg=self.alg, use="sig")
        return d


def rsa_key(kid: str | None = None, bits: int = 2048) -> Key:
    return Key(kid or f"rsa-{secrets.token_hex(4)}", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_key(kid: str | None = None) -> Key:
    """An EC P-256 key (ES256)."""
    return Key(kid or f"ec-{secrets.token_hex(4)}", "ES256", ec.generate_private_key(ec.SECP256R1()))


# ---- forged tokens ---------------------------------------------------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def unverified(token: str) -> tuple[dict, dict]:
    """The (header, claims) of a JWT, without checking anything."""
    h, p, _ = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def claims_for(issuer: str, audience: str, scope: str = "mcp", lifetime: int = 600, client_id: str = "e2e-client", **extra) -> dict:
    """Claims shaped like oidc-provider's own access tokens."""
    now = int(time.time())
    return {"iss": issuer, "aud": audience, "sub": client_id, "client_id": client_id, "scope": scope,
            "iat": now, "exp": now + lifetime, "jti": secrets.token_urlsafe(16), **extra}


def forge(claims: dict, key: Key | None = None, *, alg: str | None = None, kid: str | None = None,
          typ: str = "at+jwt", hmac_secret: bytes | None = None) -> str:
    """A JWT signed here: with `key` (its alg and kid unless given), with HMAC
    over `hmac_secret` (alg HS256 by default), or unsigned (alg "none",
    empty signature) when neither is given. Remembered as a secret."""
    header: dict = {"typ": typ}
    if hmac_secret is not None:
        header["alg"] = alg or "HS256"
    elif key is not None:
        header["alg"] = alg or key.alg
    else:
        header["alg"] = alg or "none"
    if kid is not None or key is not None:
        header["kid"] = kid if kid is not None else key.kid
    signing_input = f"{b64url(json.dumps(header, separators=(',', ':')).encode())}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
    if hmac_secret is not None:
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
        sig = b64url(hmac.new(hmac_secret, signing_input.encode(), digest).digest())
    elif key is not None:
        # PyJWT signs; the header is ours (kid, typ), the claims exactly as given.
        token = jwt.encode(claims, key.private, algorithm=header["alg"], headers={k: v for k, v in header.items() if k != "alg"})
        h, p, sig = token.split(".")
        signing_input = f"{h}.{p}"
    else:
        sig = ""
    token = f"{signing_input}.{sig}"
    remember_secret(token)
    return token


def tamper(token: str, **changes) -> str:
    """`token` with some claims changed (None removes one), its header and signature kept."""
    h, p, s = token.split(".")
    claims = json.loads(b64url_decode(p))
    for k, v in changes.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    out = f"{h}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}.{s}"
    remember_secret(out)
    return out


# ---- the provider ------------------------------------------------------------

@dataclass
class Client:
    client_id: str
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_endpoint_auth_method: str = "client_secret_basic"
    claims: dict = field(default_factory=dict)


class OidcProvider:
    """oidc-provider on 127.0.0.1:`port` (issuer http://127.0.0.1:port).

    `keys`: the JWKS it publishes, keys[0] signing (default: one RSA key).
    `clients`: its registered client_credentials clients (default: one,
    `e2e-client`, the first one being `.client`). `scopes`: what a token
    may be granted."""

    def __init__(self, tmp_path: Path, port: int | None = None, keys: list[Key] | None = None,
                 clients: list[Client] | None = None, scopes: tuple[str, ...] = ("mcp", "kb", "sql", "admin"),
                 ttl: int = 600, name: str = "oidc", start: bool = True):
        assert provider_installed(), f"oidc-provider is not installed in {MODULES} (scripts/test.sh installs it) or node is missing"
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tmp_path) / f"{name}-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keys = list(keys) if keys else [rsa_key()]
        self.clients = list(clients) if clients else [Client("e2e-client")]
        for c in self.clients:
            remember_secret(c.client_secret)
        self.scopes = list(scopes)
        self.ttl = ttl
        self.log_path = LOG_DIR / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self._metadata: dict | None = None
        if start:
            self.start()

    @property
    def client(self) -> Client:
        return self.clients[0]

    @property
    def signing_key(self) -> Key:
        return self.keys[0]

    def _write_config(self) -> Path:
        jwks = self.dir / "jwks.json"
        jwks.write_text(json.dumps({"keys": [k.jwk(private=True) for k in self.keys]}))
        jwks.chmod(0o600)
        cfg = self.dir / "config.json"
        cfg.write_text(json.dumps({
            "port": self.port, "jwks": str(jwks), "scopes": self.scopes, "ttl": self.ttl,
            "clients": [{"client_id": c.client_id, "client_secret": c.client_secret,
                         "token_endpoint_auth_method": c.token_endpoint_auth_method, "claims": c.claims}
                        for c in self.clients],
        }))
        cfg.chmod(0o600)
        return cfg

    def start(self, timeout: float = 20) -> "OidcProvider":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cfg = self._write_config()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([shutil.which("node") or "node", str(SCRIPT), str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "OIDC_PROVIDER_MODULES": str(MODULES)})
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_text(errors="replace")[offset:]
            if "oidc-provider ready" in text:
                break
            if self.proc.poll() is not None:
                raise AssertionError(f"oidc-provider exited {self.proc.returncode}: {text[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"oidc-provider not ready after {timeout}s: {text[-3000:]}")
            time.sleep(0.05)
        # It answers discovery, with this key set.
        self._metadata = None
        meta = self.metadata()
        assert meta["issuer"] == self.issuer, meta
        served = {k["kid"] for k in self.jwks()["keys"]}
        assert served == {k.kid for k in self.keys}, (served, [k.kid for k in self.keys])
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, keys: list[Key] | None = None) -> "OidcProvider":
        """Stop, then start again on the same port: with `keys` when given (a rotation)."""
        self.stop()
        if keys is not None:
            self.keys = list(keys)
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metadata(self) -> dict:
        if self._metadata is None:
            status, _, body = http("GET", f"{self.issuer}/.well-known/openid-configuration")
            assert status == 200, (status, body[:500])
            self._metadata = json.loads(body)
        return self._metadata

    def jwks(self) -> dict:
        status, _, body = http("GET", self.metadata()["jwks_uri"])
        assert status == 200, (status, body[:500])
        return json.loads(body)

    def token_response(self, scope: str | None = "mcp", resource: str | list[str] | None = None,
                       client: Client | None = None) -> tuple[int, dict]:
        """POST a client_credentials request to the token endpoint; (status, JSON body)."""
        client = client or self.client
        form: list[tuple[str, str]] = [("grant_type", "client_credentials")]
        if scope is not None:
            form.append(("scope", scope))
        for r in ([resource] if isinstance(resource, str) else resource or []):
            form.append(("resource", r))
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if client.token_endpoint_auth_method == "client_secret_post":
            form += [("client_id", client.client_id), ("client_secret", client.client_secret)]
        else:
            basic = f"{urllib.parse.quote(client.client_id, safe='')}:{urllib.parse.quote(client.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
        status, _, body = http("POST", self.metadata()["token_endpoint"], urllib.parse.urlencode(form).encode(), headers)
        decoded = json.loads(body) if body else {}
        if "access_token" in decoded:
            remember_secret(decoded["access_token"])
        return status, decoded

    def token(self, scope: str | None = "mcp", resource: str | None = None, client: Client | None = None) -> str:
        """A real access token: a JWT for `resource` (opaque without one)."""
        status, body = self.token_response(scope, resource, client)
        assert status == 200 and "access_token" in body, f"token endpoint: {status} {body}"
        return body["access_token"]

    def forge(self, claims: dict | None = None, key: Key | None = None, **kwargs) -> str:
        """A token signed with this provider's signing key (or `key`), as if it had issued it."""
        return forge(claims if claims is not None else claims_for(self.issuer, "http://127.0.0.1/mcp"), key or self.signing_key, **kwargs)

    def __enter__(self) -> "OidcProvider":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
