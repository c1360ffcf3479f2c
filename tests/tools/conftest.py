import pytest

from fuller.testing.tools import run_tool


@pytest.fixture
def tool():
    return run_tool
