import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch


FIXTURES = Path(__file__).parent / "fixtures"

_BLOCK_PACKAGE = """
import importlib.abc, sys

class BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "modeling_video_mask2former":
            raise ModuleNotFoundError(f"{name} is blocked: this process plays a Hub user")

sys.meta_path.insert(0, BlockPackage())
"""


def run_as_hub_user(script: str, directory: Path, *arguments: str) -> None:
    """
    Runs `script` (its `sys.argv[1:]` are `arguments`) in a fresh Python process that plays a Hub user: this package
    cannot be imported, the Hub is offline and remote code is cached under `directory`. Fails with its stderr.
    """
    path = directory / "hub_user.py"
    path.write_text(_BLOCK_PACKAGE + textwrap.dedent(script))
    env = {"HF_MODULES_CACHE": str(directory / "modules"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        [sys.executable, str(path), *arguments],
        check=False,
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


@pytest.fixture(autouse=True)
def _two_threads():
    """The reference data was produced with 2 threads; parity tolerances assume the same."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
