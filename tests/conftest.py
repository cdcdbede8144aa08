"""Shared fixtures: write suite files and plugin files into a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

# Tests run in parallel (pytest -n auto): one torch thread per test process keeps two
# processes from fighting over the cores, and keeps float results independent of threads.
torch.set_num_threads(1)

FIXTURE_PLUGINS = Path(__file__).parent / "fixture_plugins"


@pytest.fixture
def probe_plugin() -> Path:
    """The probe plugin (tests/fixture_plugins/probe.py): solvers that expose what they
    were given, and ones that fail."""
    return FIXTURE_PLUGINS / "probe.py"


@pytest.fixture
def write_suite(tmp_path: Path):
    """write_suite(text, name="suite.toml") -> Path of a suite file written in tmp_path."""

    def write(text: str, name: str = "suite.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small matrices: threads only fight over the
    shared cores, ~10x slower under load); restored afterwards. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
