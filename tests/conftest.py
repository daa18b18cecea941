"""Shared fixtures: the reference data beside the project, offline settings."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The field's real annotation and prediction files (../shared/data)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a loaded 2-core machine two
    threads per process make them several times slower. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def java() -> str:
    """A Java runtime, for the tests that cross-check against the official jars
    (densevid itself needs none)."""
    from densevid.errors import DensevidError
    from densevid.metrics.tokenize import java_executable

    try:
        return java_executable()
    except DensevidError as e:
        pytest.skip(f"cross-checks against the official jars need Java ({e})")
