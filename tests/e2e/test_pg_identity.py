"""Cloud identity instead of a stored password, through the real server and a
real PostgreSQL 15 with TLS, the token endpoints played by local stand-ins:

- `auth: gcp-iam`: a metadata-server stand-in (GCE_METADATA_HOST) issues the
  access token; `auth: azure-entra`: an Entra ID token endpoint stand-in
  (AZURE_AUTHORITY_HOST, workload identity with a federated token file).
  Each PostgreSQL role's password is set to the token its stand-in issues;
  calls run as that role, the scope asked for is the database's, a rotated
  token (the role's password changed with it) is picked up by the next
  connection without a restart, and while the token endpoint fails the
  pooled connections keep working and /health and the metrics say so.
- `auth: aws-rds-iam`: the server's token, captured by a stand-in that
  speaks PostgreSQL's TLS handshake and asks for a cleartext password, is
  the one botocore makes for the same credentials, host, port, user, region
  and time.
- No token reaches a log line, /health or /metrics.
"""

from __future__ import annotations

import json
import shutil
import time
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import McpServer, add_token, free_port, http, make_data_dir, metric_value, remember_secret, rpc, wait_until
from pg_wire import CapturingPostgres, make_certs
from postgres import Postgres


class Tokens(ThreadingHTTPServer):
    """The Google metadata server and the Entra ID token endpoint, in one
    stand-in: answers with the token (and lifetime) the test sets, records
    what was asked, and fails while `down` is set."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), TokenHandler)
        self.tokens = {"gcp": ("", 3600), "azure": ("", 3600)}
        self.asked: list[dict] = []
        self.down = False
        self.hang = 0.0  # seconds to wait before answering
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def issue(self, kind: str, token: str, lifetime: int) -> None:
        remember_secret(token)
        self.tokens[kind] = (token, lifetime)


class TokenHandler(BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def answer(self, kind: str, asked: dict) -> None:
        self.server.asked.append({"kind": kind, **asked})
        time.sleep(self.server.hang)
        if self.server.down:
            self.send_response(503)
            self.end_headers()
            return
        token, lifetime = self.server.tokens[kind]
        body = json.dumps({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/computeMetadata/v1/instance/service-accounts/default/token" \
                and self.headers.get("Metadata-Flavor") == "Google":
            return self.answer("gcp", {"scopes": urllib.parse.parse_qs(url.query).get("scopes", [""])[0]})
        self.send_response(404)
        self.end_headers()

    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        if self.path.endswith("/oauth2/v2.0/token"):
            return self.answer("azure", {"path": self.path, "scope": form.get("scope", [""])[0],
                                         "assertion": form.get("client_assertion", [""])[0]})
        self.send_response(404)
        self.end_headers()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("identity")
    make_certs(d)
    pg = Postgres(free_port())
    for name in ("server.crt", "server.key"):
        dst = pg.data / name
        shutil.copy(d / name, dst)
        dst.chmod(0o600)
        shutil.chown(dst, "postgres", "postgres")
    with open(pg.data / "postgresql.conf", "a") as f:
        f.write("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
    hba = pg.data / "pg_hba.conf"
    # The cloud roles log in over TLS with their token as the password.
    hba.write_text("hostssl all iam_gcp,iam_azure 127.0.0.1/32 scram-sha-256\n"
                   "host all iam_gcp,iam_azure 127.0.0.1/32 reject\n" + hba.read_text())
    pg.start()
    pg.sql("CREATE ROLE iam_gcp LOGIN; CREATE ROLE iam_azure LOGIN;")
    tokens = Tokens()
    yield {"dir": d, "pg": pg, "tokens": tokens}
    tokens.shutdown()
    pg.destroy()


def set_password(pg: Postgres, role: str, token: str) -> None:
    pg.sql(f"ALTER ROLE {role} PASSWORD '{token}'")


def who(url: str, token: str, database: str) -> tuple[bool, str]:
    status, _, body = rpc(url, "tools/call", {"name": "query_database", "arguments": {
        "database": database,
        "query": "SELECT current_user AS who, s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()"}},
        token=token)
    assert status == 200, (status, body)
    return bool(body["result"].get("isError")), body["result"]["content"][0]["text"]


def end_sessions(pg: Postgres, role: str) -> None:
    """Close the role's pooled connections from the server side: the next
    call needs a new connection, and with it a password."""
    pg.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")


def test_gcp_and_azure_tokens_are_the_password_and_rotate_without_a_restart(tmp_path, world):
    pg, tokens, d = world["pg"], world["tokens"], world["dir"]
    federated = tmp_path / "azure-identity-token"
    federated.write_text("kubelet-issued-service-account-jwt")
    remember_secret("kubelet-issued-service-account-jwt")
    # Lifetimes of 60 s: with refresh due when a minute is left, every new
    # connection asks the endpoint again (what an hour-long token does in
    # its last quarter).
    tokens.issue("gcp", "ya29.gcp-token-one", 60)
    tokens.issue("azure", "eyJ.azure-token-one", 60)
    set_password(pg, "iam_gcp", "ya29.gcp-token-one")
    set_password(pg, "iam_azure", "eyJ.azure-token-one")
    data = tmp_path / "data"
    make_data_dir(data)
    token = add_token(data / "tokens.yaml")
    cfg = tmp_path / "config.yaml"
    entry = lambda name, user, auth: (
        f"  - name: {name}\n    host: localhost\n    port: {pg.port}\n    user: {user}\n    database: postgres\n"
        f"    sslmode: verify-full\n    sslrootcert: {d / 'ca.crt'}\n    auth: {auth}\n    pool_size: 1\n")
    cfg.write_text("databases:\n" + entry("gcp", "iam_gcp", "gcp-iam") + entry("azure", "iam_azure", "azure-entra"))
    env = {
        "GCE_METADATA_HOST": tokens.host,
        "GOOGLE_APPLICATION_CREDENTIALS": "",
        "HOME": str(tmp_path),  # no gcloud user credentials
        "AZURE_FEDERATED_TOKEN_FILE": str(federated),
        "AZURE_CLIENT_ID": "client-1",
        "AZURE_TENANT_ID": "tenant-1",
        "AZURE_AUTHORITY_HOST": f"http://{tokens.host}/",
    }
    s = McpServer(data, name="identity", extra=["--config", str(cfg)], env=env)
    try:
        for db, role in (("gcp", "iam_gcp"), ("azure", "iam_azure")):
            is_error, text = who(s.url, token, db)
            assert not is_error and f'"who":"{role}"' in text and '"ssl":true' in text, text
        gcp_asks = [a for a in tokens.asked if a["kind"] == "gcp"]
        azure_asks = [a for a in tokens.asked if a["kind"] == "azure"]
        assert gcp_asks and all(a["scopes"] == "https://www.googleapis.com/auth/sqlservice.login,"
                                    "https://www.googleapis.com/auth/alloydb.login" for a in gcp_asks)
        assert azure_asks and all(a["scope"] == "https://ossrdbms-aad.database.windows.net/.default"
                                  for a in azure_asks), azure_asks
        assert all(a["path"] == "/tenant-1/oauth2/v2.0/token" for a in azure_asks)
        assert all(a["assertion"] == "kubelet-issued-service-account-jwt" for a in azure_asks)

        # Rotation: the endpoint issues a new token and the role's password
        # changes with it; the next connection uses it, no restart.
        tokens.issue("gcp", "ya29.gcp-token-two", 60)
        tokens.issue("azure", "eyJ.azure-token-two", 60)
        set_password(pg, "iam_gcp", "ya29.gcp-token-two")
        set_password(pg, "iam_azure", "eyJ.azure-token-two")
        for db, role in (("gcp", "iam_gcp"), ("azure", "iam_azure")):
            end_sessions(pg, role)
            is_error, text = who(s.url, token, db)
            assert not is_error and f'"who":"{role}"' in text, text

        # A token endpoint that takes its time never slows /health: the
        # refresh a health ping starts runs in the background.
        tokens.hang = 2.0
        asked = len(tokens.asked)
        for _ in range(4):
            started = time.monotonic()
            status, _ = s.health()
            assert status == 200 and time.monotonic() - started < 0.9, time.monotonic() - started
            time.sleep(0.3)
        # (A database's health entry is reused for half a second.)
        wait_until(lambda: s.health() and len(tokens.asked) > asked, timeout=5, interval=0.2)
        assert not who(s.url, token, "gcp")[0]
        tokens.hang = 0.0

        # The token endpoint fails (each health ping asks it again, the
        # token being due): pooled connections keep working, and /health
        # and the metrics say what is wrong.
        tokens.down = True

        def reported() -> dict | None:
            _, body = s.health()
            entry = next(e for e in body["databases"] if e["name"] == "gcp")
            return entry if entry["identity"]["ok"] is False else None
        entry, _ = wait_until(reported, timeout=10, interval=0.2)
        assert "503" in (entry["identity"]["error"] or ""), entry
        assert entry["identity"]["auth"] == "gcp-iam" and entry["identity"]["failures"] >= 1, entry
        is_error, text = who(s.url, token, "gcp")
        assert not is_error and '"who":"iam_gcp"' in text, f"the pooled connection keeps working: {text}"
        _, _, metrics = http("GET", f"{s.base}/metrics")
        metrics = metrics.decode()
        assert metric_value(metrics, "mcp_database_credential_ok", database="gcp") == 0, metrics
        assert metric_value(metrics, "mcp_database_credential_ok", database="azure") == 0
        # (After a failure the endpoint is asked again only 10 s later
        # while the cached token is usable: fleet_cloud::token::RETRY_AFTER.)
        tokens.down = False
        _, body = s.health()
        assert "ya29" not in json.dumps(body) and "eyJ." not in json.dumps(body), body
    finally:
        s.stop()
    log = s.log_path.read_text()
    for secret in ("ya29.gcp-token", "eyJ.azure-token", "kubelet-issued"):
        assert secret not in log, f"{secret} in the server's log"


BOTOCORE = r"""
import datetime, json, sys, urllib.parse
from unittest import mock
import botocore.auth, botocore.session

case = json.loads(sys.stdin.read())
query = urllib.parse.parse_qs(case["token"].split("?", 1)[1])
at = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
client = botocore.session.get_session().create_client(
    "rds", region_name=case["region"], aws_access_key_id=case["key"],
    aws_secret_access_key=case["secret"], aws_session_token=case["session"])
with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: at):
    print(client.generate_db_auth_token(case["host"], case["port"], case["user"], Region=case["region"]))
"""


def test_rds_iam_token_is_botocores_for_the_same_inputs(tmp_path, world):
    d = world["dir"]
    stand_in = CapturingPostgres(d / "server.crt", d / "server.key")
    key, secret, session = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLE"
    remember_secret(secret, session)
    data = tmp_path / "data"
    make_data_dir(data)
    token = add_token(data / "tokens.yaml")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"databases:\n  - name: rds\n    host: localhost\n    port: {stand_in.port}\n    user: mcp_iam\n"
        f"    database: app\n    sslmode: verify-full\n    sslrootcert: {d / 'ca.crt'}\n"
        f"    auth: aws-rds-iam\n    region: eu-west-1\n")
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": session,
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    s = McpServer(data, name="rds-iam", extra=["--config", str(cfg)], env=env)
    try:
        status, _, body = rpc(s.url, "tools/call", {"name": "query_database",
                                                      "arguments": {"query": "SELECT 1"}}, token=token)
        assert status == 200 and body["result"]["isError"], body
        assert "stand-in: password taken" in body["result"]["content"][0]["text"], body
        assert secret not in json.dumps(body) and "X-Amz" not in json.dumps(body), body
    finally:
        s.stop()
        stand_in.close()
    assert stand_in.passwords, "the server sent no password"
    params, sent = stand_in.passwords[0]
    assert params["user"] == "mcp_iam" and params["database"] == "app", params
    assert sent.startswith(f"localhost:{stand_in.port}/?Action=connect&DBUser=mcp_iam&"), sent
    python = Path(sys.executable)
    made = subprocess.run([str(python), "-c", BOTOCORE], input=json.dumps({
        "token": sent, "region": "eu-west-1", "key": key, "secret": secret, "session": session,
        "host": "localhost", "port": stand_in.port, "user": "mcp_iam"}),
        capture_output=True, text=True, check=True).stdout.strip()
    assert sent == made, f"server:   {sent}\nbotocore: {made}"
    log = s.log_path.read_text()
    assert "X-Amz-Signature" not in log and secret not in log
