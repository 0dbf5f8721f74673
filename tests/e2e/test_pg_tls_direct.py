"""`sslnegotiation: direct` (PostgreSQL 17+): the server's first bytes to the
database are a TLS handshake, not an SSLRequest, offering the `postgresql`
ALPN protocol that PostgreSQL requires of direct connections, and the
password travels only inside TLS. No PostgreSQL 17 with TLS installs here
(Debian 12 has 15; the pgvector wheel's PostgreSQL 18 is built without
OpenSSL), so a stand-in that speaks the protocol's opening checks what the
server sends."""

from __future__ import annotations

from harness import McpServer, add_token, make_data_dir, remember_secret, rpc
from pg_wire import CapturingPostgres, make_certs


def test_direct_negotiation_starts_with_tls_and_alpn(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    stand_in = CapturingPostgres(certs / "server.crt", certs / "server.key")
    password = "direct-tls-password-4"
    remember_secret(password)
    data = tmp_path / "data"
    make_data_dir(data)
    token = add_token(data / "tokens.yaml")
    cfg = tmp_path / "config.yaml"
    entry = (f"host: localhost\n    port: {stand_in.port}\n    password: {password}\n"
             f"    sslrootcert: {certs / 'ca.crt'}\n")
    cfg.write_text(f"databases:\n  - name: direct\n    user: d\n    {entry}    sslmode: verify-full\n"
                   f"    sslnegotiation: direct\n  - name: classic\n    user: c\n    {entry}    sslmode: require\n")
    s = McpServer(data, name="tls-direct", extra=["--config", str(cfg)])
    try:
        for db in ("direct", "classic"):
            status, _, body = rpc(s.url, "tools/call", {"name": "query_database",
                                                          "arguments": {"query": "SELECT 1", "database": db}}, token=token)
            assert status == 200 and body["result"]["isError"], body
            assert "stand-in: password taken" in body["result"]["content"][0]["text"], body
    finally:
        s.stop()
        stand_in.close()
    # Health pings connect too: every session of an entry went its way.
    seen = {(x["user"], x["direct"], x["alpn"]) for x in stand_in.sessions}
    assert seen == {("d", True, "postgresql"), ("c", False, None)}, stand_in.sessions
    assert {p for _, p in stand_in.passwords} == {password}
