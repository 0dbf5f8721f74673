"""The caller's role in the database: `role:` on tokens.yaml and users.yaml
entries and on oauth_permissions grants (`role:`, `role_claim:` within
oauth_role_claim_allowed), through the real server and a real PostgreSQL 15.

One table with a row-level security policy (`owner = current_user`); a
login role `mcp_login` that is no superuser, has no BYPASSRLS and owns no
table, and is a member of `alice` and `bob` (not of `carol`). Every
database entry has `pool_size: 1`, so every call of a test goes through the
one pooled connection (its backend pid is checked to be the same):

- tokens mapped to alice and bob see their own rows only, through
  `query_database`, `count_rows`, a curated reader tool, a curated writer
  tool (whose insert for another owner the policy refuses) and
  `pg://system_info`; alternating and concurrent calls never see the
  other's rows; a token without a role then sees what the login role sees;
  a user's sessions run as the user's role;
- a role the login role is not a member of is the clear tool error;
- the caller's SQL cannot leave the role (SET ROLE, RESET ROLE, SET SESSION
  AUTHORIZATION, set_config);
- OAuth (the real OpenID provider of oidc.py): a grant with `role_claim:`
  runs as the allowed role the claim names, and grants nothing for a
  missing, unlisted or non-string claim (never the login role), counted in
  mcp_oauth_role_claim_refusals_total; a grant with a fixed `role:` runs
  as that role.
"""

from __future__ import annotations

import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import McpServer, add_token, free_port, http, make_data_dir, metric_value, remember_secret, rpc, run
from postgres import Postgres

SETUP = """
CREATE ROLE mcp_login LOGIN NOINHERIT;
CREATE ROLE alice NOLOGIN;
CREATE ROLE bob NOLOGIN;
CREATE ROLE carol NOLOGIN;
GRANT alice, bob TO mcp_login;
CREATE TABLE notes (id serial PRIMARY KEY, owner name NOT NULL, body text);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON notes USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT, INSERT ON notes TO alice, bob;
GRANT USAGE ON SEQUENCE notes_id_seq TO alice, bob;
GRANT SELECT ON notes TO mcp_login;
INSERT INTO notes (owner, body) VALUES ('alice', 'a1'), ('bob', 'b1'), ('alice', 'a2'), ('mcp_login', 'server');
"""

TOOLS = """
tools:
  my_notes:
    description: The caller's notes.
    database: main
    statement: SELECT current_user AS who, pg_backend_pid() AS pid, owner, body FROM notes ORDER BY id
  add_note:
    description: Add a note as the caller.
    database: rw
    writer: true
    parameters: [{name: body, type: string}]
    statement: INSERT INTO notes (owner, body) VALUES (current_user, :body) RETURNING owner, body
  add_note_for:
    description: Add a note for someone (the policy decides).
    database: rw
    writer: true
    parameters: [{name: owner, type: string}, {name: body, type: string}]
    statement: INSERT INTO notes (owner, body) VALUES (:owner, :body) RETURNING owner
"""

QUERY = "SELECT current_user AS who, pg_backend_pid() AS pid, owner, body FROM notes ORDER BY id"


@pytest.fixture(scope="module")
def pg():
    p = Postgres(free_port())
    p.start()
    p.sql(SETUP)
    yield p
    p.destroy()


def databases(port: int) -> str:
    entry = (f"host: 127.0.0.1\n    port: {port}\n    user: mcp_login\n    database: postgres\n"
             f"    sslmode: disable\n    pool_size: 1\n")
    return f"databases:\n  - name: main\n    {entry}  - name: rw\n    {entry}    allow_writers: true\n"


def call(url: str, token: str, tool: str, **args) -> tuple[bool, str]:
    status, _, body = rpc(url, "tools/call", {"name": tool, "arguments": args}, token=token)
    assert status == 200, (status, body)
    result = body["result"]
    return bool(result.get("isError")), "\n".join(c.get("text", "") for c in result["content"])


def rows(url: str, token: str, tool: str = "query_database", **args) -> list[dict]:
    if tool == "query_database":
        args = {"query": QUERY, **args}
    is_error, text = call(url, token, tool, **args)
    assert not is_error, text
    return json.loads(text[text.index("["):])


def owners(found: list[dict]) -> set[str]:
    return {r["owner"] for r in found}


def test_token_and_user_roles_apply_row_level_security(tmp_path, pg):
    d = tmp_path / "data"
    plain = make_data_dir(d)
    tokens = d / "tokens.yaml"
    alice = add_token(tokens, "--role", "alice")
    bob = add_token(tokens, "--role", "bob")
    carol = add_token(tokens, "--role", "carol")
    listing = run("mcp-server", "token", "list", "--file", str(tokens)).stdout
    assert listing.startswith("ID\tEXPIRES\tDATABASE\tROLE\t"), listing
    for shown in ("\t-\talice\tall\t", "\t-\tbob\tall\t", "\t-\tcarol\tall\t", "\t-\t-\tall\t"):
        assert shown in listing, (shown, listing)
    refused = run("mcp-server", "token", "add", "--file", str(tokens), "--annotation", "x", "--role", "a\x07b", check=False)
    assert refused.returncode != 0 and "role name" in refused.stderr, refused.stderr
    password = "roles-user-password-1"
    remember_secret(password)
    run("mcp-server", "user", "add", "--file", str(d / "users.yaml"), "--username", "bea", "--role", "bob",
        env={"MCP_PASSWORD": password})
    key = secrets.token_hex(32)
    remember_secret(key)
    (d / "session.key").write_text(key + "\n")
    (d / "tools.yaml").write_text(TOOLS)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(databases(pg.port))
    s = McpServer(d, name="roles", extra=["--config", str(cfg)])
    try:
        # Alternating calls on the one pooled connection: each token sees
        # its own rows only, as its own role.
        pids = set()
        for i in range(6):
            for token, who, want in ((alice, "alice", {"a1", "a2"}), (bob, "bob", {"b1"})):
                tool = "query_database" if i % 2 == 0 else "my_notes"
                found = rows(s.url, token, tool)
                assert {r["body"] for r in found} == want and owners(found) == {who}, (tool, who, found)
                assert {r["who"] for r in found} == {who}, found
                pids |= {r["pid"] for r in found}
        assert len(pids) == 1, f"pool_size 1: one connection for every call, got backends {pids}"
        # Concurrent callers share the connection in turn, never a role.
        def hammer(token_who):
            token, who = token_who
            return [owners(rows(s.url, token)) for _ in range(15)], who
        with ThreadPoolExecutor(2) as ex:
            for seen, who in ex.map(hammer, [(alice, "alice"), (bob, "bob")]):
                assert all(o == {who} for o in seen), (who, seen)
        # Afterwards, a token without a role sees what the login role sees.
        found = rows(s.url, plain)
        assert owners(found) == {"mcp_login"} and {r["who"] for r in found} == {"mcp_login"}, found
        assert {r["pid"] for r in found} == pids
        # The other built-in tools and the resource run as the role too.
        assert call(s.url, alice, "count_rows", table="notes") == (False, "public.notes: 2 rows")
        assert call(s.url, bob, "count_rows", table="notes") == (False, "public.notes: 1 rows")
        status, _, body = rpc(s.url, "resources/read", {"uri": "pg://system_info"}, token=alice)
        assert status == 200 and json.loads(body["result"]["contents"][0]["text"])["user"] == "alice", body
        # A writer tool writes as the role; the policy refuses a row for another.
        is_error, text = call(s.url, alice, "add_note", body="a3")
        assert not is_error and '"owner":"alice"' in text, text
        is_error, text = call(s.url, alice, "add_note_for", owner="bob", body="forged")
        assert is_error and "row-level security" in text, text
        assert {r["body"] for r in rows(s.url, alice, "my_notes")} == {"a1", "a2", "a3"}
        assert {r["body"] for r in rows(s.url, bob, "my_notes")} == {"b1"}
        # A user's sessions run as the user's role.
        status, _, body = rpc(s.url, "tools/call", {"name": "authenticate_user",
                                                    "arguments": {"username": "bea", "password": password}})
        session = json.loads(body["result"]["content"][0]["text"])["session_token"]
        remember_secret(session)
        assert owners(rows(s.url, session)) == {"bob"}
        # A role the login role is not a member of: the clear tool error.
        for tool, args in (("query_database", {"query": QUERY}), ("my_notes", {})):
            is_error, text = call(s.url, carol, tool, **args)
            assert is_error and text.startswith("database main: this credential's role \"carol\" cannot be assumed"), text
            assert "GRANT carol TO" in text, text
        # The caller's SQL cannot leave its role.
        for escape in ("SET ROLE mcp_login", "RESET ROLE", "SET SESSION AUTHORIZATION mcp_login",
                       "SELECT set_config('role', 'mcp_login', true)", "SELECT set_config('role', 'bob', false)",
                       "SET LOCAL ROLE bob", "SELECT 1; RESET ROLE"):
            is_error, text = call(s.url, alice, "query_database", query=escape)
            assert is_error and text.startswith("query rejected"), (escape, text)
            is_error, text = call(s.url, alice, "execute_explain", query=escape)
            assert is_error, (escape, text)
        assert owners(rows(s.url, alice)) == {"alice"}
        assert {r["pid"] for r in rows(s.url, bob)} == pids
    finally:
        s.stop()
    assert pg.sql("SELECT count(*) FROM notes WHERE owner = 'bob' AND body = 'forged'").strip() == "0"


def test_oauth_grants_take_a_role_or_a_role_claim(tmp_path, pg):
    from oidc import Client, OidcProvider, provider_installed, unverified

    if not provider_installed():
        if os.environ.get("CI"):
            raise AssertionError("oidc-provider is not installed in .tools/oidc (scripts/test.sh installs it)")
        pytest.skip("oidc-provider is not installed in .tools/oidc or node is missing")
    clients = [Client("as-alice", claims={"pg_role": "alice"}),
               Client("as-bob", claims={"pg_role": "bob"}),        # bob is not in the allow-list
               Client("as-list", claims={"pg_role": ["alice"]}),   # not a string
               Client("no-claim")]
    idp = OidcProvider(tmp_path / "idp", name="oidc-roles", clients=clients)
    try:
        d = tmp_path / "data"
        make_data_dir(d)
        port = free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"""\
oauth_resource: {url}
oauth_issuers:
  - issuer: {idp.issuer}
    scopes: [mcp]
oauth_role_claim_allowed: [alice, carol]
oauth_permissions:
  - scope: mcp
    tools: [query_database]
    databases: [main]
    role_claim: pg_role
  - scope: sql
    tools: [query_database, count_rows]
    databases: [main]
    role: bob
{databases(pg.port)}""")
        s = McpServer(d, name="roles-oauth", port=port, extra=["--config", str(cfg)])
        try:
            def token(client: Client, scope: str = "mcp") -> str:
                return idp.token(scope, resource=url, client=client)

            by_claim = token(clients[0])
            assert unverified(by_claim)[1].get("pg_role") == "alice"
            assert owners(rows(url, by_claim)) == {"alice"}
            # The same client with scope sql too: query_database runs as the
            # first grant that allows it (the claim's alice), count_rows as
            # the only one that does (bob).
            both = token(clients[0], "mcp sql")
            assert owners(rows(url, both)) == {"alice"}
            assert call(url, both, "count_rows", table="notes") == (False, "public.notes: 1 rows")
            # An unlisted role, a list, no claim: the claim grant gives
            # nothing, never the login role.
            for client, reason in ((clients[1], "not_allowed"), (clients[2], "not_a_string"), (clients[3], "missing")):
                t = token(client)
                is_error, text = call(url, t, "query_database", query=QUERY)
                assert is_error and text == "this credential may not call the tool query_database", (reason, text)
                _, _, metrics = http("GET", f"{s.base}/metrics")
                assert metric_value(metrics.decode(), "mcp_oauth_role_claim_refusals_total", reason=reason) == 1, reason
                # With scope sql, only the fixed-role grant applies: bob.
                assert owners(rows(url, token(client, "mcp sql"))) == {"bob"}, reason
            log = s.log_path.read_text(errors="replace")
            assert log.count("left out: its role claim") == 6, log[-3000:]
        finally:
            s.stop()
    finally:
        idp.stop()
