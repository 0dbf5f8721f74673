import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import McpServer, make_data_dir  # noqa: E402

# Tests that read what the whole suite left behind run after all the others.
RUN_LAST = ("test_secrets_in_logs.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.fspath.basename in RUN_LAST)


@pytest.fixture
def data_dir(tmp_path):
    """A data directory with a KB built from tests/fixtures/docs and one token."""
    d = tmp_path / "data"
    token = make_data_dir(d)
    return d, token


@pytest.fixture
def server(data_dir):
    d, token = data_dir
    s = McpServer(d)
    yield s, token, d
    s.stop()
