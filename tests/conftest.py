from pathlib import Path

import pytest
import torch


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _two_threads():
    """The reference data was produced with 2 threads; parity tolerances assume the same."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
