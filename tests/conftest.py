"""Order of the end-to-end suite: the container tests (test_containers_*)
run after every other test, and the scan of all logs for secrets after them.

Running last lets scripts/test.sh build the release binaries the images
need in the background (at low priority) while the other tests run; the
container tests' first cargo call then waits for that build instead of
starting one. (This hook lives here, next to tests/e2e/conftest.py's own,
and keeps the secrets scan last whichever of the two runs first.)
"""


def _rank(item) -> int:
    name = item.fspath.basename
    if name.startswith(("test_secrets", "test_zz")):
        return 2
    if name.startswith("test_containers_"):
        return 1
    return 0


def pytest_collection_modifyitems(items):
    items.sort(key=_rank)
