"""tests/sdk fixtures: a tiny deterministic fake FeatureHead (tests/sdk/fakes.py), temporary stores."""
import pytest

from edge_omd.store import FolderStore, SQLiteStore
from tests.sdk.fakes import FakeHead


@pytest.fixture
def head():
    return FakeHead(dim=64)


@pytest.fixture(params=["sqlite", "folder"])
def store(request, tmp_path):
    s = SQLiteStore(tmp_path / "s.sqlite") if request.param == "sqlite" else FolderStore(tmp_path / "users")
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path):
    s = SQLiteStore(tmp_path / "s.sqlite")
    yield s
    s.close()
