"""Step 4: users, sessions valid on every instance, failed-auth rate limiting."""

import json
import secrets

import pytest

from harness import (
    KeepAlive, McpServer, build_fixture_kb, publish, remember_secret, rpc, run, search_text, tokens_yaml, wait_until,
)

QUICK = 5.0


def add_user(users_file, username, password, *extra):
    remember_secret(password)
    run("mcp-server", "user", "add", "--file", str(users_file), "--username", username, *extra, env={"MCP_PASSWORD": password})
    for line in users_file.read_text().splitlines():
        if "password_hash" in line:
            remember_secret(line.split(":", 1)[1].strip().strip("'\""))


def login(url, username, password):
    status, _, body = rpc(url, "tools/call", {"name": "authenticate_user", "arguments": {"username": username, "password": password}})
    assert status == 200, (status, body)
    result = body["result"]
    answer = json.loads(result["content"][0]["text"])
    if answer.get("success"):
        remember_secret(answer["session_token"])
    return answer


def new_key() -> str:
    key = secrets.token_hex(32)
    remember_secret(key)
    return key


@pytest.fixture
def fleet(tmp_path):
    """Two instances over one data dir with users alice (bcrypt) and bob (argon2id)."""
    d = tmp_path / "data"
    build_fixture_kb(d)
    (d / "tokens.yaml").write_text(tokens_yaml("api-token-for-sessions-0000000000"))
    add_user(d / "users.yaml", "alice", "alice-password-1")
    add_user(d / "users.yaml", "bob", "bob-password-1", "--hash", "argon2id")
    (d / "session.key").write_text(new_key() + "\n")
    a, b = McpServer(d, name="inst-a"), McpServer(d, name="inst-b")
    yield a, b, d
    a.stop()
    b.stop()


def accepted(server, token):
    return KeepAlive(server.port).accepted(token)


def test_session_from_a_works_on_b_and_follows_the_user_store(fleet):
    a, b, d = fleet
    answer = login(a.url, "alice", "alice-password-1")
    assert answer["success"] is True and answer["expires_at"]
    token = answer["session_token"]
    # Issued by A, accepted by B: no shared memory, no sticky sessions.
    assert accepted(b, token) and accepted(a, token)
    assert "VACUUM" in search_text(b.url, token, "vacuum")
    bob = login(b.url, "bob", "bob-password-1")["session_token"]
    assert accepted(a, bob)
    # An unrelated change to users.yaml (a new user) leaves it valid.
    add_user(d / "users.yaml", "carol", "carol-password-1")
    wait_until(lambda: a.health()[1]["files"]["users"]["generation"] >= 2 and b.health()[1]["files"]["users"]["generation"] >= 2, QUICK)
    assert accepted(a, token) and accepted(b, token)
    # alice changes password: both instances reject the old session.
    add_user(d / "users.yaml", "alice", "alice-password-2")
    wait_until(lambda: not accepted(a, token) and not accepted(b, token), QUICK)
    assert accepted(a, bob), "other users' sessions survive"
    assert not login(a.url, "alice", "alice-password-1")["success"]
    fresh = login(a.url, "alice", "alice-password-2")["session_token"]
    assert accepted(b, fresh)
    # A disabled user's session is rejected.
    add_user(d / "users.yaml", "bob", "bob-password-1", "--hash", "argon2id", "--disabled")
    wait_until(lambda: not accepted(a, bob) and not accepted(b, bob), QUICK)
    assert not login(b.url, "bob", "bob-password-1")["success"]


def test_session_key_rotation(fleet):
    a, b, d = fleet
    old = login(a.url, "alice", "alice-password-1")["session_token"]
    first = (d / "session.key").read_text().strip()
    publish(d / "session.key", new_key() + "\n" + first + "\n")
    wait_until(lambda: b.health()[1]["files"]["session_key"]["generation"] == 2 and a.health()[1]["files"]["session_key"]["generation"] == 2, QUICK)
    assert accepted(b, old), "sessions signed with the old key survive while it is listed"
    new = login(b.url, "alice", "alice-password-1")["session_token"]
    assert accepted(a, new)
    second = (d / "session.key").read_text().splitlines()[0]
    publish(d / "session.key", second + "\n")
    wait_until(lambda: not accepted(a, old) and not accepted(b, old), QUICK)
    assert accepted(a, new) and accepted(b, new)


def test_wrong_and_unknown_logins_fail_the_same_way(fleet):
    a, _, _ = fleet
    wrong = login(a.url, "alice", "nope")
    unknown = login(a.url, "nobody-here", "nope")
    assert wrong == unknown == {"success": False, "error": "invalid username or password"}


def test_bad_tokens_reach_429_and_forged_forwarded_for_does_not_help(tmp_path):
    d = tmp_path / "data"
    build_fixture_kb(d)
    good = "rate-limit-good-token-000000000000"
    (d / "tokens.yaml").write_text(tokens_yaml(good))
    s = McpServer(d, name="limits", auth_limit=5, extra=["--auth-failure-window", "60s"])
    try:
        for i in range(5):
            status, _, _ = rpc(s.url, "tools/list", {}, token=f"bad-{i}", headers={"X-Forwarded-For": f"198.51.100.{i}"})
            assert status == 401, i
        status, headers, _ = rpc(s.url, "tools/list", {}, token="bad-5")
        assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
        # Neither a forged X-Forwarded-For nor X-Real-IP from an untrusted peer escapes it.
        for h in [{"X-Forwarded-For": "203.0.113.77"}, {"X-Real-IP": "203.0.113.78"}]:
            status, _, _ = rpc(s.url, "tools/list", {}, token="bad-x", headers=h)
            assert status == 429
        # Even a valid token is refused while the IP is over the limit: no guessing with a
        # good token in between.
        assert rpc(s.url, "tools/list", {}, token=good)[0] == 429
        # Wrong passwords count too (this instance has no users at all).
        status, _, _ = rpc(s.url, "tools/call", {"name": "authenticate_user", "arguments": {"username": "x", "password": "y"}})
        assert status == 429
    finally:
        s.stop()


def test_behind_a_trusted_proxy_each_client_is_limited_separately(tmp_path):
    d = tmp_path / "data"
    build_fixture_kb(d)
    good = "trusted-proxy-good-token-0000000000"
    (d / "tokens.yaml").write_text(tokens_yaml(good))
    s = McpServer(d, name="proxied", auth_limit=3, extra=["--trusted-proxies", "127.0.0.0/8"])
    try:
        for i in range(3):
            assert rpc(s.url, "tools/list", {}, token="bad", headers={"X-Forwarded-For": "203.0.113.1"})[0] == 401
        assert rpc(s.url, "tools/list", {}, token="bad", headers={"X-Forwarded-For": "203.0.113.1"})[0] == 429
        # Another client behind the same proxy is not affected...
        assert rpc(s.url, "tools/list", {}, token=good, headers={"X-Forwarded-For": "203.0.113.2"})[0] == 200
        # ...and the limited client cannot escape by prepending a forged address:
        # the proxy appends the real one, and the rightmost untrusted entry counts.
        assert rpc(s.url, "tools/list", {}, token=good, headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.1"})[0] == 429
        # X-Real-IP is used when there is no X-Forwarded-For.
        assert rpc(s.url, "tools/list", {}, token=good, headers={"X-Real-IP": "203.0.113.3"})[0] == 200
    finally:
        s.stop()


def test_user_add_reads_the_password_from_stdin(tmp_path):
    f = tmp_path / "users.yaml"
    remember_secret("stdin-password-123")
    out = run("mcp-server", "user", "add", "--file", str(f), "--username", "dave", input="stdin-password-123\n")
    assert "stdin-password-123" not in out.stdout + out.stderr
    text = f.read_text()
    assert "dave" in text and "stdin-password-123" not in text and "$2b$12$" in text
    assert oct(f.stat().st_mode & 0o777) == "0o640"
