"""No token, password, hash or key used by the suite appears in any log line.

`conftest.py` runs this after every other test, whatever the file names.

Every server in the suite logs at debug level (RUST_LOG=debug) into
target/e2e-logs/, and every secret the tests created was recorded there too.
"""

from harness import LOG_DIR, SECRETS_FILE


def test_no_secret_in_any_log():
    assert SECRETS_FILE.exists(), "the suite recorded no secrets: run the whole suite"
    secrets = {s for s in SECRETS_FILE.read_text().splitlines() if len(s) >= 12}
    assert len(secrets) > 20
    logs = [p for p in LOG_DIR.glob("*.log")]
    assert logs
    total = 0
    leaks = []
    for log in logs:
        text = log.read_text(errors="replace")
        total += len(text)
        for s in secrets:
            if s in text:
                leaks.append((log.name, s[:6] + "..."))
    assert total > 10_000, "too little log output to prove anything"
    assert leaks == []
